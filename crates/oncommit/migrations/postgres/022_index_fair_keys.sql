-- The index a fair queue's claim walks (migration 021): its available jobs with a key, by
-- priority, key and id. The claim reads the next key after a key in one probe, and a key's
-- first jobs in another, so a claim costs a probe per key it serves, whatever the backlog
-- and however many keys wait. Built without blocking writes.
-- oncommit: outside a transaction

CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_fair_available ON oncommit.jobs (queue, priority, fair_key, id)
    WHERE state = 'available' AND fair_key IS NOT NULL;

ALTER TABLE oncommit.jobs VALIDATE CONSTRAINT jobs_fair_check;
