-- jobs_state (state, id) made every claim and every completion insert one more index entry,
-- for listings only: end to end throughput rose by about a sixth without it. Listings are
-- served by the partial indexes instead (running: jobs_running; scheduled and retryable:
-- jobs_due; recent and completed: the primary key), and failed and cancelled jobs, which the
-- dashboard polls for, get the index jobs_discarded, touched only when a job is discarded
-- (built by migration 019, without blocking writes).
DROP INDEX IF EXISTS oncommit.jobs_state;
