//! SQLite's statements on jobs (tables prefixed `oncommit_`, times in epoch milliseconds).
//!
//! Every statement here is one statement, so it is atomic under SQLite's write lock even in
//! autocommit; arrays travel as one JSON parameter read with `json_each`.

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{Inserted, JobClaim, JobHeartbeat, JobPrune, JobWindow, Jobs, NewJob, Tick, Transition};
use crate::driver::millis;
use crate::driver::selection::Filter;
use crate::error::Result;
use crate::job::JobId;
use crate::job_row::JobRow;

/// Claims: `$1` queue, `$2` limit, `$3` worker, `$4` lease in ms, the attempt starting at
/// `$now`, with `$guard` added to the conditions of the jobs claimed.
macro_rules! sqlite_claim {
    ($now:expr, $guard:expr) => {
        concat!(
            "UPDATE oncommit_jobs SET state = 'running', attempt = attempt + 1, attempted_at = ",
            $now,
            ", lease_owner = $3, lease_expires_at = ",
            $now,
            " + $4 \
             WHERE id IN (SELECT id FROM oncommit_jobs WHERE state = 'available' AND queue = $1 ",
            $guard,
            " ORDER BY priority, run_at, id LIMIT $2) \
             RETURNING ",
            sqlite_job_columns!()
        )
    };
}

/// Whether `$1` is a controlled queue (paused or limited).
const IS_CONTROLLED: &str = concat!("SELECT EXISTS (", controlled_queue_row!("oncommit_queues"), ")");

/// A window of the listing, newest first and oldest first (see `Jobs::job_window`).
pub(crate) const WINDOWS: [&str; 2] = [
    window!("oncommit_jobs", sqlite_job_columns!(), sqlite_filter!(), "DESC"),
    window!("oncommit_jobs", sqlite_job_columns!(), sqlite_filter!(), "ASC"),
];

/// The age of each queue's oldest available job in ms (see `Jobs::queue_lag`).
pub(crate) const QUEUE_LAG: &str = queue_lag!("oncommit_jobs", concat!("max(0, ", sqlite_now_ms!(), " - min(run_at))"));

/// Inserts the jobs of a JSON array, in order, without and with the fairness columns.
macro_rules! insert_many {
    ($columns:literal, $values:literal) => {
        concat!(
            "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context",
            $columns,
            ") SELECT value ->> '$.task', value ->> '$.args', value ->> '$.queue', value ->> '$.priority', \
                    coalesce(value ->> '$.run_at', ",
            sqlite_now_ms!(),
            "), value ->> '$.max_attempts', CASE WHEN value ->> '$.run_at' > ",
            sqlite_now_ms!(),
            " THEN 'scheduled' ELSE 'available' END, value ->> '$.trace_context'",
            $values,
            " FROM json_each($1) ORDER BY key RETURNING id"
        )
    };
}
const INSERT_MANY: [&str; 2] = [
    insert_many!("", ""),
    insert_many!(", fair_key, fair_weight", ", value ->> '$.fair_key', value ->> '$.fair_weight'"),
];

impl Jobs for SqliteDriver {
    // No queue to wake comes back: SQLite has no NOTIFY, and this process's workers are woken
    // by the commit itself.
    async fn job_insert_plain(c: &mut SqliteConnection, plain: &[&NewJob]) -> Result<Inserted> {
        let mut ids = Vec::with_capacity(plain.len());
        if !plain.is_empty() {
            let rows: Vec<serde_json::Value> = plain
                .iter()
                .map(|j| {
                    serde_json::json!({
                        "task": j.task, "args": j.args, "queue": j.queue, "priority": j.priority,
                        "run_at": j.run_at_ms, "max_attempts": j.max_attempts, "trace_context": j.trace_context,
                        "fair_key": j.fair_key, "fair_weight": j.fair_weight,
                    })
                })
                .collect();
            // The fairness columns only when a job has a key: a keyless enqueue works on the
            // schema before them (a deploy ahead of its migration).
            let fair = plain.iter().any(|j| j.fair_key.is_some());
            let mut plain_ids: Vec<i64> = sqlx::query_scalar(INSERT_MANY[usize::from(fair)])
                .bind(serde_json::Value::Array(rows).to_string())
                .fetch_all(&mut *c)
                .await?;
            plain_ids.sort_unstable();
            ids.extend(plain_ids.into_iter().map(JobId));
        }
        Ok(Inserted { ids, wake: Vec::new() })
    }

