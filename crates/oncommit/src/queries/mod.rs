//! Every query oncommit runs on its own tables, one named function each, with the SQL in
//! one file per backend (`postgres.rs`, `sqlite.rs`). The functions here pick the backend.
//!
//! JSON crosses the boundary as text; times as `timestamptz` on PostgreSQL and epoch
//! milliseconds on SQLite (the row decoder in `job.rs` knows both). Delays are computed by the database's clock, never by a worker's, so
//! workers on machines with skewed clocks agree.

use std::time::Duration;

use crate::conn::Conn;
use crate::db::{Db, Pool};
use crate::error::Result;
use crate::job::{Job, JobId, JobState};

/// The columns of a job row, JSON as text. Times stay `timestamptz` (decoded by chrono):
/// converting five of them per row to epoch milliseconds in the claim cost a quarter of the
/// end-to-end throughput.
macro_rules! pg_job_columns {
    () => {
        "id, queue, task, args::text AS args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors::text AS errors, unique_key"
    };
}

macro_rules! sqlite_job_columns {
    () => {
        "id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors, unique_key"
    };
}

/// SQLite's "now" in epoch milliseconds; julianday() exists in every SQLite version.
macro_rules! sqlite_now_ms {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    };
}

mod postgres;
mod sqlite;

/// The PostgreSQL channel that wakes workers: the payload is the queue with new work.
pub(crate) const JOBS_CHANNEL: &str = "oncommit_jobs";
/// The PostgreSQL channel that tells workers to stop a running job: the payload is its id.
pub(crate) const CANCEL_CHANNEL: &str = "oncommit_cancel";

/// A job to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) task: String,
    /// The arguments, serialized to JSON.
    pub(crate) args: String,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    /// When it may first run, in epoch milliseconds; `None` for now.
    pub(crate) run_at_ms: Option<i64>,
    pub(crate) max_attempts: i32,
    pub(crate) unique_key: Option<String>,
}

/// A state change of a running job, applied only if the job is still running under the
/// same attempt (the lease's fencing token).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Transition {
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) state: JobState,
    /// Run again this long after now (by the database's clock); `None` leaves `run_at`.
    pub(crate) delay_ms: Option<i64>,
    /// An entry for the error history, as a JSON object.
    pub(crate) error: Option<String>,
    /// Attempts to add to `max_attempts` (a snooze or a release does not use one up).
    pub(crate) extra: i32,
}

/// A worker's row in the workers table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerInfo {
    /// Its id (host, process and a random part).
    pub id: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i32,
    /// The queues it serves, with their concurrency.
    pub queues: serde_json::Value,
    /// When it started, epoch milliseconds.
    pub started_at: i64,
    /// Its latest heartbeat, epoch milliseconds.
    pub heartbeat_at: i64,
}

/// Counts of jobs per queue and state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub count: i64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Inserts one job inside the caller's transaction (or autocommit); returns its id, or the
/// id of the unfinished job holding the same unique key.
pub(crate) async fn job_insert(conn: Conn<'_>, job: &NewJob) -> Result<JobId> {
    match conn {
        Conn::Postgres(c) => postgres::job_insert(c, job).await,
        Conn::Sqlite(c) => sqlite::job_insert(c, job).await,
    }
}

/// Inserts many jobs; those without a unique key in one statement.
pub(crate) async fn job_insert_many(conn: Conn<'_>, jobs: &[NewJob]) -> Result<Vec<JobId>> {
    match conn {
        Conn::Postgres(c) => postgres::job_insert_many(c, jobs).await,
        Conn::Sqlite(c) => sqlite::job_insert_many(c, jobs).await,
    }
}

/// Claims up to `limit` available jobs of `queue` for `worker`, committing the attempt.
pub(crate) async fn job_claim(db: &Db, queue: &str, limit: i64, worker: &str, lease: Duration) -> Result<Vec<Job>> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_claim(p, queue, limit, worker, secs(lease)).await,
        Pool::Sqlite(p) => sqlite::job_claim(p, queue, limit, worker, millis(lease)).await,
    }
}

/// Applies state changes to running jobs in one statement; returns the ids it changed
/// (a job re-leased since is left alone).
pub(crate) async fn job_set_state_if_running_many(db: &Db, changes: &[Transition]) -> Result<Vec<i64>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    match db.pool() {
        Pool::Postgres(p) => {
            let mut c = p.acquire().await?;
            postgres::job_set_state_if_running_many(&mut c, changes).await
        }
        Pool::Sqlite(p) => {
            let _turn = db.writing().await?;
            let mut c = p.acquire().await?;
            sqlite::job_set_state_if_running_many(&mut c, changes).await
        }
    }
}

