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

-- include: current/apply_task_declaration.sql

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
DROP FUNCTION IF EXISTS oncommit.enqueue(text, jsonb, text, integer, timestamptz, integer, text);

-- include: current/enqueue.sql
