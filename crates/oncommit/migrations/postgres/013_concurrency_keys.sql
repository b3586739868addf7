-- Concurrency keys (docs/flow-control.md): jobs sharing a key run at most `key_limit` at a
-- time (1 by default), admitted in enqueue order, across all workers. A keyed job holds one
-- of its key's slots from its admission (scheduled or available) until it finishes; a job
-- enqueued while the slots are taken waits in `pending`, and is admitted in the transaction
-- that finishes a holder. Enqueuers and finishers of one key take turns on an advisory lock
-- of that key, so a slot freed while a job is being enqueued is never missed.
ALTER TABLE oncommit.jobs
    ADD COLUMN IF NOT EXISTS concurrency_key text,
    ADD COLUMN IF NOT EXISTS key_limit integer CHECK (key_limit > 0);

-- A key's unfinished jobs, in enqueue order: its holders are counted and its next pending
-- job found here, however long the table's history. Rows without a key are not in it.
CREATE INDEX IF NOT EXISTS jobs_concurrency_key ON oncommit.jobs (concurrency_key, id)
    WHERE concurrency_key IS NOT NULL AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable');

-- Admits the pending jobs of `key` that its free slots allow, oldest first; returns the
-- queues of those made available now. The caller holds the key's advisory lock.
CREATE OR REPLACE FUNCTION oncommit.admit_by_key(key text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    woken text[];
BEGIN
    WITH slots AS (
        SELECT coalesce((SELECT j.key_limit FROM oncommit.jobs j
                         WHERE j.concurrency_key = admit_by_key.key AND j.state = 'pending' ORDER BY j.id LIMIT 1), 1)
             - (SELECT count(*) FROM oncommit.jobs j WHERE j.concurrency_key = admit_by_key.key
                  AND j.state IN ('scheduled', 'available', 'running', 'retryable')) AS free),
    next AS (
        SELECT j.id FROM oncommit.jobs j
        WHERE j.concurrency_key = admit_by_key.key AND j.state = 'pending'
        ORDER BY j.id LIMIT (SELECT greatest(free, 0) FROM slots)),
    admitted AS (
        UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END
        FROM next WHERE c.id = next.id AND c.state = 'pending'
        RETURNING c.queue, c.state)
    SELECT array_agg(DISTINCT queue) INTO woken FROM admitted WHERE state = 'available';
    RETURN coalesce(woken, '{}');
END
$$;

-- A keyed job that leaves its slot (finished, or deleted unfinished) admits the next.
CREATE OR REPLACE FUNCTION oncommit.release_key_slot() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    freed_key text := CASE WHEN TG_OP = 'DELETE' THEN OLD.concurrency_key ELSE NEW.concurrency_key END;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('oncommit.concurrency_key:' || freed_key, 0));
    PERFORM pg_notify('oncommit_jobs', q) FROM unnest(oncommit.admit_by_key(freed_key)) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_release_key_slot AFTER UPDATE OF state ON oncommit.jobs
    FOR EACH ROW
    WHEN (NEW.concurrency_key IS NOT NULL AND OLD.state IN ('scheduled', 'available', 'running', 'retryable')
          AND NEW.state NOT IN ('scheduled', 'available', 'running', 'retryable'))
    EXECUTE FUNCTION oncommit.release_key_slot();

CREATE TRIGGER jobs_release_key_slot_of_deleted AFTER DELETE ON oncommit.jobs
    FOR EACH ROW
    WHEN (OLD.concurrency_key IS NOT NULL AND OLD.state IN ('scheduled', 'available', 'running', 'retryable'))
    EXECUTE FUNCTION oncommit.release_key_slot();
