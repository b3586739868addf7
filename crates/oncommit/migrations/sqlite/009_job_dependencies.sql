-- Dependencies between jobs and their results (see the PostgreSQL migration of the same
-- name). SQLite cannot change a CHECK constraint in place, so the jobs table is rebuilt
-- with `pending` among its states and the new columns, as migration 005 did.
CREATE TABLE oncommit_jobs_rebuilt (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    queue             TEXT,
    task              TEXT    NOT NULL,
    args              TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    state             TEXT    NOT NULL DEFAULT 'available' CHECK (state IN
                          ('pending', 'scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    priority          INTEGER,
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER CHECK (max_attempts > 0),
    run_at            INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    created_at        INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    attempted_at      INTEGER,
    finished_at       INTEGER,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    errors            TEXT    NOT NULL DEFAULT '[]',
    unique_key        TEXT,
    trace_context     TEXT,
    unique_hash       TEXT,
    unique_states     INTEGER,
    result            TEXT,
    workflow_id       TEXT,
    on_parent_failure TEXT CHECK (on_parent_failure IN ('cancel', 'run')),
    has_dependants    INTEGER NOT NULL DEFAULT 0
);

INSERT INTO oncommit_jobs_rebuilt (id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at,
                                   attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors,
                                   unique_key, trace_context, unique_hash, unique_states)
SELECT id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at,
       attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors,
       unique_key, trace_context, unique_hash, unique_states
FROM oncommit_jobs;

DELETE FROM sqlite_sequence WHERE name = 'oncommit_jobs_rebuilt';
INSERT INTO sqlite_sequence (name, seq) SELECT 'oncommit_jobs_rebuilt', seq FROM sqlite_sequence WHERE name = 'oncommit_jobs';

DROP TABLE oncommit_jobs;
ALTER TABLE oncommit_jobs_rebuilt RENAME TO oncommit_jobs;

CREATE INDEX oncommit_jobs_claim ON oncommit_jobs (queue, priority, run_at, id) WHERE state = 'available';
CREATE INDEX oncommit_jobs_due ON oncommit_jobs (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX oncommit_jobs_running ON oncommit_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX oncommit_jobs_finished ON oncommit_jobs (finished_at) WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX oncommit_jobs_discarded ON oncommit_jobs (id) WHERE state IN ('failed', 'cancelled');
CREATE INDEX oncommit_jobs_pending ON oncommit_jobs (id) WHERE state = 'pending';
CREATE INDEX oncommit_jobs_workflow ON oncommit_jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;
CREATE UNIQUE INDEX oncommit_jobs_unique_key ON oncommit_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');
CREATE UNIQUE INDEX oncommit_jobs_unique_hash ON oncommit_jobs (unique_hash)
    WHERE unique_hash IS NOT NULL AND ((unique_states >> (CASE state WHEN 'scheduled' THEN 0 WHEN 'available' THEN 1
        WHEN 'running' THEN 2 WHEN 'retryable' THEN 3 WHEN 'completed' THEN 4 WHEN 'failed' THEN 5
        WHEN 'cancelled' THEN 6 WHEN 'pending' THEN 7 ELSE 31 END)) & 1) = 1;

-- The triggers went with the old table: migration 005's, as they were.
-- include: current/jobs_schedule_future.sql

-- include: current/jobs_refuse_bad_run_at.sql

-- include: current/jobs_refuse_bad_queue.sql

-- include: current/jobs_apply_task_declaration.sql

CREATE TABLE IF NOT EXISTS oncommit_job_dependencies (
    job_id    INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS oncommit_job_dependencies_parent ON oncommit_job_dependencies (parent_id);

-- Settles the pending dependants of a job that finished (one writer at a time: no race to
-- guard against). Cancelled dependants settle theirs in turn, through this same trigger:
-- oncommit's connections set `PRAGMA recursive_triggers = ON`.
-- include: current/jobs_settle_dependants.sql

-- include: current/jobs_settle_dependants_of_deleted.sql
