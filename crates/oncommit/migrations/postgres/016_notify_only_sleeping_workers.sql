-- Enqueues from SQL NOTIFY only while a worker sleeps on the queue.
--
-- A transaction that NOTIFYs holds PostgreSQL's notify lock from its commit until its WAL is
-- flushed, so concurrent enqueuing commits wait for each other's flushes: `BEGIN; SELECT
-- oncommit.enqueue(…); COMMIT` from 8 clients ran at about 0.6 of a plain INSERT. A
-- NOTIFY is needed only by a worker that waits for one: a busy worker claims again as
-- soon as it has free slots. So a worker that finds its queue empty records that it
-- sleeps (`sleepers`) before it waits, and takes itself off when its claims come back
-- full; oncommit.enqueue and enqueue_many NOTIFY only when a sleeper is recorded.
--
-- No wake-up is lost between the two: an enqueuer holds a shared advisory lock on the
-- queue from its check until its commit, and a worker records itself under the exclusive
-- lock, so it waits for the enqueuers that checked before it, whose jobs are then
-- committed, and claims once more after recording; an enqueuer that checks after sees the
-- record (each statement of these functions reads a fresh snapshot). A caller in
-- REPEATABLE READ or SERIALIZABLE reads the snapshot of its first statement and may miss a
-- record made since: its job then waits for the worker's poll.
--
-- Unlogged: a crash empties it, and the workers record themselves again when they sleep.
-- A dead worker's rows are removed with its row in `workers`; until then they only cost
-- enqueuers a NOTIFY.
CREATE UNLOGGED TABLE IF NOT EXISTS oncommit.sleepers (
    queue  text        NOT NULL,
    worker text        NOT NULL,
    since  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, worker)
);

-- The advisory lock of a queue's sleepers: class 1 of oncommit's two-key advisory locks
-- (concurrency keys use the one-key form), the queue's hash.
CREATE OR REPLACE FUNCTION oncommit.wake_sleepers(queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1330531, hashtext(wake_sleepers.queue));
    IF EXISTS (SELECT 1 FROM oncommit.sleepers s WHERE s.queue = wake_sleepers.queue) THEN
        PERFORM pg_notify('oncommit_jobs', wake_sleepers.queue);
    END IF;
END
$$;

-- oncommit.enqueue and oncommit.enqueue_many as before (migrations 006 and 008), waking
-- through oncommit.wake_sleepers.
CREATE OR REPLACE FUNCTION oncommit.enqueue(
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

CREATE OR REPLACE FUNCTION oncommit.enqueue_many(
    task         text,
    args         jsonb[],
    queue        text        DEFAULT NULL,
    priority     integer     DEFAULT NULL,
    run_at       timestamptz DEFAULT NULL,
    max_attempts integer     DEFAULT NULL,
    unique_keys  text[]      DEFAULT NULL,
    notify       boolean     DEFAULT true
) RETURNS bigint[]
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    due       timestamptz := coalesce(enqueue_many.run_at, now());
    new_state text := CASE WHEN coalesce(enqueue_many.run_at, now()) > now() THEN 'scheduled' ELSE 'available' END;
    d_queue    text;
    d_priority smallint;
    d_attempts integer;
    plain_ids  bigint[];
    ids        bigint[];
BEGIN
    IF enqueue_many.max_attempts IS NOT NULL AND enqueue_many.max_attempts < 1 THEN
        RAISE EXCEPTION 'oncommit: invalid max_attempts %: a job needs at least one attempt', enqueue_many.max_attempts
            USING ERRCODE = 'check_violation';
    END IF;
    IF enqueue_many.unique_keys IS NOT NULL
       AND cardinality(enqueue_many.unique_keys) <> cardinality(enqueue_many.args) THEN
        RAISE EXCEPTION 'oncommit.enqueue_many: % unique keys for % jobs: give one per job (NULL for none)',
            cardinality(enqueue_many.unique_keys), cardinality(enqueue_many.args)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(enqueue_many.args), 0) = 0 THEN
        RETURN '{}';
    END IF;
    -- The task's declaration, looked up once (the insert trigger would look it up per row).
    SELECT t.queue, t.priority, t.max_attempts INTO d_queue, d_priority, d_attempts
    FROM oncommit.tasks t WHERE t.name = enqueue_many.task;
    d_queue := coalesce(enqueue_many.queue, d_queue, 'default');
    d_priority := coalesce(enqueue_many.priority, d_priority, 0);
    d_attempts := coalesce(enqueue_many.max_attempts, d_attempts, 25);

    -- Jobs without a key: one INSERT; sequence values are drawn in insertion order.
    WITH inserted AS (
        INSERT INTO oncommit.jobs AS j (task, args, queue, priority, run_at, max_attempts, state)
        SELECT enqueue_many.task, coalesce(u.a, '{}'::jsonb), d_queue, d_priority, due, d_attempts, new_state
        FROM unnest(enqueue_many.args, coalesce(enqueue_many.unique_keys, '{}'::text[]))
             WITH ORDINALITY AS u(a, k, ord)
        WHERE u.k IS NULL
        ORDER BY u.ord
        RETURNING j.id)
    SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO plain_ids FROM inserted;

    -- Keyed jobs, one by one, with oncommit.enqueue's conflict handling; then every id in the
    -- order of `args`.
    SELECT array_agg(CASE WHEN u.k IS NULL THEN plain_ids[u.plain_ord]
                          ELSE oncommit.enqueue(enqueue_many.task, coalesce(u.a, '{}'::jsonb), d_queue, d_priority,
                                                enqueue_many.run_at, d_attempts, u.k, false) END
                     ORDER BY u.ord)
    INTO ids
    FROM (SELECT a, k, ord, count(*) FILTER (WHERE k IS NULL) OVER (ORDER BY ord) AS plain_ord
          FROM unnest(enqueue_many.args, coalesce(enqueue_many.unique_keys, '{}'::text[]))
               WITH ORDINALITY AS v(a, k, ord)) AS u;

    IF new_state = 'available' AND enqueue_many.notify THEN
        PERFORM oncommit.wake_sleepers(d_queue);
    END IF;
    RETURN ids;
END
$$;
