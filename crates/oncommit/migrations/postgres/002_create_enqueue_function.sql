-- Enqueue from plain SQL, in any client's own transaction:
--   SELECT oncommit.enqueue('do_stuff', '{"pk": 42}', queue => 'default', priority => 0);
-- The job exists if and only if the caller's transaction commits; NOTIFY wakes the
-- workers at that commit. With a unique_key, an unfinished job with the same key is
-- returned instead of a new one.
CREATE OR REPLACE FUNCTION oncommit.enqueue(
    task         text,
    args         jsonb       DEFAULT '{}'::jsonb,
    queue        text        DEFAULT 'default',
    priority     integer     DEFAULT 0,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT 25,
    unique_key   text        DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    job_id    bigint;
    due       timestamptz := coalesce(enqueue.run_at, now());
    new_state text := CASE WHEN coalesce(enqueue.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END;
BEGIN
    -- A conflicting job may finish between our insert and our look-up: try again then.
    FOR _ IN 1..10 LOOP
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, unique_key, state)
        VALUES (enqueue.task, coalesce(enqueue.args, '{}'::jsonb), coalesce(enqueue.queue, 'default'),
                coalesce(enqueue.priority, 0), due, coalesce(enqueue.max_attempts, 25),
                enqueue.unique_key, new_state)
        ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable')
            DO NOTHING
        RETURNING j.id INTO job_id;
        IF job_id IS NOT NULL THEN
            IF new_state = 'available' THEN
                PERFORM pg_notify('oncommit_jobs', coalesce(enqueue.queue, 'default'));
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
