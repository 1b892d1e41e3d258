-- The operator API's order timeline: an order's applied events, and the unapplied ones
-- (failed or pending) that carry one of its Stripe ids.
CREATE INDEX events_order ON events (order_id);
CREATE INDEX events_unapplied_keys ON events USING gin (order_keys) WHERE order_id IS NULL;
