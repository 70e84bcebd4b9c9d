-- Kept in step with ../sqlite/0005_custom_domains.sql, which explains the
-- columns.
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

CREATE TABLE acme_challenges (
    token TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    host TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE acme_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE acme_accounts (
    directory TEXT PRIMARY KEY,
    credentials TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
