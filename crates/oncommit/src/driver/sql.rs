//! Fragments of SQL that several statements share, as macros so that each statement stays
//! one `&'static str` built at compile time (`concat!`). Declared before the modules that
//! use them: the driver's and the algorithms' above it.
// Each database uses its own fragments: built with one, the other's go unused.
#![cfg_attr(not(all(feature = "postgres", feature = "sqlite")), allow(unused_macros))]

/// The columns of a job row, JSON as text. Times stay `timestamptz` (decoded by chrono):
/// converting five of them per row to epoch milliseconds in the claim cost a quarter of the
/// end-to-end throughput.
macro_rules! pg_job_columns {
    () => {
        "id, queue, task, args::text AS args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors::text AS errors, unique_key, \
         trace_context, result::text AS result, workflow_id, concurrency_key, fair_key"
    };
}

/// Every column of a job's row, in the table's order (`oncommit.job_history` was made
/// `LIKE oncommit.jobs`): what moves between the two tables.
macro_rules! pg_row_columns {
    () => {
        "id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, attempted_at, \
         finished_at, lease_owner, lease_expires_at, cancel_requested, errors, unique_key, trace_context, unique_hash, \
         unique_states, result, workflow_id, on_parent_failure, has_dependants, concurrency_key, key_limit, fair_key, \
         fair_weight"
    };
}

/// Whether finishing job `$j` as `$state` moves it to `oncommit.job_history` (PostgreSQL):
/// unless it must stay in the jobs table to hold its unique key in that state (the key's
/// index covers the jobs table only). Never NULL.
macro_rules! pg_moves_to_history {
    ($j:literal, $state:literal) => {
        concat!(
            "(",
            $state,
            " IN ('completed', 'failed', 'cancelled') AND (",
            $j,
            ".unique_hash IS NULL OR ((",
            $j,
            ".unique_states >> CASE ",
            $state,
            " WHEN 'completed' THEN 4 WHEN 'failed' THEN 5 ELSE 6 END) & 1) = 0)) IS TRUE"
        )
    };
}

/// A CTE that takes the jobs a statement's `gone` CTE deleted from the history (`RETURNING
/// tableoid, queue, state`) off their partitions' counts (PostgreSQL's `history_counts`),
/// so that a counted partition's counts stay exact.
macro_rules! pg_uncount_gone {
    () => {
        "uncounted AS (UPDATE oncommit.history_counts n SET jobs = n.jobs - g.jobs \
           FROM (SELECT tableoid, queue, state, count(*) AS jobs FROM gone GROUP BY 1, 2, 3) g \
           WHERE n.partition = g.tableoid AND n.queue = g.queue AND n.state = g.state)"
    };
}

macro_rules! sqlite_job_columns {
    () => {
        "id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors, unique_key, trace_context, \
         result, workflow_id, concurrency_key, fair_key"
    };
}

/// The queues table's row of queue `$1` when it controls the queue (paused, or limited):
/// what sends a queue's claims the controlled way (`queue_control`). `Controls::controls`
/// says the same of a row read.
macro_rules! controlled_queue_row {
    ($table:literal) => {
        concat!(
            "SELECT 1 FROM ",
            $table,
            " q WHERE q.name = $1 AND (q.paused OR q.concurrency_limit IS NOT NULL OR q.rate_limit IS NOT NULL OR q.fair)"
        )
    };
}

/// Binds the six parameters every insert of a new job starts with: `$1` task, `$2` args,
/// `$3` queue, `$4` priority, `$5` run_at (epoch ms, or NULL for now), `$6` max_attempts.
macro_rules! bind_new_job {
    ($query:expr, $job:expr) => {
        $query
            .bind(&$job.task)
            .bind(&$job.args)
            .bind(&$job.queue)
            .bind($job.priority)
            .bind($job.run_at_ms)
            .bind($job.max_attempts)
    };
}

/// SQLite's "now" in epoch milliseconds; julianday() exists in every SQLite version.
macro_rules! sqlite_now_ms {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    };
}

/// Appends an entry to a SQLite job's error history, or starts a new history when the
/// stored one is not a JSON array (written by hand): a malformed history must not make the
/// job's completion or rescue fail.
macro_rules! sqlite_append_error {
    ($($entry:tt)*) => {
        concat!(
            "CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN json_insert(errors, '$[#]', ",
            $($entry)*,
            ") ELSE json_array(json_object('attempt', 0, 'at', 0, 'error', 'unreadable error history: ' || coalesce(errors, 'NULL')), ",
            $($entry)*,
            ") END"
        )
    };
}

/// Whether a row holds its identity now: it has a hash, and its state is among its held
/// states. Word for word the predicate of the `jobs_unique_hash` index (migrations 011/008),
/// so the `ON CONFLICT` below is inferred to be that index.
macro_rules! unique_held {
    () => {
        "unique_hash IS NOT NULL AND ((unique_states >> (CASE state WHEN 'scheduled' THEN 0 WHEN 'available' THEN 1 \
         WHEN 'running' THEN 2 WHEN 'retryable' THEN 3 WHEN 'completed' THEN 4 WHEN 'failed' THEN 5 \
         WHEN 'cancelled' THEN 6 WHEN 'pending' THEN 7 ELSE 31 END)) & 1) = 1"
    };
}

