-- Recovering what the webhook never delivered, and telling a human what is stuck.

-- An event found in Stripe's event list by a backfill rather than delivered by the
-- webhook. Its `raw_body` is the event as listed (no signature came with it).
ALTER TABLE events ADD COLUMN recovered BOOLEAN NOT NULL DEFAULT false;

-- A backfill reaches back from the newest stored event: one probe of this index.
CREATE INDEX events_created ON events (stripe_created);

-- Each backfill: what it asked Stripe for and what came of it. A run without
-- `finished_at` is in progress, or its process died.
CREATE TABLE backfill_runs (
    id            BIGSERIAL PRIMARY KEY,
    -- `serve` (the periodic run) or `command` (`uchat-billing backfill`).
    started_by    TEXT        NOT NULL CHECK (started_by IN ('serve', 'command')),
    started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ,
    -- Events created at or after this were listed.
    since         TIMESTAMPTZ NOT NULL,
    listed        INT         NOT NULL DEFAULT 0,
    stored        INT         NOT NULL DEFAULT 0,
    already_known INT         NOT NULL DEFAULT 0,
    error         TEXT
);

-- When the order first became due a workspace (paid, or trialing): from then on, a
-- workspace should follow within minutes. Kept by a trigger, whoever writes the row.
ALTER TABLE orders ADD COLUMN paid_at TIMESTAMPTZ;

CREATE FUNCTION orders_note_paid() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.paid_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER orders_paid BEFORE INSERT OR UPDATE OF status, blocked_status ON orders
    FOR EACH ROW
    WHEN (NEW.paid_at IS NULL AND COALESCE(NEW.blocked_status, NEW.status) IN ('active', 'paused'))
    EXECUTE FUNCTION orders_note_paid();

-- Orders already waiting for their workspace count from now.
UPDATE orders SET paid_at = now()
WHERE workspace_id IS NULL AND COALESCE(blocked_status, status) IN ('active', 'paused');

-- Paid orders still without a workspace: few rows, whatever the size of the table, so
-- the gauge costs one short index range at each scrape.
CREATE INDEX orders_awaiting_workspace ON orders (paid_at)
    WHERE workspace_id IS NULL AND COALESCE(blocked_status, status) IN ('active', 'paused');
