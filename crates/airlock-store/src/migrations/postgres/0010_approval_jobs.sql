-- Four-eyes approvals, with their jobs (issue 19): a job that waits for an
-- approval names it, and carries its state, changed in the same
-- transaction as the request; every change of a request is an event, in
-- order, for webhooks and the event stream.
ALTER TABLE jobs ADD COLUMN approval_id TEXT;
ALTER TABLE jobs ADD COLUMN approval_state TEXT;

CREATE TABLE approval_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id TEXT NOT NULL,
    event       TEXT NOT NULL,
    at          BIGINT NOT NULL
);
