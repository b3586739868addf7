-- What each task declares for its jobs (see the PostgreSQL migration of the same name):
-- recorded by the workers that register the task, applied to every job enqueued without
-- those options. Explicit value > the task's declaration > the default ('default', 0, 25).
CREATE TABLE oncommit_tasks (
    name         TEXT    PRIMARY KEY,
    queue        TEXT    NOT NULL CHECK (typeof(queue) = 'text' AND queue <> '' AND length(CAST(queue AS BLOB)) <= 255
                                         AND instr(queue, ',') = 0 AND instr(queue, ':') = 0),
    priority     INTEGER NOT NULL CHECK (typeof(priority) = 'integer' AND priority BETWEEN -32768 AND 32767),
    max_attempts INTEGER NOT NULL CHECK (typeof(max_attempts) = 'integer' AND max_attempts > 0),
    declared_by  TEXT    NOT NULL,
    declared_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);

-- SQLite cannot drop a column default, and a NOT NULL column with a default cannot tell
-- "not given" from "given as 25". So the jobs table is rebuilt with queue, priority and
-- max_attempts left NULL when not given; the AFTER INSERT trigger below fills them in the
-- same statement, so no reader ever sees a NULL.
CREATE TABLE oncommit_jobs_rebuilt (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT,
    task             TEXT    NOT NULL,
    args             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    state            TEXT    NOT NULL DEFAULT 'available' CHECK (state IN
                         ('scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    priority         INTEGER,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER CHECK (max_attempts > 0),
    run_at           INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    attempted_at     INTEGER,
    finished_at      INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    errors           TEXT    NOT NULL DEFAULT '[]',
    unique_key       TEXT
);

INSERT INTO oncommit_jobs_rebuilt (id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at,
                                   attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors,
                                   unique_key)
SELECT id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at,
       attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors, unique_key
FROM oncommit_jobs;

-- Ids are never reused: the new table goes on from the old one's counter, which may be past
-- its largest id (pruned jobs).
DELETE FROM sqlite_sequence WHERE name = 'oncommit_jobs_rebuilt';
INSERT INTO sqlite_sequence (name, seq) SELECT 'oncommit_jobs_rebuilt', seq FROM sqlite_sequence WHERE name = 'oncommit_jobs';

DROP TABLE oncommit_jobs;
ALTER TABLE oncommit_jobs_rebuilt RENAME TO oncommit_jobs;

CREATE INDEX oncommit_jobs_claim ON oncommit_jobs (queue, priority, run_at, id) WHERE state = 'available';
CREATE INDEX oncommit_jobs_due ON oncommit_jobs (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX oncommit_jobs_running ON oncommit_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX oncommit_jobs_finished ON oncommit_jobs (finished_at) WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX oncommit_jobs_discarded ON oncommit_jobs (id) WHERE state IN ('failed', 'cancelled');
CREATE UNIQUE INDEX oncommit_jobs_unique_key ON oncommit_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');

-- The triggers went with the old table; these are migrations 001 and 004's, except that a
-- queue left out (NULL) is not refused here: it is filled from the declaration, which the
-- CHECK of oncommit_tasks keeps servable.
-- include: current/jobs_schedule_future.sql

-- include: current/jobs_refuse_bad_run_at.sql

-- include: current/jobs_refuse_bad_queue.sql

-- include: current/jobs_apply_task_declaration.sql