/// The oldest available job of each queue (`queue_lag`), for the jobs table `$t` and the
/// database's "now minus run time in ms" `$age`: the queues with available jobs are found
/// by skipping along the claim index (queue, priority, run_at, id), then each queue's
/// priorities likewise, then the first run time of each; a handful of index probes per
/// queue and priority, however deep the backlog.
macro_rules! queue_lag {
    ($t:literal, $age:expr) => {
        concat!(
            "WITH RECURSIVE queues(queue) AS ( \
               SELECT (SELECT queue FROM ",
            $t,
            " WHERE state = 'available' ORDER BY queue LIMIT 1) \
               UNION ALL \
               SELECT (SELECT j.queue FROM ",
            $t,
            " j WHERE j.state = 'available' AND j.queue > q.queue \
                       ORDER BY j.queue LIMIT 1) \
               FROM queues q WHERE q.queue IS NOT NULL), \
             heads(queue, priority) AS ( \
               SELECT q.queue, (SELECT j.priority FROM ",
            $t,
            " j WHERE j.state = 'available' AND j.queue = q.queue \
                                ORDER BY j.priority LIMIT 1) \
               FROM queues q WHERE q.queue IS NOT NULL \
               UNION ALL \
               SELECT h.queue, (SELECT j.priority FROM ",
            $t,
            " j WHERE j.state = 'available' AND j.queue = h.queue \
                                AND j.priority > h.priority ORDER BY j.priority LIMIT 1) \
               FROM heads h WHERE h.priority IS NOT NULL), \
             oldest(queue, run_at) AS ( \
               SELECT h.queue, (SELECT j.run_at FROM ",
            $t,
            " j WHERE j.state = 'available' AND j.queue = h.queue \
                                AND j.priority = h.priority ORDER BY j.run_at LIMIT 1) \
               FROM heads h WHERE h.priority IS NOT NULL) \
             SELECT queue, ",
            $age,
            " FROM oldest GROUP BY queue ORDER BY queue"
        )
    };
}

/// The counts since a minute, a range of the primary key, summed in the database: per
/// minute only for completions (the chart), over the whole range for the rest, so an hour
/// comes back as some 80 rows per queue however many buckets its minutes filled.
macro_rules! activity_since {
    ($table:literal, $sum:literal) => {
        concat!(
            "SELECT CASE WHEN metric = 'completed' THEN minute ELSE 0 END AS m, queue, metric, bucket, ",
            $sum,
            " FROM ",
            $table,
            " WHERE minute >= $1 GROUP BY m, queue, metric, bucket ORDER BY m, queue, metric, bucket"
        )
    };
}

/// The statement of one window: `$1`–`$9` the filter, `$10` / `$11` the id range
/// `[from, to)`, `$12` the limit.
macro_rules! window {
    ($table:literal, $columns:expr, $filter:expr, $order:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE ",
            $filter,
            " AND id >= $10 AND id < $11 ORDER BY id ",
            $order,
            " LIMIT $12"
        )
    };
}

/// The jobs on one side of a job's dependencies (`$1`), in id order: `[parents, dependants]`.
macro_rules! linked {
    ($jobs:literal, $edges:literal, $columns:expr) => {
        [
            concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $jobs,
                " WHERE id IN (SELECT parent_id FROM ",
                $edges,
                " WHERE job_id = $1) ORDER BY id"
            ),
            concat!(
                "SELECT ",
                $columns,
                " FROM ",
                $jobs,
                " WHERE id IN (SELECT job_id FROM ",
                $edges,
                " WHERE parent_id = $1) ORDER BY id"
            ),
        ]
    };
}

/// The jobs a claim of a queue rate limited per key may take (`picked`): the first `$8`
/// available jobs of queue `$1` in claim order, ranked within their keys after the key's
/// starts in window `$6`, those within `$7` starts, at most `$2`.
macro_rules! key_rated_picked {
    ($jobs:literal, $windows:literal) => {
        concat!(
            "WITH w AS (SELECT key, starts FROM ",
            $windows,
            " WHERE queue = $1 AND window_ms = $6), \
             cand AS (SELECT id, coalesce(concurrency_key, '') AS k, priority, run_at FROM ",
            $jobs,
            " WHERE state = 'available' AND queue = $1 ORDER BY priority, run_at, id LIMIT $8), \
             ranked AS (SELECT c.id, c.priority, c.run_at, \
                               row_number() OVER (PARTITION BY c.k ORDER BY c.priority, c.run_at, c.id) \
                                 + coalesce(w.starts, 0) AS nth \
                        FROM cand c LEFT JOIN w ON w.key = c.k), \
             picked AS (SELECT id FROM ranked WHERE nth <= $7 ORDER BY priority, run_at, id LIMIT $2) "
        )
    };
}