/// The same, inside a transaction: the job's completion commits with the task's work.
pub(crate) async fn job_set_state_if_running(conn: Conn<'_>, change: &Transition) -> Result<bool> {
    let changed = match conn {
        Conn::Postgres(c) => postgres::job_set_state_if_running_many(c, std::slice::from_ref(change)).await?,
        Conn::Sqlite(c) => sqlite::job_set_state_if_running_many(c, std::slice::from_ref(change)).await?,
    };
    Ok(!changed.is_empty())
}

/// Renews the leases of `worker`'s running jobs; returns the ids whose cancel was asked.
pub(crate) async fn job_heartbeat(db: &Db, worker: &str, lease: Duration) -> Result<Vec<i64>> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_heartbeat(p, worker, secs(lease)).await,
        Pool::Sqlite(p) => sqlite::job_heartbeat(p, worker, millis(lease)).await,
    }
}

/// Returns jobs whose lease expired to the queue (or fails them when out of attempts);
/// returns the queues that got work back.
pub(crate) async fn job_rescue(db: &Db) -> Result<Vec<String>> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_rescue(p).await,
        Pool::Sqlite(p) => sqlite::job_rescue(p).await,
    }
}

/// Makes due scheduled and retryable jobs available; returns the queues that got work.
pub(crate) async fn job_promote(db: &Db) -> Result<Vec<String>> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_promote(p).await,
        Pool::Sqlite(p) => sqlite::job_promote(p).await,
    }
}

/// How long until the next scheduled or retryable job falls due (zero if one is due).
pub(crate) async fn job_next_due_in(db: &Db) -> Result<Option<Duration>> {
    let ms: Option<i64> = match db.pool() {
        Pool::Postgres(p) => postgres::job_next_due_in_ms(p).await?,
        Pool::Sqlite(p) => sqlite::job_next_due_in_ms(p).await?,
    };
    Ok(ms.map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
}

/// Cancels a job: a queued one at once, a running one by asking its worker. Returns the
/// state it is left in, or `None` when it was already finished or does not exist.
pub(crate) async fn job_cancel(db: &Db, id: JobId) -> Result<Option<JobState>> {
    let _turn = db.writing().await?;
    let state = match db.pool() {
        Pool::Postgres(p) => postgres::job_cancel(p, id.0).await?,
        Pool::Sqlite(p) => sqlite::job_cancel(p, id.0).await?,
    };
    state.map(|s| s.parse().map_err(crate::Error::app)).transpose()
}

/// Makes a finished or waiting job available now, granting it one more attempt if it had
/// none left. Returns whether a job was changed.
pub(crate) async fn job_retry(db: &Db, id: JobId) -> Result<bool> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_retry(p, id.0).await,
        Pool::Sqlite(p) => sqlite::job_retry(p, id.0).await,
    }
}

/// Deletes a job that is not running. Returns whether one was deleted.
pub(crate) async fn job_delete(db: &Db, id: JobId) -> Result<bool> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_delete(p, id.0).await,
        Pool::Sqlite(p) => sqlite::job_delete(p, id.0).await,
    }
}

/// One job by id.
pub(crate) async fn job_get(db: &Db, id: JobId) -> Result<Option<Job>> {
    match db.pool() {
        Pool::Postgres(p) => postgres::job_get(p, id.0).await,
        Pool::Sqlite(p) => sqlite::job_get(p, id.0).await,
    }
}

/// The newest jobs, optionally of one state and one queue.
pub(crate) async fn job_list(db: &Db, state: Option<JobState>, queue: Option<&str>, limit: i64) -> Result<Vec<Job>> {
    let state = state.map(JobState::as_str);
    match db.pool() {
        Pool::Postgres(p) => postgres::job_list(p, state, queue, limit).await,
        Pool::Sqlite(p) => sqlite::job_list(p, state, queue, limit).await,
    }
}

/// Counts per queue and state.
pub(crate) async fn job_count_by_queue_and_state(db: &Db) -> Result<Vec<StateCount>> {
    let rows: Vec<(String, String, i64)> = match db.pool() {
        Pool::Postgres(p) => postgres::job_counts(p).await?,
        Pool::Sqlite(p) => sqlite::job_counts(p).await?,
    };
    rows.into_iter()
        .map(|(queue, state, count)| Ok(StateCount { queue, state: state.parse().map_err(crate::Error::app)?, count }))
        .collect()
}

/// Deletes completed jobs finished more than `completed` ago, and failed or cancelled ones
/// more than `discarded` ago, at most `limit` of each. Returns how many were deleted.
pub(crate) async fn job_prune(db: &Db, completed: Duration, discarded: Duration, limit: i64) -> Result<u64> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::job_prune(p, secs(completed), secs(discarded), limit).await,
        Pool::Sqlite(p) => sqlite::job_prune(p, millis(completed), millis(discarded), limit).await,
    }
}

