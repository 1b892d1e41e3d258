-- The console's charts read the last few days by time: events by when they arrived, and
-- partner calls by when they finished. Each chart is one index range, whatever the
-- tables' size.
CREATE INDEX events_received ON events (received_at);
CREATE INDEX partner_calls_finished ON partner_calls (finished_at) WHERE finished_at IS NOT NULL;
