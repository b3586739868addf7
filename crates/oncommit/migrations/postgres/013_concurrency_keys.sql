-- Concurrency keys (docs/flow-control.md): jobs sharing a key run at most `key_limit` at a
-- time (1 by default), admitted in enqueue order, across all workers. A keyed job holds one
-- of its key's slots from its admission (scheduled or available) until it finishes; a job
-- enqueued while the slots are taken waits in `pending`, and is admitted in the transaction
-- that finishes a holder. Enqueuers and finishers of one key take turns on an advisory lock
-- of that key, so a slot freed while a job is being enqueued is never missed.
ALTER TABLE oncommit.jobs
    ADD COLUMN IF NOT EXISTS concurrency_key text,
    ADD COLUMN IF NOT EXISTS key_limit integer;
-- NOT VALID: no scan under the exclusive lock; validated by migration 019.
ALTER TABLE oncommit.jobs DROP CONSTRAINT IF EXISTS jobs_key_limit_check;
ALTER TABLE oncommit.jobs ADD CONSTRAINT jobs_key_limit_check CHECK (key_limit > 0) NOT VALID;

-- A key's unfinished jobs are found by the index jobs_concurrency_key, built by migration
-- 019 without blocking writes.

-- Admits the pending jobs of `key` that its free slots allow, oldest first; returns the
-- queues of those made available now. The caller holds the key's advisory lock.
-- include: current/admit_by_key.sql

-- A keyed job that leaves its slot (finished, or deleted unfinished) admits the next.
-- include: current/release_key_slot.sql

CREATE TRIGGER jobs_release_key_slot AFTER UPDATE OF state ON oncommit.jobs
    FOR EACH ROW
    WHEN (NEW.concurrency_key IS NOT NULL AND OLD.state IN ('scheduled', 'available', 'running', 'retryable')
          AND NEW.state NOT IN ('scheduled', 'available', 'running', 'retryable'))
    EXECUTE FUNCTION oncommit.release_key_slot();

CREATE TRIGGER jobs_release_key_slot_of_deleted AFTER DELETE ON oncommit.jobs
    FOR EACH ROW
    WHEN (OLD.concurrency_key IS NOT NULL AND OLD.state IN ('scheduled', 'available', 'running', 'retryable'))
    EXECUTE FUNCTION oncommit.release_key_slot();
