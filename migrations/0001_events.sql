-- Every authentic Stripe event, stored once, before we answer Stripe.
CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    stripe_event_id TEXT        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    api_version     TEXT,
    livemode        BOOLEAN     NOT NULL,
    -- Stripe's `created` (unix seconds): with the event id, the order events are applied in.
    stripe_created  BIGINT      NOT NULL,
    -- The body exactly as signed, and the same as JSON for queries.
    raw_body        TEXT        NOT NULL,
    payload         JSONB       NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processed', 'ignored', 'failed')),
    error           TEXT,
    processed_at    TIMESTAMPTZ
);

CREATE INDEX events_pending ON events (stripe_created, stripe_event_id) WHERE status = 'pending';
