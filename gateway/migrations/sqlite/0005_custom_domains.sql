-- Custom link domains and their certificates (docs/operations.md, "Custom
-- domains and automatic certificates"). Every gateway of a fleet serves
-- the certificates kept here; one of them (the holder of the `acme`
-- lease) checks ownership and orders them.
--   owner        the API key id that added the domain; NULL: the operator.
--   token        the value the partner publishes as the TXT record
--                `_gateway-challenge.<host>` to prove the domain is theirs.
--   verified_at  NULL until that TXT record was seen.
--   checked_at, check_error  the last TXT check and why it failed.
--   cert_pem, key_pem  the certificate chain (leaf first) and its private
--                key, PEM; NULL until the first order succeeded.
--   serial       the leaf's serial number, hex: what gateways compare to
--                see that a certificate changed.
--   failures, next_order_at, order_error  orders failed in a row, when
--                the next may start (exponential backoff), and why the
--                last one failed.
CREATE TABLE domains (
    host TEXT PRIMARY KEY,
    owner TEXT,
    token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    verified_at BIGINT,
    checked_at BIGINT,
    check_error TEXT,
    cert_pem TEXT,
    key_pem TEXT,
    serial TEXT,
    not_after BIGINT,
    issued_at BIGINT,
    failures BIGINT NOT NULL DEFAULT 0,
    next_order_at BIGINT NOT NULL DEFAULT 0,
    order_error TEXT
);
CREATE INDEX domains_by_owner ON domains (owner, host);

-- HTTP-01 key authorizations of orders in flight, by token: the CA may
-- ask any gateway of the fleet, not only the one that ordered.
CREATE TABLE acme_challenges (
    token TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    host TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Leases: `acme` is held by the one gateway that checks and orders,
-- taken and kept with a conditional update (holder and expiry).
CREATE TABLE acme_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- The ACME account of each directory URL (instant-acme's credentials,
-- JSON, with the account's private key), shared by the fleet.
CREATE TABLE acme_accounts (
    directory TEXT PRIMARY KEY,
    credentials TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
