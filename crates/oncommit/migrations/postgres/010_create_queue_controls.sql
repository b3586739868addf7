-- Flow control of a whole queue, shared by every worker on every machine: paused or not, at
-- most N jobs running at once, at most N starts per period. A queue without a row here (or
-- with a row that sets nothing) is claimed the fast way, by any worker, with no lock; a
-- controlled queue is claimed under a lock on its row, so the running jobs are counted and
-- the rate window advanced by one claimer at a time. Guide: docs/flow-control.md.
CREATE TABLE IF NOT EXISTS oncommit.queues (
    name               text        PRIMARY KEY CHECK (name <> '' AND octet_length(name) <= 255
                                                      AND strpos(name, ',') = 0 AND strpos(name, ':') = 0),
    -- No worker claims a job of a paused queue; jobs already running finish.
    paused             boolean     NOT NULL DEFAULT false,
    -- At most this many jobs of the queue are `running` at once, across all workers
    -- (prefetched jobs included: they are running rows). NULL: no limit.
    concurrency_limit  integer     CHECK (concurrency_limit > 0),
    -- At most `rate_limit` jobs start in each window of `rate_period_ms` (windows aligned
    -- to the Unix epoch). Both NULL: no limit.
    rate_limit         integer     CHECK (rate_limit > 0),
    rate_period_ms     bigint      CHECK (rate_period_ms > 0),
    -- The current window (its start, epoch ms) and the jobs started in it.
    rate_window_ms     bigint,
    rate_window_starts integer     NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((rate_limit IS NULL) = (rate_period_ms IS NULL))
);

-- The settings, from SQL (the CLI, the dashboard and `Db` call these too). Each creates the
-- queue's row if needed and wakes the queue's workers at commit, so a resumed queue or a
-- raised limit is acted on at once.

-- Stops all claims of the queue until it is resumed; running jobs finish.
-- include: current/pause_queue.sql

-- include: current/resume_queue.sql

-- At most `concurrency_limit` running jobs of the queue across all workers; NULL removes
-- the limit.
-- include: current/limit_queue.sql

-- At most `max_starts` job starts of the queue per `per` (at least a millisecond); NULL for
-- both removes the limit.
-- include: current/rate_limit_queue.sql
