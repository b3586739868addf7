-- Dependencies between jobs (docs/workflows.md): a job may wait for others, its parents, in
-- the new state `pending`, and becomes `available` (or `scheduled`) in the transaction that
-- finishes the last of them. A parent that fails for good, is cancelled, or is deleted
-- unfinished cancels its pending dependants, naming itself, unless they run anyway
-- (`on_parent_failure = 'run'`). A task may store a result with its job, for dependants,
-- the CLI and the dashboard to read; it is pruned with the job.

-- NOT VALID: the rows already there passed the stricter check; no scan of the table.
ALTER TABLE oncommit.jobs DROP CONSTRAINT IF EXISTS jobs_state_check;
ALTER TABLE oncommit.jobs ADD CONSTRAINT jobs_state_check CHECK (state IN
    ('pending', 'scheduled', 'available', 'running', 'retryable', 'completed', 'failed', 'cancelled')) NOT VALID;

-- Nullable or with a constant default: adding them rewrites nothing.
ALTER TABLE oncommit.jobs
    ADD COLUMN IF NOT EXISTS result jsonb,
    ADD COLUMN IF NOT EXISTS workflow_id text,
    ADD COLUMN IF NOT EXISTS on_parent_failure text,
    -- Set when the first dependant is enqueued: the trigger below fires only for such rows.
    ADD COLUMN IF NOT EXISTS has_dependants boolean NOT NULL DEFAULT false;

-- One row per edge; kept until the dependant is pruned or deleted (the dashboard draws
-- finished workflows from them). A parent pruned before its dependant counts as completed.
CREATE TABLE IF NOT EXISTS oncommit.job_dependencies (
    job_id    bigint NOT NULL,
    parent_id bigint NOT NULL,
    PRIMARY KEY (job_id, parent_id)
);
CREATE INDEX IF NOT EXISTS job_dependencies_parent ON oncommit.job_dependencies (parent_id);
-- A CHECK written in ADD COLUMN would scan the table under its exclusive lock: added NOT
-- VALID (no scan), and validated by migration 019, which also builds this migration's
-- indexes on oncommit.jobs (jobs_pending, jobs_workflow) without blocking writes.
ALTER TABLE oncommit.jobs DROP CONSTRAINT IF EXISTS jobs_on_parent_failure_check;
ALTER TABLE oncommit.jobs ADD CONSTRAINT jobs_on_parent_failure_check
    CHECK (on_parent_failure IN ('cancel', 'run')) NOT VALID;

-- Settles the pending dependants of a job that just finished (or was deleted unfinished),
-- in the same transaction. The dependants' rows are locked first: when two parents of one
-- job finish at once, the second waits for the first's commit, then sees both finished, so
-- the last finish always promotes (each statement below reads a snapshot taken after the
-- locks were granted).
-- include: current/settle_dependants.sql

CREATE TRIGGER jobs_settle_dependants AFTER UPDATE OF state ON oncommit.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependants AND NEW.state IN ('completed', 'failed', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION oncommit.settle_dependants();

CREATE TRIGGER jobs_settle_dependants_of_deleted AFTER DELETE ON oncommit.jobs
    FOR EACH ROW
    WHEN (OLD.has_dependants AND OLD.state NOT IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION oncommit.settle_dependants();
