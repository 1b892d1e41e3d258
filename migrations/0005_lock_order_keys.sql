-- Takes the advisory locks of an event's order keys in one round trip, in sorted order,
-- so two transactions never wait on each other in a cycle.
CREATE FUNCTION lock_order_keys(keys TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    key TEXT;
BEGIN
    FOR key IN SELECT k FROM unnest(keys) AS k ORDER BY k LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(key, 0));
    END LOOP;
END;
$$;
