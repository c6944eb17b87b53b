-- Webhooks of approvals (issue 19): a second timeline, approval_events, is
-- read after its own cursor (webhook_cursor row 2), moved in the same
-- transaction as the deliveries it raises. A delivery now says which
-- timeline its event_seq counts in, so that job event 7 and approval event
-- 7 are two deliveries, not one.

-- Start at the current end of the approvals' timeline: history is not replayed.
INSERT INTO webhook_cursor (id, last_seq, updated_at)
    SELECT 2, COALESCE(MAX(seq), 0), 0 FROM approval_events;

-- 'jobs' (event_seq is job_events.seq) or 'approvals' (approval_events.seq).
ALTER TABLE webhook_deliveries ADD COLUMN timeline TEXT NOT NULL DEFAULT 'jobs';
-- The request an approval's delivery is about; NULL for a job's. (job_id
-- holds the request's job then, or '' when it has none.)
ALTER TABLE webhook_deliveries ADD COLUMN approval_id TEXT;

DROP INDEX webhook_deliveries_once;
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, timeline, event_seq);
