-- Delivery: what a non-idempotent call found before its first
-- try, and every attempt on record.
ALTER TABLE partner_calls
    -- The workspace as it was before the first try of a call that is not idempotent, so a
    -- retry after an ambiguous outcome can tell whether the first try took effect.
    ADD COLUMN baseline   JSONB,
    ADD COLUMN held_since TIMESTAMPTZ;

-- The order's own status while delivery is blocked (dead or held call); restored once
-- the blocking call is resolved.
ALTER TABLE orders ADD COLUMN blocked_status TEXT;

CREATE TABLE attempts (
    id               BIGSERIAL PRIMARY KEY,
    call_id          BIGINT      NOT NULL REFERENCES partner_calls (id),
    attempt          INT         NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      INT         NOT NULL,
    http_status      INT,
    response_excerpt TEXT,
    error            TEXT,
    -- succeeded | retry | held | dead | already_applied | superseded
    outcome          TEXT        NOT NULL
);

CREATE INDEX attempts_call ON attempts (call_id, id);
CREATE INDEX partner_calls_order ON partner_calls (order_id, position);
CREATE INDEX partner_calls_running ON partner_calls (lease_expires_at) WHERE status = 'running';
