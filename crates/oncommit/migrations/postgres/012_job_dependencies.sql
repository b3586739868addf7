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
    ADD COLUMN IF NOT EXISTS on_parent_failure text CHECK (on_parent_failure IN ('cancel', 'run')),
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
CREATE INDEX IF NOT EXISTS jobs_pending ON oncommit.jobs (id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS jobs_workflow ON oncommit.jobs (workflow_id, id) WHERE workflow_id IS NOT NULL;

-- Settles the pending dependants of a job that just finished (or was deleted unfinished),
-- in the same transaction. The dependants' rows are locked first: when two parents of one
-- job finish at once, the second waits for the first's commit, then sees both finished, so
-- the last finish always promotes (each statement below reads a snapshot taken after the
-- locks were granted).
CREATE OR REPLACE FUNCTION oncommit.settle_dependants() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    settled_id    bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    settled_state text := CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.state END;
    children      bigint[];
    woken         text[];
BEGIN
    SELECT array_agg(c.id ORDER BY c.id) INTO children FROM (
        SELECT j.id FROM oncommit.job_dependencies d JOIN oncommit.jobs j ON j.id = d.job_id
        WHERE d.parent_id = settled_id AND j.state = 'pending'
        ORDER BY j.id FOR UPDATE OF j) AS c;
    IF children IS NULL THEN
        RETURN NULL;
    END IF;
    IF settled_state <> 'completed' THEN
        UPDATE oncommit.jobs SET state = 'cancelled', finished_at = now(),
            errors = CASE WHEN jsonb_typeof(errors) = 'array' THEN errors ELSE '[]'::jsonb END
                || jsonb_build_array(jsonb_build_object('attempt', attempt, 'at', (extract(epoch FROM now()) * 1000)::int8,
                       'error', format('parent job %s %s', settled_id, settled_state)))
        WHERE id = ANY(children) AND state = 'pending' AND coalesce(on_parent_failure, 'cancel') = 'cancel';
    END IF;
    WITH ready AS (
        UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END
        WHERE c.id = ANY(children) AND c.state = 'pending'
          AND NOT EXISTS (
              SELECT 1 FROM oncommit.job_dependencies d JOIN oncommit.jobs p ON p.id = d.parent_id
              WHERE d.job_id = c.id AND p.state <> 'completed'
                AND NOT (c.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')))
        RETURNING c.queue, c.state)
    SELECT array_agg(DISTINCT queue) INTO woken FROM ready WHERE state = 'available';
    PERFORM pg_notify('oncommit_jobs', q) FROM unnest(woken) AS q;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_settle_dependants AFTER UPDATE OF state ON oncommit.jobs
    FOR EACH ROW
    WHEN (NEW.has_dependants AND NEW.state IN ('completed', 'failed', 'cancelled') AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION oncommit.settle_dependants();

CREATE TRIGGER jobs_settle_dependants_of_deleted AFTER DELETE ON oncommit.jobs
    FOR EACH ROW
    WHEN (OLD.has_dependants AND OLD.state NOT IN ('completed', 'failed', 'cancelled'))
    EXECUTE FUNCTION oncommit.settle_dependants();
