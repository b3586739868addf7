-- The job queue: one row per job. States and transitions: docs/jobs.md.
CREATE TABLE oncommit.jobs (
    id               bigserial   PRIMARY KEY,
    queue            text        NOT NULL DEFAULT '{{QUEUE}}',
    task             text        NOT NULL,
    args             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state            text        NOT NULL DEFAULT 'available' CHECK (state IN
                         ('scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    -- Lower runs first (0 is the default and the most urgent of the usual range 0..9).
    priority         smallint    NOT NULL DEFAULT {{PRIORITY}},
    -- Incremented and committed when a worker claims the job; also the lease's fencing token.
    attempt          integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT {{MAX_ATTEMPTS}} CHECK (max_attempts > 0),
    run_at           timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    finished_at      timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    -- One object per failed attempt: {"attempt", "at", "error"}.
    errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    unique_key       text
);

-- Claiming: only available rows, in claim order, so a claim never scans finished jobs.
CREATE INDEX jobs_claim ON oncommit.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Promoting scheduled and retryable jobs when they fall due.
CREATE INDEX jobs_due ON oncommit.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Heartbeats and rescuing expired leases look only at running jobs.
CREATE INDEX jobs_running ON oncommit.jobs (lease_expires_at) WHERE state = 'running';
-- Pruning finished jobs by age.
CREATE INDEX jobs_finished ON oncommit.jobs (finished_at) WHERE state IN ('completed', 'failed', 'cancelled');
-- Listing by state (CLI, dashboard).
CREATE INDEX jobs_state ON oncommit.jobs (state, id);
-- At most one unfinished job per unique key.
CREATE UNIQUE INDEX jobs_unique_key ON oncommit.jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');

-- Live workers, for the dashboard and `oncommit workers`.
CREATE TABLE oncommit.workers (
    id           text        PRIMARY KEY,
    hostname     text        NOT NULL,
    pid          integer     NOT NULL,
    queues       jsonb       NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Leader leases: one worker at a time runs the periodic tasks.
CREATE TABLE oncommit.leaders (
    name       text        PRIMARY KEY,
    leader_id  text        NOT NULL,
    expires_at timestamptz NOT NULL
);
