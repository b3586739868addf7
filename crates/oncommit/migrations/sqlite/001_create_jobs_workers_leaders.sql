-- The job queue: one row per job. States and transitions: docs/jobs.md.
-- Times are milliseconds since the Unix epoch (UTC); "now" is written with julianday(), which
-- every SQLite version has (unixepoch('subsec') needs 3.42).
CREATE TABLE oncommit_jobs (
    -- AUTOINCREMENT: ids are never reused, so a job id always names one job.
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL DEFAULT '{{QUEUE}}',
    task             TEXT    NOT NULL,
    args             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(args)),
    state            TEXT    NOT NULL DEFAULT 'available' CHECK (state IN
                         ('scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT {{PRIORITY}},
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT {{MAX_ATTEMPTS}} CHECK (max_attempts > 0),
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

CREATE INDEX oncommit_jobs_claim ON oncommit_jobs (queue, priority, run_at, id) WHERE state = 'available';
CREATE INDEX oncommit_jobs_due ON oncommit_jobs (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX oncommit_jobs_running ON oncommit_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX oncommit_jobs_finished ON oncommit_jobs (finished_at) WHERE state IN ('completed', 'failed', 'cancelled');
CREATE INDEX oncommit_jobs_state ON oncommit_jobs (state, id);
CREATE UNIQUE INDEX oncommit_jobs_unique_key ON oncommit_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');

-- A plain-SQL INSERT with a future run_at is scheduled, not available.
-- include: current/jobs_schedule_future.sql

CREATE TABLE oncommit_workers (
    id           TEXT    PRIMARY KEY,
    hostname     TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT    NOT NULL,
    started_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    heartbeat_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);

CREATE TABLE oncommit_leaders (
    name       TEXT    PRIMARY KEY,
    leader_id  TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
