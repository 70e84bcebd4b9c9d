-- Kept in step with ../sqlite/0003_link_ids_and_usage.sql. PostgreSQL's
-- identity column never hands an id out twice already, so only the usage
-- counter is new.

-- Links each API key created per calendar month: the monthly quota counts
-- creates, so deleting a link does not give its place back.
CREATE TABLE api_key_usage (
    owner TEXT NOT NULL,
    month_start BIGINT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (owner, month_start)
);
INSERT INTO api_key_usage (owner, month_start, created)
    SELECT owner,
        EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(created_at) AT TIME ZONE 'UTC'))::BIGINT,
        COUNT(*)
    FROM links WHERE owner IS NOT NULL GROUP BY 1, 2;
