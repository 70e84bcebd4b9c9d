-- Kept in step with ../sqlite/0004_link_stats.sql, which explains the
-- columns.
CREATE TABLE link_stats (
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    name TEXT NOT NULL,
    hour BIGINT NOT NULL,
    device TEXT NOT NULL,
    country TEXT NOT NULL,
    referrer TEXT NOT NULL,
    bot INTEGER NOT NULL,
    clicks BIGINT NOT NULL,
    visitors BIGINT NOT NULL,
    PRIMARY KEY (kind, host, name, hour, device, country, referrer, bot)
);
