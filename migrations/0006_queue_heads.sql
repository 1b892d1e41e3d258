-- Claims whose cost does not grow with the backlog: the next event and the next partner
-- call of an order are found by index probes, never by comparing every pending row with
-- every other. Triggers keep the queue state, so it holds for rows written by any path.

-- The order keys of pending events, in Stripe's order per key: the nearest older pending
-- event sharing a key with an event is one probe per key. A row lives exactly as long as
-- its event is pending (or stored at all).
CREATE TABLE pending_event_keys (
    order_key       TEXT   NOT NULL,
    stripe_created  BIGINT NOT NULL,
    stripe_event_id TEXT   NOT NULL,
    event_id        BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (order_key, stripe_created, stripe_event_id)
);

INSERT INTO pending_event_keys (order_key, stripe_created, stripe_event_id, event_id)
SELECT unnest(order_keys), stripe_created, stripe_event_id, id FROM events WHERE status = 'pending';

-- The older pending event of the same order that this one was found waiting for: set by
-- the processor that found it, cleared when that event leaves the queue. Only events that
-- wait for nothing are candidates for a claim.
ALTER TABLE events ADD COLUMN waits_for BIGINT REFERENCES events (id) ON DELETE SET NULL;

CREATE INDEX events_waiting ON events (waits_for) WHERE waits_for IS NOT NULL;
CREATE INDEX events_due ON events (next_attempt_at, id) WHERE status = 'pending' AND waits_for IS NULL;
DROP INDEX events_pending;
DROP INDEX events_pending_keys;

-- An event joins the queue when it is stored or reprocessed, and leaves it with its
-- verdict, freeing the events that waited for it. Whoever takes an event out of the queue
-- holds its order-key locks (see `lock_order_keys`), as does a processor recording a wait.
CREATE FUNCTION events_keep_queue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'pending' THEN
        DELETE FROM pending_event_keys
        WHERE order_key = ANY (OLD.order_keys)
          AND stripe_created = OLD.stripe_created AND stripe_event_id = OLD.stripe_event_id;
        UPDATE events SET waits_for = NULL WHERE waits_for = OLD.id;
    END IF;
    IF NEW.status = 'pending' THEN
        INSERT INTO pending_event_keys (order_key, stripe_created, stripe_event_id, event_id)
        SELECT unnest(NEW.order_keys), NEW.stripe_created, NEW.stripe_event_id, NEW.id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_enqueued AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION events_keep_queue();
CREATE TRIGGER events_requeued AFTER UPDATE OF status ON events
    FOR EACH ROW WHEN ((OLD.status = 'pending') <> (NEW.status = 'pending'))
    EXECUTE FUNCTION events_keep_queue();

-- Whether every earlier call of the order has succeeded or was canceled: only such a
-- call, the order's first unfinished one, may run, so only those are claim candidates.
ALTER TABLE partner_calls ADD COLUMN ready BOOLEAN NOT NULL DEFAULT false;

UPDATE partner_calls c SET ready = true
WHERE NOT EXISTS (
    SELECT 1 FROM partner_calls earlier
    WHERE earlier.order_id = c.order_id AND earlier.position < c.position
      AND earlier.status NOT IN ('succeeded', 'canceled'));

DROP INDEX partner_calls_due;
CREATE INDEX partner_calls_due ON partner_calls (next_attempt_at, id)
    WHERE status IN ('pending', 'held') AND ready;
CREATE INDEX partner_calls_unfinished ON partner_calls (order_id, position)
    WHERE status NOT IN ('succeeded', 'canceled');

-- A new call is ready if nothing of its order is unfinished before it (the rows a
-- statement inserted before it count). Whoever appends calls holds the order's row lock.
CREATE FUNCTION partner_calls_set_ready() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.ready := NOT EXISTS (
        SELECT 1 FROM partner_calls
        WHERE order_id = NEW.order_id AND position < NEW.position
          AND status NOT IN ('succeeded', 'canceled'));
    RETURN NEW;
END;
$$;

CREATE TRIGGER partner_calls_queued BEFORE INSERT ON partner_calls
    FOR EACH ROW EXECUTE FUNCTION partner_calls_set_ready();

-- A call that succeeded or was canceled lets the order's first unfinished call run. The
-- order's row lock comes first, so calls an event appends meanwhile are seen; the service
-- takes it before it finishes a call, so this one is a no-op there.
CREATE FUNCTION partner_calls_ready_next() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM orders WHERE id = NEW.order_id FOR UPDATE;
    UPDATE partner_calls SET ready = true
    WHERE id = (SELECT id FROM partner_calls
                WHERE order_id = NEW.order_id AND status NOT IN ('succeeded', 'canceled')
                ORDER BY position LIMIT 1)
      AND NOT ready;
    RETURN NULL;
END;
$$;

CREATE TRIGGER partner_calls_finished AFTER UPDATE OF status ON partner_calls
    FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'canceled')
                       AND OLD.status NOT IN ('succeeded', 'canceled'))
    EXECUTE FUNCTION partner_calls_ready_next();
