-- Webhooks: a cursor over job_events and an outbox of deliveries, each
-- attempt recorded. The deliverer moves the cursor and inserts deliveries in
-- one transaction, so a crash loses no event and enqueues none twice.

-- How far the deliverer has read job_events (a single row, id 1).
CREATE TABLE webhook_cursor (
    id         BIGINT PRIMARY KEY,          -- always 1
    last_seq   BIGINT NOT NULL,             -- job_events.seq read up to, inclusive
    updated_at BIGINT NOT NULL              -- unix ms
);
-- Start at the current end of the timeline: history is not replayed.
INSERT INTO webhook_cursor (id, last_seq, updated_at)
    SELECT 1, COALESCE(MAX(seq), 0), 0 FROM job_events;

-- One row per (webhook, job event) to send.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,       -- UUIDv7; the Airlock-Delivery header
    webhook_id      TEXT NOT NULL,          -- a hash of the webhook's URL (URLs may hold tokens)
    job_id          TEXT NOT NULL,
    event_seq       BIGINT NOT NULL,        -- job_events.seq
    event           TEXT NOT NULL,          -- job.queued | job.started | job.succeeded | job.failed | job.cancelled
    payload         TEXT NOT NULL,          -- the JSON body, without sent_at
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,                 -- unix ms; NULL once delivered or given up
    last_status     BIGINT,                 -- HTTP status of the last attempt, if any
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    failed_at       BIGINT                  -- gave up (attempts exhausted, webhook removed)
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_seq);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id);

-- Every attempt to send a delivery.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt     BIGINT NOT NULL,            -- 1, 2, ...
    at          BIGINT NOT NULL,            -- unix ms, when it was sent
    status      BIGINT,                     -- HTTP status; NULL when no answer came
    error       TEXT,                       -- why it did not count as delivered
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
