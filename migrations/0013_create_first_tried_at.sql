-- When a call's first try began, set by the claim that first takes it. A create is made
-- at once on its first try; a repeat looks for a workspace that try may have made, made
-- since this time.
ALTER TABLE partner_calls ADD COLUMN first_tried_at TIMESTAMPTZ;

-- Creates that may have been sent before this upgrade: those that kept the list of the
-- owner's workspaces before their first try (the old way of making a repeat safe), and
-- those running now. Their first try began after they were queued, so the queue time is
-- a safe, earlier bound for the new look. Only counters keep a baseline now.
UPDATE partner_calls SET first_tried_at = created_at, baseline = NULL
WHERE baseline ? 'workspace_ids'
   OR (status = 'running' AND kind IN ('create', 'create-for-existing-user', 'reuse-workspace'));
