-- Four-eyes approvals (issue 19): one row per request for an action that
-- waits for approval. Decisions are kept in order as a JSON array on the
-- row, so that the row's `version` is the one compare-and-set token of a
-- decision, an expiry and a grant's use: two changes racing cannot both win.
CREATE TABLE approvals (
    id                  TEXT PRIMARY KEY,
    permission          TEXT NOT NULL,
    connection_id       TEXT NOT NULL,
    job_type            TEXT NOT NULL,
    job_id              TEXT,
    requester_issuer    TEXT NOT NULL,
    requester_subject   TEXT NOT NULL,
    requester_kind      TEXT NOT NULL,
    requester_client_id TEXT,
    channel             TEXT NOT NULL,
    reason              TEXT,
    state               TEXT NOT NULL,
    decisions           TEXT NOT NULL,
    min_approvals       BIGINT NOT NULL,
    requested_at        BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    approved_at         BIGINT,
    grant_expires_at    BIGINT,
    used_at             BIGINT,
    version             BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX approvals_by_state ON approvals (state, requested_at);
CREATE INDEX approvals_by_requester ON approvals (requester_issuer, requester_subject, requested_at);
