-- What each task declares for its jobs (Task::options: queue, priority, attempts), recorded
-- by every worker that registers the task when it starts, so that a job enqueued without
-- those options — by oncommit.enqueue, a raw INSERT, the CLI, another language — gets them.
-- One rule however a job is enqueued: an explicit value, else the task's declaration, else
-- the default ('default', 0, 25).
CREATE TABLE oncommit.tasks (
    name         text        PRIMARY KEY,
    queue        text        NOT NULL CHECK (queue <> '' AND octet_length(queue) <= 255
                                             AND strpos(queue, ',') = 0 AND strpos(queue, ':') = 0),
    priority     smallint    NOT NULL,
    max_attempts integer     NOT NULL CHECK (max_attempts > 0),
    -- The worker that recorded it last (workers of different versions: the last started wins).
    declared_by  text        NOT NULL,
    declared_at  timestamptz NOT NULL DEFAULT now()
);

-- A column left out of an INSERT is NULL now, not its old default, so the trigger below can
-- tell "not given" from "given as 25". NOT NULL still holds: PostgreSQL checks it after the
-- BEFORE triggers have filled the row in.
ALTER TABLE oncommit.jobs
    ALTER COLUMN queue DROP DEFAULT,
    ALTER COLUMN priority DROP DEFAULT,
    ALTER COLUMN max_attempts DROP DEFAULT;

CREATE FUNCTION oncommit.apply_task_declaration() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    declared_queue    text;
    declared_priority smallint;
    declared_attempts integer;
BEGIN
    SELECT t.queue, t.priority, t.max_attempts INTO declared_queue, declared_priority, declared_attempts
    FROM oncommit.tasks t WHERE t.name = NEW.task;
    NEW.queue := coalesce(NEW.queue, declared_queue, 'default');
    NEW.priority := coalesce(NEW.priority, declared_priority, 0);
    NEW.max_attempts := coalesce(NEW.max_attempts, declared_attempts, 25);
    RETURN NEW;
END
$$;

-- Named to sort before jobs_refuse_unservable (BEFORE triggers fire in name order), which
-- then checks the queue this one chose. A row with every value given costs nothing.
CREATE TRIGGER jobs_apply_task_declaration BEFORE INSERT ON oncommit.jobs
    FOR EACH ROW
    WHEN (NEW.queue IS NULL OR NEW.priority IS NULL OR NEW.max_attempts IS NULL)
    EXECUTE FUNCTION oncommit.apply_task_declaration();

-- oncommit.enqueue again, with NULL defaults, so the declaration applies to what the caller
-- leaves out (the queue to notify is the one the row got), and with `notify` (default true):
-- a transaction that NOTIFYs holds PostgreSQL's notify lock from its commit until its WAL
-- is flushed, so enqueuing commits wait for each other's flushes. oncommit's Rust client
-- passes false and wakes the workers after the commit instead (see `notifier`); callers
-- from other languages may do the same (`SELECT pg_notify('oncommit_jobs', queue)` after
-- committing), or leave the wake-up to the workers' poll. A new parameter changes the
-- signature: the old function goes, so calls by position or name resolve to exactly one.
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
