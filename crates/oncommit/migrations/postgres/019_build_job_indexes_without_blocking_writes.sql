-- The indexes and checks that migrations 004, 011, 012 and 013 once built inside their
-- transactions, which held a lock blocking every enqueue and claim while an index was built
-- over the whole jobs table (a minute on tens of millions of rows). Built here, each
-- statement on its own: CONCURRENTLY lets writes go on; VALIDATE CONSTRAINT scans the table
-- under a lock that blocks no reader or writer. Where a database has them already (built
-- by the older migrations), each statement does nothing. An index left INVALID by an
-- interrupted build is dropped and built again by the runner (driver::migrations).
-- oncommit: outside a transaction

-- Failed and cancelled jobs, which the dashboard polls for (see 004).
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_discarded ON oncommit.jobs (id) WHERE state IN ('failed', 'cancelled');

-- At most one row holds a given uniqueness hash in the states it names (see 011).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS jobs_unique_hash ON oncommit.jobs (unique_hash)
    WHERE unique_hash IS NOT NULL AND ((unique_states >> (CASE state WHEN 'scheduled' THEN 0 WHEN 'available' THEN 1
        WHEN 'running' THEN 2 WHEN 'retryable' THEN 3 WHEN 'completed' THEN 4 WHEN 'failed' THEN 5
        WHEN 'cancelled' THEN 6 WHEN 'pending' THEN 7 ELSE 31 END)) & 1) = 1;

-- Pending jobs, and a workflow's jobs (see 012).
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_pending ON oncommit.jobs (id) WHERE state = 'pending';
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_workflow ON oncommit.jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;

-- A key's unfinished jobs, in enqueue order: its holders are counted and its next pending
-- job found here, however long the table's history. Rows without a key are not in it (see 013).
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_concurrency_key ON oncommit.jobs (concurrency_key, id)
    WHERE concurrency_key IS NOT NULL AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable');

ALTER TABLE oncommit.jobs VALIDATE CONSTRAINT jobs_state_check;
ALTER TABLE oncommit.jobs VALIDATE CONSTRAINT jobs_on_parent_failure_check;
ALTER TABLE oncommit.jobs VALIDATE CONSTRAINT jobs_key_limit_check;
