-- API keys of the Links API, and the answers kept for Idempotency-Key
-- retries. The same in SQLite and PostgreSQL.

CREATE TABLE api_keys (
    -- Public id: shown in lists and logs, stored as links.owner.
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- SHA-256 of the secret, hex; the secret itself is never stored.
    secret_hash TEXT NOT NULL,
    -- JSON array of the hosts the key may create links on.
    hosts TEXT NOT NULL,
    can_write BIGINT NOT NULL,
    rate_per_second BIGINT NOT NULL,
    burst BIGINT NOT NULL,
    -- Links the key may create per calendar month (UTC); NULL: no limit.
    monthly_quota BIGINT,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX api_keys_secret_hash ON api_keys (secret_hash);

-- A create retried with the same Idempotency-Key gets the first answer.
-- status 0: the first request is still running.
CREATE TABLE idempotency (
    owner TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX idempotency_created_at ON idempotency (created_at);

-- Quotas count a key's links of the month.
CREATE INDEX links_owner_created_at ON links (owner, created_at);
