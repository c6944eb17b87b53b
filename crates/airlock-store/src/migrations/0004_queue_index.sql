-- The dispatcher's claim walks the connections that have queued jobs and
-- takes each one's oldest: both are index probes on (state, connection_id, id),
-- so a claim does not slow down as the queue grows.
CREATE INDEX jobs_queue ON jobs (state, connection_id, id);
