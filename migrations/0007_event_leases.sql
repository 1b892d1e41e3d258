-- An event whose processing needs Stripe reads is leased while they run, outside any
-- transaction: the processor pushes its `next_attempt_at` past the lease (so no other
-- claim takes it meanwhile) and applies it only if the lease is still its own.
ALTER TABLE events ADD COLUMN lease_id UUID;
