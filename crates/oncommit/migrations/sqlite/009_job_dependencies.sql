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
CREATE TRIGGER oncommit_jobs_schedule_future AFTER INSERT ON oncommit_jobs
WHEN NEW.state = 'available' AND NEW.run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
BEGIN
    UPDATE oncommit_jobs SET state = 'scheduled' WHERE id = NEW.id;
END;

CREATE TRIGGER oncommit_jobs_refuse_bad_run_at BEFORE INSERT ON oncommit_jobs
    WHEN typeof(NEW.run_at) <> 'integer' OR NEW.run_at < -62135596800000 OR NEW.run_at >= 253402300800000
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid run_at: it must be whole milliseconds since the Unix epoch, between the years 1 and 9999');
END;

CREATE TRIGGER oncommit_jobs_refuse_bad_queue BEFORE INSERT ON oncommit_jobs
    WHEN NEW.queue IS NOT NULL AND (typeof(NEW.queue) <> 'text' OR NEW.queue = '' OR length(CAST(NEW.queue AS BLOB)) > 255
         OR instr(NEW.queue, ',') > 0 OR instr(NEW.queue, ':') > 0)
BEGIN
    SELECT RAISE(ABORT, 'oncommit: invalid queue name: it must be 1 to 255 bytes, without "," or ":"');
END;

CREATE TRIGGER oncommit_jobs_apply_task_declaration AFTER INSERT ON oncommit_jobs
    WHEN NEW.queue IS NULL OR NEW.priority IS NULL OR NEW.max_attempts IS NULL
BEGIN
    UPDATE oncommit_jobs SET
        queue = coalesce(NEW.queue, (SELECT queue FROM oncommit_tasks WHERE name = NEW.task), 'default'),
        priority = coalesce(NEW.priority, (SELECT priority FROM oncommit_tasks WHERE name = NEW.task), 0),
        max_attempts = coalesce(NEW.max_attempts, (SELECT max_attempts FROM oncommit_tasks WHERE name = NEW.task), 25)
    WHERE id = NEW.id;
END;

CREATE TABLE IF NOT EXISTS oncommit_job_dependencies (
    job_id    INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS oncommit_job_dependencies_parent ON oncommit_job_dependencies (parent_id);

-- Settles the pending dependants of a job that finished (one writer at a time: no race to
-- guard against). Cancelled dependants settle theirs in turn, through this same trigger:
-- oncommit's connections set `PRAGMA recursive_triggers = ON`.
CREATE TRIGGER oncommit_jobs_settle_dependants AFTER UPDATE OF state ON oncommit_jobs
    WHEN NEW.has_dependants AND NEW.state IN ('completed', 'failed', 'cancelled') AND OLD.state IS NOT NEW.state
BEGIN
    UPDATE oncommit_jobs SET state = 'cancelled',
        finished_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
        errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
            json_object('attempt', attempt, 'at', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
                        'error', 'parent job ' || NEW.id || ' ' || NEW.state))
    WHERE NEW.state <> 'completed' AND state = 'pending' AND coalesce(on_parent_failure, 'cancel') = 'cancel'
      AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = NEW.id);
    UPDATE oncommit_jobs SET state = CASE WHEN run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                                          THEN 'scheduled' ELSE 'available' END
    WHERE state = 'pending' AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = NEW.id)
      AND NOT EXISTS (
          SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id
          WHERE d.job_id = oncommit_jobs.id AND p.state <> 'completed'
            AND NOT (oncommit_jobs.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')));
END;

CREATE TRIGGER oncommit_jobs_settle_dependants_of_deleted AFTER DELETE ON oncommit_jobs
    WHEN OLD.has_dependants AND OLD.state NOT IN ('completed', 'failed', 'cancelled')
BEGIN
    UPDATE oncommit_jobs SET state = 'cancelled',
        finished_at = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
        errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END, '$[#]',
            json_object('attempt', attempt, 'at', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
                        'error', 'parent job ' || OLD.id || ' deleted'))
    WHERE state = 'pending' AND coalesce(on_parent_failure, 'cancel') = 'cancel'
      AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = OLD.id);
    UPDATE oncommit_jobs SET state = CASE WHEN run_at > CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
                                          THEN 'scheduled' ELSE 'available' END
    WHERE state = 'pending' AND id IN (SELECT job_id FROM oncommit_job_dependencies WHERE parent_id = OLD.id)
      AND NOT EXISTS (
          SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id
          WHERE d.job_id = oncommit_jobs.id AND p.state <> 'completed'
            AND NOT (oncommit_jobs.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')));
END;