/// Records that `worker` is alive.
pub(crate) async fn worker_heartbeat(db: &Db, id: &str, hostname: &str, pid: i32, queues: &str) -> Result<()> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::worker_heartbeat(p, id, hostname, pid, queues).await,
        Pool::Sqlite(p) => sqlite::worker_heartbeat(p, id, hostname, pid, queues).await,
    }
}

/// Forgets a worker that stopped.
pub(crate) async fn worker_delete(db: &Db, id: &str) -> Result<()> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::worker_delete(p, id).await,
        Pool::Sqlite(p) => sqlite::worker_delete(p, id).await,
    }
}

/// Forgets workers silent for longer than `stale` (they died without saying so).
pub(crate) async fn worker_prune(db: &Db, stale: Duration) -> Result<()> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::worker_prune(p, secs(stale)).await,
        Pool::Sqlite(p) => sqlite::worker_prune(p, millis(stale)).await,
    }
}

/// The workers that heartbeated recently.
pub(crate) async fn worker_list(db: &Db) -> Result<Vec<WorkerInfo>> {
    let rows: Vec<(String, String, i32, String, i64, i64)> = match db.pool() {
        Pool::Postgres(p) => postgres::worker_list(p).await?,
        Pool::Sqlite(p) => sqlite::worker_list(p).await?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, hostname, pid, queues, started_at, heartbeat_at)| WorkerInfo {
            id,
            hostname,
            pid,
            queues: serde_json::from_str(&queues).unwrap_or(serde_json::Value::Null),
            started_at,
            heartbeat_at,
        })
        .collect())
}

/// Takes or keeps the leadership `name` for `ttl`; returns whether `id` leads.
pub(crate) async fn leader_attempt_elect(db: &Db, name: &str, id: &str, ttl: Duration) -> Result<bool> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::leader_attempt_elect(p, name, id, secs(ttl)).await,
        Pool::Sqlite(p) => sqlite::leader_attempt_elect(p, name, id, millis(ttl)).await,
    }
}

/// Gives up the leadership `name` if `id` holds it.
pub(crate) async fn leader_resign(db: &Db, name: &str, id: &str) -> Result<()> {
    let _turn = db.writing().await?;
    match db.pool() {
        Pool::Postgres(p) => postgres::leader_resign(p, name, id).await,
        Pool::Sqlite(p) => sqlite::leader_resign(p, name, id).await,
    }
}

/// Claims `period` of the periodic job `name` inside the enqueueing transaction; returns
/// false when that period (or a later one) was claimed already.
pub(crate) async fn periodic_claim(conn: Conn<'_>, name: &str, period: i64) -> Result<bool> {
    let claimed: Option<String> = match conn {
        Conn::Postgres(c) => {
            sqlx::query_scalar(
                "INSERT INTO oncommit.periodic_runs (name, last_period) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET last_period = EXCLUDED.last_period \
                 WHERE oncommit.periodic_runs.last_period < EXCLUDED.last_period RETURNING name",
            )
            .bind(name)
            .bind(period)
            .fetch_optional(c)
            .await?
        }
        Conn::Sqlite(c) => {
            sqlx::query_scalar(
                "INSERT INTO oncommit_periodic_runs (name, last_period) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period \
                 WHERE oncommit_periodic_runs.last_period < excluded.last_period RETURNING name",
            )
            .bind(name)
            .bind(period)
            .fetch_optional(c)
            .await?
        }
    };
    Ok(claimed.is_some())
}

/// Jobs completed per minute over the last `minutes`: `(minute since the epoch, count)`.
pub(crate) async fn job_throughput(db: &Db, minutes: i64) -> Result<Vec<(i64, i64)>> {
    Ok(match db.pool() {
        Pool::Postgres(p) => {
            sqlx::query_as(
                "SELECT (extract(epoch FROM finished_at) / 60)::int8 AS minute, count(*) FROM oncommit.jobs \
                 WHERE state = 'completed' AND finished_at > now() - make_interval(mins => $1::int4) \
                 GROUP BY 1 ORDER BY 1",
            )
            .bind(minutes)
            .fetch_all(p)
            .await?
        }
        Pool::Sqlite(p) => {
            sqlx::query_as(concat!(
                "SELECT finished_at / 60000 AS minute, count(*) FROM oncommit_jobs \
                 WHERE state = 'completed' AND finished_at > ",
                sqlite_now_ms!(),
                " - $1 * 60000 GROUP BY 1 ORDER BY 1"
            ))
            .bind(minutes)
            .fetch_all(p)
            .await?
        }
    })
}
