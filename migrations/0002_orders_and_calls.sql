-- What a customer bought, what Stripe says they should have (facts), and what we have
-- provisioned or are provisioning in UChat.
CREATE TABLE orders (
    id              BIGSERIAL PRIMARY KEY,
    stripe_customer TEXT,
    email           TEXT,
    name            TEXT,
    workspace_id    BIGINT,
    facts           JSONB       NOT NULL DEFAULT '{}',
    provisioned     JSONB       NOT NULL DEFAULT '{}',
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'paused', 'canceled', 'refunded', 'needs_attention')),
    attention       TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer ON orders (stripe_customer);
CREATE INDEX orders_email ON orders (email);
CREATE INDEX orders_workspace ON orders (workspace_id);

-- Every Stripe id that leads to an order: subscription, checkout session, payment intent,
-- invoice, charge. Keys carry their kind (`sub:sub_123`), so one index finds the order
-- from whichever ids an event has.
CREATE TABLE order_links (
    stripe_key TEXT   PRIMARY KEY,
    order_id   BIGINT NOT NULL REFERENCES orders (id)
);

CREATE INDEX order_links_order ON order_links (order_id);

ALTER TABLE events
    ADD COLUMN order_id        BIGINT REFERENCES orders (id),
    -- The order keys (`sub:...`, `pi:...`) the event carries, read at intake: an event
    -- waits while an older pending event shares one, so an order's events apply in order.
    ADD COLUMN order_keys      TEXT[]      NOT NULL DEFAULT '{}',
    ADD COLUMN attempts        INT         NOT NULL DEFAULT 0,
    -- When a pending event may be tried again (after a Stripe API outage).
    ADD COLUMN next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now();

-- The partner calls an order needs, in order. The delivery worker runs them.
-- fastupdate off: lookups must not scan a pending list that constant inserts keep long.
CREATE INDEX events_pending_keys ON events USING gin (order_keys) WITH (fastupdate = off)
    WHERE status = 'pending';

CREATE TABLE partner_calls (
    id               BIGSERIAL PRIMARY KEY,
    order_id         BIGINT      NOT NULL REFERENCES orders (id),
    position         INT         NOT NULL,
    kind             TEXT        NOT NULL,
    body             JSONB       NOT NULL,
    event_id         BIGINT      REFERENCES events (id),
    status           TEXT        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'held', 'succeeded', 'dead', 'canceled')),
    attempts         INT         NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A new id per claim: a result is recorded only under the lease that made the call.
    lease_id         UUID,
    lease_expires_at TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    UNIQUE (order_id, position)
);

CREATE INDEX partner_calls_due ON partner_calls (next_attempt_at) WHERE status IN ('pending', 'held');
