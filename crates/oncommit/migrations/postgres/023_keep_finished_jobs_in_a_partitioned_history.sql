-- Finished jobs leave the hot table (docs/history.md). A job that completes, fails for good
-- or is cancelled moves, in the statement that finishes it, from oncommit.jobs into
-- oncommit.job_history: partitioned by state (completed; failed and cancelled, kept longer)
-- and then by the time it finished, in leaves the leader creates ahead of time and drops
-- whole once their retention has passed. Dropping a leaf leaves no dead rows; the hot table
-- holds only the jobs still to run, so its indexes stay small however long history is kept.
-- A finished job the jobs table must still hold for its unique key stays there.
CREATE TABLE IF NOT EXISTS oncommit.job_history (LIKE oncommit.jobs) PARTITION BY LIST (state);
CREATE TABLE IF NOT EXISTS oncommit.job_history_completed PARTITION OF oncommit.job_history
    FOR VALUES IN ('completed') PARTITION BY RANGE (finished_at);
CREATE TABLE IF NOT EXISTS oncommit.job_history_discarded PARTITION OF oncommit.job_history
    FOR VALUES IN ('failed', 'cancelled') PARTITION BY RANGE (finished_at);
-- Where a job goes when no leaf covers the time it finished (no leader has run yet): a
-- finish never fails for want of a leaf. The leader prunes these row by row.
CREATE TABLE IF NOT EXISTS oncommit.job_history_completed_default PARTITION OF oncommit.job_history_completed DEFAULT;
CREATE TABLE IF NOT EXISTS oncommit.job_history_discarded_default PARTITION OF oncommit.job_history_discarded DEFAULT;

CREATE INDEX IF NOT EXISTS job_history_id ON oncommit.job_history (id);
CREATE INDEX IF NOT EXISTS job_history_finished ON oncommit.job_history (finished_at);
CREATE INDEX IF NOT EXISTS job_history_workflow ON oncommit.job_history (workflow_id, id) WHERE workflow_id IS NOT NULL;

-- Every job, wherever it is: what listings, lookups by id and dependencies read.
CREATE OR REPLACE VIEW oncommit.all_jobs AS
    SELECT * FROM oncommit.jobs UNION ALL SELECT * FROM oncommit.job_history;

-- A parent that moved to the history settles its dependants with the state it moved with,
-- and dependants find their parents in either table.
-- include: current/settle_dependants.sql

-- How many jobs of each queue and state each partition holds, counted once by the leader
-- when no job can land in it any more, and kept exact as jobs are retried or deleted out of
-- it: a count of the history adds these up and reads only the partitions still filling,
-- rather than every finished job. A row with queue '' marks a partition counted.
CREATE TABLE IF NOT EXISTS oncommit.history_counts (
    partition oid NOT NULL,
    queue     text NOT NULL,
    state     text NOT NULL,
    jobs      bigint NOT NULL,
    PRIMARY KEY (partition, queue, state)
);
