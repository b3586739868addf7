-- The trace context of the code that enqueued each job (W3C `traceparent` and `tracestate`
-- as a JSON object), so the worker's span continues the enqueuing request's trace. NULL
-- when nothing was traced. A nullable column without a default: adding it rewrites nothing,
-- however large the table.
ALTER TABLE oncommit.jobs ADD COLUMN IF NOT EXISTS trace_context text;
