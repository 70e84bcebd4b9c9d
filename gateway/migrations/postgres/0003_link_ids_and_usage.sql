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

-- A batch of the Links API logs its own changes in one statement and sets
-- `gateway.bulk` for its transaction only (`SET LOCAL`), so the per-row
-- trigger stands aside for it alone; an import's `store_meta.bulk` still
-- works as before.
CREATE OR REPLACE FUNCTION gateway_link_changed() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('gateway.bulk', true) = 'on'
        OR (SELECT bulk FROM store_meta WHERE id = 1) <> 0 THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE'
        AND (OLD.host <> NEW.host OR OLD.code <> NEW.code)) THEN
        PERFORM gateway_log_link_change(OLD.host, OLD.code);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM gateway_log_link_change(NEW.host, NEW.code);
    END IF;
    RETURN NULL;
END;
$$;
