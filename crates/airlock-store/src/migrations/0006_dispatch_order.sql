-- The claim first looks at the oldest queued jobs in its own order
-- (run_after, then id), read straight off this index rather than sorted;
-- it replaces the (state, run_after) index, which it extends.
DROP INDEX jobs_dispatch;
CREATE INDEX jobs_dispatch ON jobs (state, run_after, id);
