-- The operator API and /metrics at any table size: each filtered list reads one index
-- range newest first, the due backlog reads only due calls, and the counts by status are
-- kept as rows change instead of counted at every read.

-- Filters, each with the id, so "newest first, after this cursor" is one index range
-- whatever plan Postgres caches for the statement.
DROP INDEX orders_email;
CREATE INDEX orders_email ON orders (lower(email), id);
DROP INDEX orders_customer;
CREATE INDEX orders_customer ON orders (stripe_customer, id);
DROP INDEX orders_workspace;
CREATE INDEX orders_workspace ON orders (workspace_id, id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX partner_calls_status ON partner_calls (status, id);

-- Calls due or waiting to be, whether or not they are their order's first unfinished one:
-- the backlog gauges read these rows only.
CREATE INDEX partner_calls_waiting ON partner_calls (next_attempt_at)
    WHERE status IN ('pending', 'held');

-- Orders and partner calls by status. Writers only ever add rows (-1 for the old status,
-- +1 for the new), so no two transactions wait on one counter row, nor deadlock over two;
-- the service folds them into one row per status now and then (`db::stats::fold`).
CREATE TABLE status_counts (
    table_name TEXT   NOT NULL,
    status     TEXT   NOT NULL,
    delta      BIGINT NOT NULL
);

CREATE FUNCTION count_statuses() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO status_counts VALUES (TG_TABLE_NAME, OLD.status, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO status_counts VALUES (TG_TABLE_NAME, NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION uncount_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM status_counts WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
END;
$$;

CREATE TRIGGER orders_counted AFTER INSERT OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION count_statuses();
CREATE TRIGGER orders_recounted AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION count_statuses();
CREATE TRIGGER orders_uncounted AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION uncount_truncated();
CREATE TRIGGER partner_calls_counted AFTER INSERT OR DELETE ON partner_calls
    FOR EACH ROW EXECUTE FUNCTION count_statuses();
CREATE TRIGGER partner_calls_recounted AFTER UPDATE OF status ON partner_calls
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION count_statuses();
CREATE TRIGGER partner_calls_uncounted AFTER TRUNCATE ON partner_calls
    FOR EACH STATEMENT EXECUTE FUNCTION uncount_truncated();

-- Counts the tables anew: here for the rows already there, and for an operator who
-- loaded rows with triggers off.
CREATE FUNCTION recount_statuses() RETURNS VOID
LANGUAGE sql AS $$
    DELETE FROM status_counts;
    INSERT INTO status_counts (table_name, status, delta)
    SELECT 'orders', status, count(*) FROM orders GROUP BY status
    UNION ALL
    SELECT 'partner_calls', status, count(*) FROM partner_calls GROUP BY status;
$$;

SELECT recount_statuses();