    async fn job_insert_keyed(c: &mut SqliteConnection, job: &NewJob) -> Result<(JobId, Option<String>)> {
        // A conflicting job may finish between the insert and the look-up: try again then.
        for _ in 0..10 {
            let inserted: Option<i64> = bind_new_job!(sqlx::query_scalar(concat!(
                "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, unique_key, state, trace_context, \
                                            fair_key, fair_weight) \
                 VALUES ($1, $2, $3, $4, coalesce($5, ",
                sqlite_now_ms!(),
                "), $6, $7, CASE WHEN $5 > ",
                sqlite_now_ms!(),
                " THEN 'scheduled' ELSE 'available' END, $8, $9, $10) \
                 ON CONFLICT (unique_key) \
                     WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable') \
                     DO NOTHING \
                 RETURNING id"
            )), job)
            .bind(&job.unique_key)
            .bind(&job.trace_context)
            .bind(&job.fair_key)
            .bind(job.fair_weight)
            .fetch_optional(&mut *c)
            .await?;
            if let Some(id) = inserted {
                return Ok((JobId(id), None));
            }
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM oncommit_jobs WHERE unique_key = $1 \
                 AND state IN ('scheduled', 'available', 'running', 'retryable')",
            )
            .bind(&job.unique_key)
            .fetch_optional(&mut *c)
            .await?;
            if let Some(id) = existing {
                return Ok((JobId(id), None));
            }
        }
        Err(crate::Error::app(format!("unique key {:?} kept changing hands", job.unique_key)))
    }

    async fn job_queue_and_state(c: &mut SqliteConnection, id: i64) -> Result<(String, String)> {
        Ok(sqlx::query_as("SELECT queue, state FROM oncommit_jobs WHERE id = $1").bind(id).fetch_one(&mut *c).await?)
    }

    async fn job_claim(c: &mut SqliteConnection, claim: &JobClaim<'_>) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(sqlite_claim!(
            sqlite_now_ms!(),
            concat!("AND NOT EXISTS (", controlled_queue_row!("oncommit_queues"), ")")
        ))
        .bind(claim.queue)
        .bind(claim.limit)
        .bind(claim.worker)
        .bind(millis(claim.lease))
        .fetch_all(&mut *c)
        .await?)
    }

    async fn queue_is_controlled(c: &mut SqliteConnection, queue: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(IS_CONTROLLED).bind(queue).fetch_one(&mut *c).await?)
    }

    async fn job_set_state_if_running_many(
        c: &mut SqliteConnection,
        changes: &[Transition],
    ) -> Result<Vec<(i64, bool)>> {
        let changes = serde_json::to_string(changes).map_err(crate::Error::app)?;
        Ok(sqlx::query_as(concat!(
            "UPDATE oncommit_jobs SET \
                 state = u.new_state, \
                 run_at = CASE WHEN u.delay_ms IS NULL THEN run_at ELSE ",
            sqlite_now_ms!(),
            " + u.delay_ms END, \
                 errors = CASE WHEN u.error IS NULL THEN errors ELSE ",
            sqlite_append_error!("json(u.error)"),
            " END, \
                 max_attempts = max_attempts + u.extra, \
                 finished_at = CASE WHEN u.new_state IN ('completed', 'failed', 'cancelled') THEN ",
            sqlite_now_ms!(),
            " END, \
                 result = CASE WHEN u.uresult IS NULL THEN oncommit_jobs.result ELSE u.uresult END, \
                 lease_owner = CASE WHEN u.new_state = 'completed' THEN lease_owner END, \
                 lease_expires_at = NULL, cancel_requested = 0 \
             FROM (SELECT value ->> '$.id' AS uid, value ->> '$.attempt' AS uattempt, \
                          value ->> '$.state' AS new_state, value ->> '$.delay_ms' AS delay_ms, \
                          value ->> '$.error' AS error, value ->> '$.extra' AS extra, value ->> '$.result' AS uresult \
                   FROM json_each($1)) AS u \
             WHERE oncommit_jobs.id = u.uid AND oncommit_jobs.attempt = u.uattempt \
               AND +oncommit_jobs.state = 'running' \
             RETURNING oncommit_jobs.id, (oncommit_jobs.has_dependants OR oncommit_jobs.concurrency_key IS NOT NULL)"
        ))
        .bind(changes)
        .fetch_all(c)
        .await?)
    }

    async fn job_heartbeat_many(
        c: &mut SqliteConnection,
        renew: &JobHeartbeat<'_>,
    ) -> Result<Vec<(i64, i32, bool, bool)>> {
        // One writer at a time: no row is ever locked by another statement here.
        let ids = serde_json::to_string(renew.ids).map_err(crate::Error::app)?;
        Ok(sqlx::query_as(concat!(
            "UPDATE oncommit_jobs SET lease_expires_at = ",
            sqlite_now_ms!(),
            " + $2 WHERE id IN (SELECT value FROM json_each($3)) AND state = 'running' AND lease_owner = $1 \
             RETURNING id, attempt, cancel_requested, 1"
        ))
        .bind(renew.worker)
        .bind(millis(renew.lease))
        .bind(ids)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_rescue_many(c: &mut SqliteConnection) -> Result<Vec<String>> {
        let rows: Vec<(String, String)> = sqlx::query_as(concat!(
            "UPDATE oncommit_jobs SET \
                 state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'available' END, \
                 run_at = ",
            sqlite_now_ms!(),
            ", finished_at = CASE WHEN attempt >= max_attempts THEN ",
            sqlite_now_ms!(),
            " END, \
                 errors = ",
            sqlite_append_error!(concat!(
                "json_object('attempt', attempt, 'at', ",
                sqlite_now_ms!(),
                ", 'error', 'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped renewing it', \
                 'worker', lease_owner, 'started', attempted_at)"
            )),
            ", \
                 lease_owner = NULL, lease_expires_at = NULL \
             WHERE state = 'running' AND lease_expires_at < ",
            sqlite_now_ms!(),
            " RETURNING queue, state"
        ))
        .fetch_all(&mut *c)
        .await?;
        Ok(distinct_queues(rows.into_iter().filter(|(_, s)| s == "available").map(|(q, _)| q)))
    }

    async fn job_tick(c: &mut SqliteConnection, queues: &[String]) -> Result<Tick> {
        // A read first: the write lock is taken only when something is due.
        let (due, ready, next_due_ms, expired): (bool, String, Option<i64>, bool) = sqlx::query_as(concat!(
            "SELECT EXISTS (SELECT 1 FROM oncommit_jobs WHERE state IN ('scheduled', 'retryable') AND run_at <= ",
            sqlite_now_ms!(),
            "), (SELECT json_group_array(value) FROM json_each($1) WHERE EXISTS ( \
                SELECT 1 FROM oncommit_jobs WHERE state = 'available' AND queue = value)), \
             (SELECT min(min(run_at) - ",
            sqlite_now_ms!(),
            ", 86400000) FROM oncommit_jobs WHERE state IN ('scheduled', 'retryable') AND run_at > ",
            sqlite_now_ms!(),
            "), EXISTS (SELECT 1 FROM oncommit_jobs WHERE state = 'running' AND lease_expires_at < ",
            sqlite_now_ms!(),
            ")"
        ))
        .bind(serde_json::to_string(queues).map_err(crate::Error::app)?)
        .fetch_one(&mut *c)
        .await?;
        let mut wake: Vec<String> = serde_json::from_str(&ready).map_err(crate::Error::app)?;
        let mut promoted = 0;
        if due {
            let queues: Vec<String> = sqlx::query_scalar(concat!(
                "UPDATE oncommit_jobs SET state = 'available' \
                 WHERE state IN ('scheduled', 'retryable') AND run_at <= ",
                sqlite_now_ms!(),
                " RETURNING queue"
            ))
            .fetch_all(&mut *c)
            .await?;
            promoted = queues.len();
            wake.extend(queues);
        }
        Ok(Tick { promoted, wake: distinct_queues(wake.into_iter()), next_due_ms, expired_leases: expired })
    }

    async fn job_cancel(c: &mut SqliteConnection, id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(concat!(
            "UPDATE oncommit_jobs SET \
                 cancel_requested = (state = 'running'), \
                 finished_at = CASE WHEN state = 'running' THEN finished_at ELSE ",
            sqlite_now_ms!(),
            " END, \
                 state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END \
             WHERE id = $1 AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable') \
             RETURNING state"
        ))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
    }

    async fn job_retry(c: &mut SqliteConnection, id: i64) -> Result<bool> {
        let done = sqlx::query(concat!(
            "UPDATE oncommit_jobs SET state = 'available', run_at = ",
            sqlite_now_ms!(),
            ", finished_at = NULL, cancel_requested = 0, max_attempts = max(max_attempts, attempt + 1) \
             WHERE id = $1 AND state <> 'running'"
        ))
        .bind(id)
        .execute(&mut *c)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn job_delete(c: &mut SqliteConnection, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM oncommit_jobs WHERE id = $1 AND state <> 'running'")
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn job_get(c: &mut SqliteConnection, id: i64) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as(concat!("SELECT ", sqlite_job_columns!(), " FROM oncommit_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?)
    }

    async fn job_count_split(c: &mut SqliteConnection, finished: bool) -> Result<Vec<(String, String, i64)>> {
        let sql = if finished {
            "SELECT queue, state, count(*) FROM oncommit_jobs \
             WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY queue, state"
        } else {
            // One branch per partial index (see the PostgreSQL query).
            "SELECT queue, 'available', count(*) FROM oncommit_jobs WHERE state = 'available' GROUP BY queue \
             UNION ALL SELECT queue, state, count(*) FROM oncommit_jobs \
                 WHERE state IN ('scheduled', 'retryable') GROUP BY queue, state \
             UNION ALL SELECT queue, 'running', count(*) FROM oncommit_jobs WHERE state = 'running' GROUP BY queue \
             UNION ALL SELECT queue, 'pending', count(*) FROM oncommit_jobs WHERE state = 'pending' GROUP BY queue"
        };
        Ok(sqlx::query_as(sql).fetch_all(&mut *c).await?)
    }

    async fn job_count_by_queue_and_state(c: &mut SqliteConnection) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT queue, state, count(*) FROM oncommit_jobs GROUP BY queue, state ORDER BY queue, state",
        )
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_prune(c: &mut SqliteConnection, prune: &JobPrune) -> Result<u64> {
        let gone: Vec<i64> = sqlx::query_scalar(concat!(
            "DELETE FROM oncommit_jobs WHERE id IN ( \
                 SELECT id FROM (SELECT id FROM oncommit_jobs WHERE state = 'completed' AND finished_at < ",
            sqlite_now_ms!(),
            " - $1 LIMIT $3) \
                 UNION ALL \
                 SELECT id FROM (SELECT id FROM oncommit_jobs WHERE state IN ('failed', 'cancelled') AND finished_at < ",
            sqlite_now_ms!(),
            " - $2 LIMIT $3)) RETURNING id"
        ))
        .bind(millis(prune.completed))
        .bind(millis(prune.discarded))
        .bind(prune.limit)
        .fetch_all(&mut *c)
        .await?;
        // A pruned dependant's edges go with it (see the PostgreSQL query).
        sqlx::query("DELETE FROM oncommit_job_dependencies WHERE job_id IN (SELECT value FROM json_each($1))")
            .bind(serde_json::to_string(&gone).map_err(crate::Error::app)?)
            .execute(&mut *c)
            .await?;
        Ok(gone.len() as u64)
    }

    async fn job_id_bounds(c: &mut SqliteConnection) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT (SELECT min(id) FROM oncommit_jobs), (SELECT max(id) FROM oncommit_jobs)")
                .fetch_one(&mut *c)
                .await?;
        Ok(lo.zip(hi))
    }

    async fn job_window(c: &mut SqliteConnection, f: &Filter, window: &JobWindow) -> Result<Vec<JobRow>> {
        let statement = WINDOWS[usize::from(!window.newest_first)];
        Ok(bind_filter!(sqlx::query_as(statement), f, f.states_json()?, f.ids_json()?)
            .bind(window.lo)
            .bind(window.hi)
            .bind(window.limit)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn queue_lag(c: &mut SqliteConnection) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(QUEUE_LAG).fetch_all(&mut *c).await?)
    }

    async fn job_throughput(c: &mut SqliteConnection, minutes: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(concat!(
            "SELECT finished_at / 60000 AS minute, count(*) FROM oncommit_jobs \
             WHERE state = 'completed' AND finished_at > ",
            sqlite_now_ms!(),
            " - $1 * 60000 GROUP BY 1 ORDER BY 1"
        ))
        .bind(minutes)
        .fetch_all(&mut *c)
        .await?)
    }
}

fn distinct_queues(queues: impl Iterator<Item = String>) -> Vec<String> {
    let mut queues: Vec<String> = queues.collect();
    queues.sort();
    queues.dedup();
    queues
}
