-- Jobs: the durable queue, and what users see of each trigger.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY,          -- Airlock's job id (UUIDv7: time-ordered)
    connection_id    TEXT NOT NULL,
    workspace_id     TEXT NOT NULL,
    job_type         TEXT NOT NULL,             -- sync | reset
    state            TEXT NOT NULL,             -- queued | starting | pending | running | succeeded | failed | cancelled
    airbyte_job_id   BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0, -- Airbyte jobs started (or tried) for this job
    max_attempts     BIGINT NOT NULL,
    run_after        BIGINT NOT NULL,           -- unix ms: not dispatched before
    lease_owner      TEXT,
    lease_until      BIGINT,                    -- unix ms
    start_requested_at BIGINT,                  -- unix ms: a POST /jobs may have gone out since
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    requested_by     TEXT NOT NULL,             -- principal subject
    requester        TEXT NOT NULL,             -- principal as JSON (issuer, subject, kind, client id)
    channel          TEXT NOT NULL,             -- api | front | mcp | cli | airbyte
    retry_of         TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    rows_synced      BIGINT,
    bytes_synced     BIGINT,
    duration         TEXT,
    error            TEXT
);
CREATE INDEX jobs_dispatch ON jobs (state, run_after);
CREATE INDEX jobs_connection ON jobs (connection_id, state);
CREATE UNIQUE INDEX jobs_airbyte_job ON jobs (airbyte_job_id);
-- At most one job per connection is in Airbyte's hands (or being handed to
-- it): the database, not the dispatcher's care, guarantees it.
CREATE UNIQUE INDEX jobs_one_active_per_connection ON jobs (connection_id)
    WHERE state IN ('starting', 'pending', 'running');

-- Every state a job went through, in order: the job timeline and the SSE feed.
CREATE TABLE job_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id     TEXT NOT NULL,
    state      TEXT NOT NULL,
    at         BIGINT NOT NULL,
    detail     TEXT
);
CREATE INDEX job_events_job ON job_events (job_id, seq);

-- Idempotency keys, per principal, kept 24 h.
CREATE TABLE idempotency_keys (
    principal    TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);
