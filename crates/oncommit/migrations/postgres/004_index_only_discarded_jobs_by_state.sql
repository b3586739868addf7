-- jobs_state (state, id) made every claim and every completion insert one more index entry,
-- for listings only: end to end throughput rose by about a sixth without it. Listings are
-- served by the partial indexes instead (running: jobs_running; scheduled and retryable:
-- jobs_due; recent and completed: the primary key), and failed and cancelled jobs, which the
-- dashboard polls for, get this index, touched only when a job is discarded.
DROP INDEX IF EXISTS oncommit.jobs_state;
CREATE INDEX IF NOT EXISTS jobs_discarded ON oncommit.jobs (id) WHERE state IN ('failed', 'cancelled');
