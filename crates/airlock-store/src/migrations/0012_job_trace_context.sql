-- Traces (issue 21): the W3C traceparent of the request that queued a job,
-- so that the span of its dispatch, whenever and wherever it runs, links
-- back to the trigger's trace. NULL when that request was not traced.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
