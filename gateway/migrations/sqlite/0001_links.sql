-- Links kept in the store, the change log every gateway follows, and the
-- counter that numbers changes. Kept in step with ../postgres/0001_links.sql:
-- the same tables and columns; only the trigger language differs.

CREATE TABLE links (
    id INTEGER PRIMARY KEY,
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

CREATE UNIQUE INDEX links_host_code ON links (host, code);
CREATE UNIQUE INDEX links_owner_external_id ON links (owner, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX links_owner ON links (owner, id);

-- One row per change of a link's (host, code), numbered without gaps in
-- commit order: `seq` comes from the single `store_meta` row, whose update
-- holds a row lock until the writing transaction commits.
CREATE TABLE link_changes (
    seq BIGINT PRIMARY KEY,
    host TEXT NOT NULL,
    code TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX link_changes_at ON link_changes (at);

CREATE TABLE store_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    -- Set inside an import's transaction: rows are not logged one by one;
    -- the import logs one change for the whole host instead.
    bulk INTEGER NOT NULL DEFAULT 0
);
INSERT INTO store_meta (id, seq, bulk) VALUES (1, 0, 0);

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
