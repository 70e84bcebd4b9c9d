-- Link ids are never given out again: without AUTOINCREMENT SQLite hands
-- the id of a deleted newest link to the next one, and a client holding
-- the old id (and its version 1 as If-Match) would reach the new link.
-- The table is rebuilt; its indexes and triggers come back as they were
-- (0001_links.sql), but for 0002's links_owner_created_at, which the
-- usage counter below replaces.

CREATE TABLE links_next (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    code TEXT NOT NULL,
    destination TEXT NOT NULL,
    status INTEGER NOT NULL DEFAULT 302,
    ios TEXT,
    android TEXT,
    desktop TEXT,
    countries TEXT,
    expires_at BIGINT,
    expired_to TEXT,
    query_mode TEXT,
    cache_control TEXT,
    tags TEXT,
    owner TEXT,
    external_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL DEFAULT 1
);
INSERT INTO links_next SELECT id, host, code, destination, status, ios, android, desktop,
    countries, expires_at, expired_to, query_mode, cache_control, tags, owner, external_id,
    created_at, updated_at, version FROM links;
DROP TABLE links;
ALTER TABLE links_next RENAME TO links;

CREATE UNIQUE INDEX links_host_code ON links (host, code);
CREATE UNIQUE INDEX links_owner_external_id ON links (owner, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX links_owner ON links (owner, id);

CREATE TRIGGER links_inserted AFTER INSERT ON links
WHEN (SELECT bulk FROM store_meta WHERE id = 1) = 0
BEGIN
    UPDATE store_meta SET seq = seq + 1 WHERE id = 1;
    INSERT INTO link_changes (seq, host, code, at)
        SELECT seq, NEW.host, NEW.code, CAST(strftime('%s', 'now') AS INTEGER)
        FROM store_meta WHERE id = 1;
END;

CREATE TRIGGER links_updated AFTER UPDATE ON links
WHEN (SELECT bulk FROM store_meta WHERE id = 1) = 0
BEGIN
    UPDATE store_meta SET seq = seq + 1
        WHERE id = 1 AND (OLD.host <> NEW.host OR OLD.code <> NEW.code);
    INSERT INTO link_changes (seq, host, code, at)
        SELECT seq, OLD.host, OLD.code, CAST(strftime('%s', 'now') AS INTEGER)
        FROM store_meta WHERE id = 1 AND (OLD.host <> NEW.host OR OLD.code <> NEW.code);
    UPDATE store_meta SET seq = seq + 1 WHERE id = 1;
    INSERT INTO link_changes (seq, host, code, at)
        SELECT seq, NEW.host, NEW.code, CAST(strftime('%s', 'now') AS INTEGER)
        FROM store_meta WHERE id = 1;
END;

CREATE TRIGGER links_deleted AFTER DELETE ON links
WHEN (SELECT bulk FROM store_meta WHERE id = 1) = 0
BEGIN
    UPDATE store_meta SET seq = seq + 1 WHERE id = 1;
    INSERT INTO link_changes (seq, host, code, at)
        SELECT seq, OLD.host, OLD.code, CAST(strftime('%s', 'now') AS INTEGER)
        FROM store_meta WHERE id = 1;
END;

-- Links each API key created per calendar month: the monthly quota counts
-- creates, so deleting a link does not give its place back.
CREATE TABLE api_key_usage (
    owner TEXT NOT NULL,
    month_start BIGINT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (owner, month_start)
);
INSERT INTO api_key_usage (owner, month_start, created)
    SELECT owner, CAST(strftime('%s', created_at, 'unixepoch', 'start of month') AS INTEGER),
        COUNT(*)
    FROM links WHERE owner IS NOT NULL GROUP BY 1, 2;
