-- See the PostgreSQL migration of the same name: listing-only index entries on every claim
-- and completion, traded for a partial index on discarded jobs.
DROP INDEX IF EXISTS oncommit_jobs_state;
CREATE INDEX IF NOT EXISTS oncommit_jobs_discarded ON oncommit_jobs (id) WHERE state IN ('failed', 'cancelled');
