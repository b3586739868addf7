-- The trace context of the code that enqueued each job (see the PostgreSQL migration of the
-- same name). NULL when nothing was traced.
ALTER TABLE oncommit_jobs ADD COLUMN trace_context TEXT;
