-- Per-link click counters (docs/store.md, "Link analytics"): one row per
-- link or rule, hour and split (device, country, referrer host, bot). Every
-- gateway of a fleet adds into the same rows (`INSERT ... ON CONFLICT DO
-- UPDATE SET clicks = clicks + excluded.clicks`).
--   kind  'link': host and name are the link's host and code (a bulk link
--                 under a prefix: the path after the first `/`).
--         'rule': host is '' and name is the rule id.
--   hour  Unix seconds of the start of the UTC hour.
--   country, referrer  '' when unknown or not sent.
--   bot   1 for known crawlers and preview bots, 0 for people.
-- The primary key leads with (kind, host, name, hour): the reports read a
-- range of hours of one link, and need no other index.
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
) WITHOUT ROWID;
