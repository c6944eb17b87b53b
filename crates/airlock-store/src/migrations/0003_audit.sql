-- The audit trail: one row per decision, action and job state change,
-- chained by hash (see src/audit/mod.rs for the canonical encoding).
CREATE TABLE audit_log (
    seq                 BIGINT PRIMARY KEY,   -- 1, 2, 3, ... with no gaps
    at                  BIGINT NOT NULL,      -- unix ms
    request_id          TEXT,
    principal_issuer    TEXT,
    principal_subject   TEXT,
    principal_kind      TEXT,
    principal_client_id TEXT,
    channel             TEXT NOT NULL,        -- api | front | mcp | cli | airlock | airbyte
    action              TEXT NOT NULL,        -- e.g. jobs.sync, jobs.cancel, job.state
    workspace_id        TEXT,
    connection_id       TEXT,
    job_id              TEXT,
    airbyte_job_id      BIGINT,
    decision            TEXT NOT NULL,        -- allow | deny | system
    reason              TEXT,
    outcome             TEXT,
    source_ip           TEXT,
    user_agent          TEXT,
    detail              TEXT,                 -- JSON
    prev_hash           TEXT NOT NULL,
    hash                TEXT NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (principal_subject, seq);
CREATE INDEX audit_log_connection ON audit_log (connection_id, seq);
CREATE INDEX audit_log_job ON audit_log (job_id, seq);
CREATE INDEX audit_log_airbyte_job ON audit_log (airbyte_job_id, seq);

-- The head of the chain: every append locks this row first, so appends
-- are serialized and each sees the previous hash.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
