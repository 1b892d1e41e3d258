-- UChat's partner webhooks, stored raw and once each: UChat documents no event id, so
-- a redelivery is known by its body's digest (or the event id, should one come).
CREATE TABLE uchat_events (
    id           BIGSERIAL   PRIMARY KEY,
    dedup_key    TEXT        NOT NULL UNIQUE,
    event_type   TEXT        NOT NULL,
    workspace_id BIGINT,
    raw_body     TEXT        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX uchat_events_received ON uchat_events (received_at);

-- Each reconciliation's report: its drifts, and how many orders drifted.
CREATE TABLE reconcile_reports (
    id              BIGSERIAL   PRIMARY KEY,
    -- The order checked alone, if one was.
    order_id        BIGINT,
    -- Every live order was checked: the drift gauge reads the newest such run.
    every_order     BOOLEAN     NOT NULL,
    repair          BOOLEAN     NOT NULL,
    orders_in_drift BIGINT      NOT NULL,
    report          JSONB       NOT NULL,
    finished_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_reports_every_order ON reconcile_reports (id) WHERE every_order;

-- UChat said the partner's credit ran out (`no_enough_credit`, or a call held for it),
-- and no call that spends credit has succeeded since. One row.
CREATE TABLE partner_credit_alert (
    single BOOLEAN     PRIMARY KEY DEFAULT true CHECK (single),
    since  TIMESTAMPTZ
);

INSERT INTO partner_credit_alert DEFAULT VALUES;
