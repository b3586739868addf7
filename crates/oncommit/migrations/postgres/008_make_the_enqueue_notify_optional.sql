-- oncommit.enqueue gains `notify` (default true, as before). A transaction that NOTIFYs holds
-- PostgreSQL's notify lock from its commit until its WAL is flushed, so every enqueuing
-- commit waited for the others' flushes: one job per transaction ran at a third of the rate
-- of the same INSERT. oncommit's Rust client passes false and sends the NOTIFY itself right
-- after the COMMIT, in a transaction of its own that writes nothing and so waits for no
-- flush. Callers from other languages may do the same (`SELECT pg_notify('oncommit_jobs',
-- queue)` after committing), or leave the wake-up to the workers' poll.
--
-- A new parameter changes the signature: the old function goes, so that calls by position
-- or name keep resolving to exactly one.
DROP FUNCTION oncommit.enqueue(text, jsonb, text, integer, timestamptz, integer, text);

CREATE FUNCTION oncommit.enqueue(
    task         text,
    args         jsonb       DEFAULT '{}'::jsonb,
    queue        text        DEFAULT NULL,
    priority     integer     DEFAULT NULL,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT NULL,
    unique_key   text        DEFAULT NULL,
    notify       boolean     DEFAULT true
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    job_id    bigint;
    job_queue text;
    due       timestamptz := coalesce(enqueue.run_at, now());
    new_state text := CASE WHEN coalesce(enqueue.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END;
BEGIN
    IF enqueue.max_attempts IS NOT NULL AND enqueue.max_attempts < 1 THEN
        RAISE EXCEPTION 'oncommit: invalid max_attempts %: a job needs at least one attempt', enqueue.max_attempts
            USING ERRCODE = 'check_violation';
    END IF;
    -- A conflicting job may finish between our insert and our look-up: try again then.
    FOR _ IN 1..10 LOOP
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, unique_key, state)
        VALUES (enqueue.task, coalesce(enqueue.args, '{}'::jsonb), enqueue.queue, enqueue.priority, due,
                enqueue.max_attempts, enqueue.unique_key, new_state)
        ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable')
            DO NOTHING
        RETURNING j.id, j.queue INTO job_id, job_queue;
        IF job_id IS NOT NULL THEN
            IF new_state = 'available' AND enqueue.notify THEN
                PERFORM pg_notify('oncommit_jobs', job_queue);
            END IF;
            RETURN job_id;
        END IF;
        SELECT j.id INTO job_id FROM oncommit.jobs j
        WHERE j.unique_key = enqueue.unique_key
          AND j.state IN ('scheduled', 'available', 'running', 'retryable');
        IF job_id IS NOT NULL THEN
            RETURN job_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'oncommit.enqueue: unique key % kept changing hands', enqueue.unique_key;
END
$$;
