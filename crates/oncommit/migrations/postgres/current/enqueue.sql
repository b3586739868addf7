CREATE OR REPLACE FUNCTION oncommit.enqueue(
    task         text,
    args         jsonb       DEFAULT '{}'::jsonb,
    queue        text        DEFAULT NULL,
    priority     integer     DEFAULT NULL,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT NULL,
    unique_key   text        DEFAULT NULL,
    notify       boolean     DEFAULT true,
    fair_key     text        DEFAULT NULL,
    fair_weight  integer     DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    job_id     bigint;
    job_queue  text;
    due        timestamptz := coalesce(enqueue.run_at, now());
    new_state  text := CASE WHEN coalesce(enqueue.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END;
    d_queue    text;
    d_priority smallint;
    d_attempts integer;
BEGIN
    IF enqueue.max_attempts IS NOT NULL AND enqueue.max_attempts < 1 THEN
        RAISE EXCEPTION 'oncommit: invalid max_attempts %: a job needs at least one attempt', enqueue.max_attempts
            USING ERRCODE = 'check_violation';
    END IF;
    IF enqueue.unique_key IS NULL THEN
        IF enqueue.queue IS NULL OR enqueue.priority IS NULL OR enqueue.max_attempts IS NULL THEN
            SELECT t.queue, t.priority, t.max_attempts INTO d_queue, d_priority, d_attempts
            FROM oncommit.tasks t WHERE t.name = enqueue.task;
        END IF;
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, state, fair_key, fair_weight)
        VALUES (enqueue.task, coalesce(enqueue.args, '{}'::jsonb), coalesce(enqueue.queue, d_queue, '{{QUEUE}}'),
                coalesce(enqueue.priority, d_priority, {{PRIORITY}}), due, coalesce(enqueue.max_attempts, d_attempts, {{MAX_ATTEMPTS}}),
                new_state, enqueue.fair_key, enqueue.fair_weight)
        RETURNING j.id, j.queue INTO job_id, job_queue;
        IF new_state = 'available' AND enqueue.notify THEN
            PERFORM oncommit.wake_sleepers(job_queue);
        END IF;
        RETURN job_id;
    END IF;
    -- A conflicting job may finish between our insert and our look-up: try again then.
    FOR _ IN 1..10 LOOP
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, unique_key, state,
                                        fair_key, fair_weight)
        VALUES (enqueue.task, coalesce(enqueue.args, '{}'::jsonb), enqueue.queue, enqueue.priority, due,
                enqueue.max_attempts, enqueue.unique_key, new_state, enqueue.fair_key, enqueue.fair_weight)
        ON CONFLICT (unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable')
            DO NOTHING
        RETURNING j.id, j.queue INTO job_id, job_queue;
        IF job_id IS NOT NULL THEN
            IF new_state = 'available' AND enqueue.notify THEN
                PERFORM oncommit.wake_sleepers(job_queue);
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
