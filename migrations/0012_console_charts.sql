-- The console's charts read the last few days by time: events by when they arrived, and
-- partner calls that succeeded by when, with how long they took. Each chart is one index
-- range, whatever the tables' size.
CREATE INDEX events_received ON events (received_at);
CREATE INDEX partner_calls_succeeded ON partner_calls (finished_at) INCLUDE (created_at)
    WHERE status = 'succeeded';
