//! Every query oncommit runs on its own tables, one named function each, with the SQL in
//! one file per backend (`postgres.rs`, `sqlite.rs`). The functions here pick the backend.
//!
//! JSON crosses the boundary as text; times as `timestamptz` on PostgreSQL and epoch
//! milliseconds on SQLite (the row decoder in `job.rs` knows both). Delays are computed by the database's clock, never by a worker's, so
//! workers on machines with skewed clocks agree.

use std::time::Duration;

use crate::conn::{Conn, PoolConn};
use crate::db::Db;
use crate::error::Result;
use crate::job::{Job, JobId, JobState};

/// The columns of a job row, JSON as text. Times stay `timestamptz` (decoded by chrono):
/// converting five of them per row to epoch milliseconds in the claim cost a quarter of the
/// end-to-end throughput.
macro_rules! pg_job_columns {
    () => {
        "id, queue, task, args::text AS args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors::text AS errors, unique_key, \
         trace_context, result::text AS result, workflow_id, concurrency_key"
    };
}

macro_rules! sqlite_job_columns {
    () => {
        "id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, \
         attempted_at, finished_at, lease_owner, lease_expires_at, cancel_requested, errors, unique_key, trace_context, \
         result, workflow_id, concurrency_key"
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
            " q WHERE q.name = $1 AND (q.paused OR q.concurrency_limit IS NOT NULL OR q.rate_limit IS NOT NULL)"
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

/// Runs one of oncommit's statements on a connection of `$db`: `$pg` with `$c` bound to the
/// pooled PostgreSQL connection, `$lite` with it bound to the SQLite one. On a worker's own
/// pool (`Db::own_pool`) the statement is bounded by the pool's query timeout, and a
/// connection whose statement timed out is closed rather than returned: its state is
/// unknown, and the pool's check of a returned connection would wait forever on a silent
/// network. Behind a transaction pooler it runs in a transaction of its own (see
/// `driver::postgres`). An error that says the server is gone or no longer suits (a
/// failover) is shown to the pool, which then looks for the one that does.
macro_rules! on_conn {
    ($db:expr, $what:literal, |$c:ident| $pg:expr, $lite:expr $(,)?) => {{
        let db: &$crate::Db = $db;
        let mut pooled = db.acquire().await?;
        let outcome = {
            let run = async {
                let opened = pooled.open_pooled(db).await?;
                let result: $crate::Result<_> = match &mut pooled {
                    $crate::PoolConn::Postgres($c) => $pg.await.map_err(Into::into),
                    $crate::PoolConn::Sqlite($c) => $lite.await.map_err(Into::into),
                };
                pooled.close_pooled(opened, result.is_ok()).await?;
                result
            };
            match db.query_timeout() {
                None => Ok(run.await),
                Some(after) => tokio::time::timeout(after, run).await.map_err(|_| after),
            }
        };
        match outcome {
            Ok(result) => result.inspect_err(|err| db.saw(err)),
            Err(after) => {
                pooled.close_on_drop();
                let err = crate::Error::TimedOut { what: $what, after };
                db.saw(&err);
                Err(err)
            }
        }
    }};
}

#[macro_use]
pub(crate) mod selection;
pub(crate) mod activity;
pub(crate) mod bulk;
#[cfg(test)]
mod dashboard_plans;
mod dependencies;
mod key_rate;
pub(crate) mod listing;
#[cfg(test)]
pub(crate) mod plans;
mod postgres;
mod queue_control;
pub(crate) mod sleepers;
mod sqlite;
mod unique_insert;

pub use dependencies::Parent;
pub(crate) use dependencies::{Link, job_linked, job_parents, job_sweep_pending, workflow_jobs};
pub(crate) use key_rate::rate_windows_prune;
pub(crate) use queue_control::{Claim, Setting, queue_list, queue_set};
pub use queue_control::{QueueInfo, RateLimit};

/// Planner settings of the worker's own PostgreSQL sessions. Every statement a worker runs
/// is a few index probes by design (claim in index order, completions and heartbeats by
/// primary key, ticks and rescues on partial indexes); what the planner would pick instead
/// when its statistics lag behind a queue's churn — a hash join over a whole index, a
/// sequential scan of a million-row table — costs seconds per statement, and grows with
/// the pile-up it causes. These make those plans the last resort, so the plans stay what
/// the statements were written for, however the statistics stand (tested in `plans`).
pub(crate) const PLANNER_SETTINGS: &[(&str, &str)] =
    &[("enable_seqscan", "off"), ("enable_hashjoin", "off"), ("enable_mergejoin", "off")];

/// The PostgreSQL channel that wakes workers: the payload is the queue with new work.
pub(crate) const JOBS_CHANNEL: &str = "oncommit_jobs";
/// The PostgreSQL channel that tells workers to stop a running job: the payload is its id.
pub(crate) const CANCEL_CHANNEL: &str = "oncommit_cancel";

/// A job to insert. Queue, priority and attempts left `None` are filled in by the database
/// from the task's recorded declaration, else the defaults (migration 006 / SQLite 005).
#[derive(Debug, Clone)]
pub(crate) struct NewJob {
    pub(crate) task: String,
    /// The arguments, serialized to JSON.
    pub(crate) args: String,
    pub(crate) queue: Option<String>,
    pub(crate) priority: Option<i16>,
    /// When it may first run, in epoch milliseconds; `None` for now.
    pub(crate) run_at_ms: Option<i64>,
    pub(crate) max_attempts: Option<i32>,
    pub(crate) unique_key: Option<String>,
    /// Unique by content: the hash and states it is held in (see `unique`).
    pub(crate) unique: Option<crate::unique::Identity>,
    /// The jobs it waits for, sorted, without repeats; empty for none.
    pub(crate) depends_on: Vec<i64>,
    /// `Some("run")` to run even after a parent failed or was cancelled; `None` to be
    /// cancelled then.
    pub(crate) on_parent_failure: Option<&'static str>,
    /// The workflow it is a step of.
    pub(crate) workflow_id: Option<String>,
    /// Jobs sharing it run at most `key_limit` at a time.
    pub(crate) concurrency_key: Option<String>,
    pub(crate) key_limit: i32,
    /// The enqueuing code's trace context (see `trace`), a JSON object.
    pub(crate) trace_context: Option<String>,
}

impl NewJob {
    /// Whether it has parents, belongs to a workflow or has a concurrency key: inserted one
    /// by one, through `dependencies`.
    pub(crate) fn in_graph(&self) -> bool {
        !self.depends_on.is_empty() || self.workflow_id.is_some() || self.concurrency_key.is_some()
    }
}

/// What a task declares for its jobs, as a worker records it (see `task_declare`).
#[derive(Debug, Clone)]
pub(crate) struct Declaration {
    pub(crate) task: &'static str,
    pub(crate) queue: String,
    pub(crate) priority: i16,
    pub(crate) max_attempts: i32,
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
    /// What the task stored with its job, JSON text (a completion only).
    pub(crate) result: Option<String>,
}

impl Transition {
    /// How the attempt ended, as metrics and spans name it.
    pub(crate) fn outcome(&self) -> &'static str {
        match self.state {
            JobState::Completed => "completed",
            JobState::Retryable => "retryable",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Scheduled => "snoozed",
            JobState::Available => "released",
            JobState::Running => "running",
            JobState::Pending => "pending",
        }
    }

    /// The error message recorded for the attempt, if any.
    pub(crate) fn error_message(&self) -> Option<String> {
        let entry: serde_json::Value = serde_json::from_str(self.error.as_deref()?).ok()?;
        entry.get("error")?.as_str().map(str::to_owned)
    }
}

/// What one maintenance tick found (see `job_tick`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tick {
    /// How many scheduled or retryable jobs became available.
    pub(crate) promoted: usize,
    /// The queues asked about that have available jobs, and those that just got some.
    pub(crate) wake: Vec<String>,
    /// When the next scheduled or retryable job falls due, in milliseconds from now; `None`
    /// when none waits.
    pub(crate) next_due_ms: Option<i64>,
    /// Whether some running job's lease has expired (its worker is gone): time to rescue.
    pub(crate) expired_leases: bool,
}

/// What a task declares for its jobs, as the last worker registering it recorded it: the
/// queue, priority and attempts a job of it gets when it is enqueued without them (from SQL,
/// the CLI, another language).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskDeclaration {
    /// The task's name.
    pub task: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// Their priority (lower runs first).
    pub priority: i16,
    /// Their number of attempts.
    pub max_attempts: i32,
    /// The worker that recorded it.
    pub declared_by: String,
    /// When, epoch milliseconds.
    pub declared_at: i64,
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

/// The jobs table's footprint: what pruning and vacuum keep in check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Bytes on disk: on PostgreSQL the jobs table with its indexes and TOAST; on SQLite
    /// the whole database file.
    pub bytes: i64,
    /// Of those, bytes free for reuse (SQLite's free pages); `None` on PostgreSQL, where
    /// dead rows say it.
    pub free_bytes: Option<i64>,
    /// Live rows, as PostgreSQL's statistics estimate them; `None` on SQLite.
    pub live_rows: Option<i64>,
    /// Dead row versions not yet vacuumed, likewise; `None` on SQLite.
    pub dead_rows: Option<i64>,
    /// When the table was last vacuumed (by hand or autovacuum), epoch milliseconds.
    pub last_vacuum_at: Option<i64>,
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

/// A `TaskDeclaration` from its row: name, queue, priority, attempts, worker, epoch ms.
fn declaration(
    (task, queue, priority, max_attempts, declared_by, declared_at): (String, String, i16, i32, String, i64),
) -> TaskDeclaration {
    TaskDeclaration { task, queue, priority, max_attempts, declared_by, declared_at }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Jobs inserted, and the queues to wake once they commit (those that got available jobs).
#[derive(Debug, Default)]
pub(crate) struct Inserted {
    pub(crate) ids: Vec<JobId>,
    pub(crate) wake: Vec<String>,
}

/// Inserts jobs inside the caller's transaction (or autocommit): one with its unique key's
/// rules, many without a key in one statement. A job whose unique key is held by an
/// unfinished job is not inserted; that job's id stands in its place. Nothing is NOTIFYed
/// here: see `notify_queues`.
pub(crate) async fn job_insert(conn: Conn<'_>, jobs: &[NewJob]) -> Result<Inserted> {
    match conn {
        Conn::Postgres(c) => postgres::job_insert_many(c, jobs).await,
        Conn::Sqlite(c) => sqlite::job_insert_many(c, jobs).await,
    }
}

/// Inside the caller's transaction (PostgreSQL): NOTIFYs, at its commit, the workers that
/// sleep on `queues` (`oncommit.wake_sleepers`), and no one when none does.
pub(crate) async fn wake_sleepers(c: &mut sqlx::PgConnection, queues: &[String]) -> Result<()> {
    if queues.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT count(oncommit.wake_sleepers(q)) FROM unnest($1::text[]) AS q")
        .bind(queues)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// NOTIFYs the workers of `queues` in other processes (PostgreSQL), in autocommit.
pub(crate) async fn notify(c: &mut sqlx::PgConnection, queues: &[String]) -> Result<()> {
    postgres::notify_on(c, JOBS_CHANNEL, queues).await
}

/// Claims up to `limit` available jobs of `queue` for `worker`, committing the attempt.
/// A row that cannot be decoded comes back with its problem, to be failed.
///
/// `controlled` is the caller's belief that the queue is paused or limited, kept up to date
/// here: a controlled queue is claimed under its row's lock (`queue_control`); the fast
/// claim of any other claims nothing once it becomes controlled, and an empty fast claim
/// checks whether it did.
pub(crate) async fn job_claim(
    db: &Db,
    queue: &str,
    limit: i64,
    worker: &str,
    lease: Duration,
    controlled: &mut bool,
) -> Result<Claim> {
    if *controlled {
        match queue_control::job_claim_controlled(db, queue, limit, worker, lease).await? {
            Some(claim) => return Ok(claim),
            None => *controlled = false,
        }
    }
    let rows = {
        let _turn = db.writing().await?;
        on_conn!(
            db,
            "claiming jobs",
            |c| postgres::job_claim(c, queue, limit, worker, secs(lease)),
            sqlite::job_claim(c, queue, limit, worker, millis(lease))
        )?
    };
    if !rows.is_empty() {
        return Ok(Claim::Claimed(rows));
    }
    let now_controlled: bool = on_conn!(
        db,
        "reading a queue's controls",
        |c| sqlx::query_scalar(postgres::IS_CONTROLLED).bind(queue).fetch_one(&mut **c),
        sqlx::query_scalar(sqlite::IS_CONTROLLED).bind(queue).fetch_one(&mut **c),
    )?;
    if !now_controlled {
        return Ok(Claim::Claimed(rows));
    }
    *controlled = true;
    Ok(queue_control::job_claim_controlled(db, queue, limit, worker, lease).await?.unwrap_or(Claim::Claimed(rows)))
}

/// Applies state changes to running jobs in one statement; returns the ids it changed
/// (a job re-leased since is left alone), each with whether it has dependants (whose
/// settling the change triggered in the database).
pub(crate) async fn job_set_state_if_running_many(db: &Db, changes: &[Transition]) -> Result<Vec<(i64, bool)>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "recording finished jobs",
        |c| postgres::job_set_state_if_running_many(c, changes),
        sqlite::job_set_state_if_running_many(c, changes)
    )
}

/// The same, inside a transaction: the job's completion commits with the task's work.
/// `None` when the job was not changed (no longer this attempt's); else whether it has
/// dependants.
pub(crate) async fn job_set_state_if_running(conn: Conn<'_>, change: &Transition) -> Result<Option<bool>> {
    let changed = match conn {
        Conn::Postgres(c) => postgres::job_set_state_if_running_many(c, std::slice::from_ref(change)).await?,
        Conn::Sqlite(c) => sqlite::job_set_state_if_running_many(c, std::slice::from_ref(change)).await?,
    };
    Ok(changed.first().map(|(_, has_dependants)| *has_dependants))
}

/// Renews the leases of the jobs `ids` while `worker` still holds them; returns those still
/// its as `(id, attempt, cancel requested, renewed)`: a row locked by another statement at
/// that moment is not waited for, and comes back with `renewed` false.
pub(crate) async fn job_heartbeat(
    db: &Db,
    worker: &str,
    ids: &[i64],
    lease: Duration,
) -> Result<Vec<(i64, i32, bool, bool)>> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "renewing leases",
        |c| postgres::job_heartbeat(c, worker, ids, secs(lease)),
        sqlite::job_heartbeat(c, worker, ids, millis(lease))
    )
}

/// Returns jobs whose lease expired to the queue (or fails them when out of attempts);
/// returns the queues that got work back.
pub(crate) async fn job_rescue(db: &Db) -> Result<Vec<String>> {
    let _turn = db.writing().await?;
    on_conn!(db, "rescuing jobs", |c| postgres::job_rescue(c), sqlite::job_rescue(c))
}

/// A worker's periodic look at the queue: promotes due jobs, and says which of `queues`
/// have work, when the next job falls due, and whether leases expired.
pub(crate) async fn job_tick(db: &Db, queues: &[String]) -> Result<Tick> {
    let _turn = db.writing().await?;
    on_conn!(db, "looking for due jobs", |c| postgres::job_tick(c, queues), sqlite::job_tick(c, queues))
}

/// Cancels a job: a queued one at once, a running one by asking its worker. Returns the
/// state it is left in, or `None` when it was already finished or does not exist.
pub(crate) async fn job_cancel(db: &Db, id: JobId) -> Result<Option<JobState>> {
    let _turn = db.writing().await?;
    let state = on_conn!(db, "cancelling a job", |c| postgres::job_cancel(c, id.0), sqlite::job_cancel(c, id.0))?;
    state.map(|s| s.parse().map_err(crate::Error::app)).transpose()
}

/// Makes a finished or waiting job available now, granting it one more attempt if it had
/// none left. Returns whether a job was changed.
pub(crate) async fn job_retry(db: &Db, id: JobId) -> Result<bool> {
    let _turn = db.writing().await?;
    on_conn!(db, "retrying a job", |c| postgres::job_retry(c, id.0), sqlite::job_retry(c, id.0))
}

/// Deletes a job that is not running. Returns whether one was deleted.
pub(crate) async fn job_delete(db: &Db, id: JobId) -> Result<bool> {
    let _turn = db.writing().await?;
    on_conn!(db, "deleting a job", |c| postgres::job_delete(c, id.0), sqlite::job_delete(c, id.0))
}

/// One job by id.
pub(crate) async fn job_get(db: &Db, id: JobId) -> Result<Option<Job>> {
    let row = on_conn!(db, "reading a job", |c| postgres::job_get(c, id.0), sqlite::job_get(c, id.0))?;
    Ok(row.map(|r| r.job))
}

/// Counts per queue and state.
pub(crate) async fn job_count_by_queue_and_state(db: &Db) -> Result<Vec<StateCount>> {
    state_counts(on_conn!(db, "counting jobs", |c| postgres::job_counts(c), sqlite::job_counts(c))?)
}

/// `(queue, state, count)` rows as [`StateCount`]s.
fn state_counts(rows: Vec<(String, String, i64)>) -> Result<Vec<StateCount>> {
    rows.into_iter()
        .map(|(queue, state, count)| Ok(StateCount { queue, state: state.parse().map_err(crate::Error::app)?, count }))
        .collect()
}

/// Counts per queue and state of the finished jobs, or of the unfinished ones.
pub(crate) async fn job_count_split(db: &Db, finished: bool) -> Result<Vec<StateCount>> {
    state_counts(on_conn!(
        db,
        "counting jobs",
        |c| postgres::job_counts_split(c, finished),
        sqlite::job_counts_split(c, finished)
    )?)
}

/// Deletes completed jobs finished more than `completed` ago, and failed or cancelled ones
/// more than `discarded` ago, at most `limit` of each. Returns how many were deleted.
pub(crate) async fn job_prune(db: &Db, completed: Duration, discarded: Duration, limit: i64) -> Result<u64> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "pruning jobs",
        |c| postgres::job_prune(c, secs(completed), secs(discarded), limit),
        sqlite::job_prune(c, millis(completed), millis(discarded), limit)
    )
}

/// Records that `worker` is alive.
pub(crate) async fn worker_heartbeat(db: &Db, id: &str, hostname: &str, pid: i32, queues: &str) -> Result<()> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "recording the worker heartbeat",
        |c| postgres::worker_heartbeat(c, id, hostname, pid, queues),
        sqlite::worker_heartbeat(c, id, hostname, pid, queues)
    )
}

/// Records what the tasks a worker registers declare for their jobs, replacing earlier
/// records of the same tasks: jobs enqueued without those options get them from here.
pub(crate) async fn task_declare(db: &Db, worker: &str, declarations: &[Declaration]) -> Result<()> {
    if declarations.is_empty() {
        return Ok(());
    }
    let rows = serde_json::Value::Array(
        declarations
            .iter()
            .map(|d| {
                serde_json::json!({
                    "task": d.task, "queue": d.queue, "priority": d.priority, "max_attempts": d.max_attempts,
                })
            })
            .collect(),
    )
    .to_string();
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "recording the tasks' declarations",
        |c| postgres::task_declare(c, worker, &rows),
        sqlite::task_declare(c, worker, &rows)
    )
}

/// The jobs table's size and dead rows.
pub(crate) async fn table_stats(db: &Db) -> Result<TableStats> {
    on_conn!(db, "reading the jobs table's size", |c| postgres::table_stats(c), sqlite::table_stats(c))
}

/// Vacuums the jobs table (PostgreSQL) when its dead rows pile up and no vacuum, manual or
/// automatic, is under way or has run within `recent`: when autovacuum is off or lags, the
/// space pruning frees is otherwise never reused, and the table and its indexes grow
/// without bound. Returns whether it vacuumed. Not bounded by the query timeout (a vacuum
/// of a large table takes as long as it takes): run it where nothing waits for it.
pub(crate) async fn table_vacuum_if_needed(db: &Db, recent: Duration) -> Result<bool> {
    // SQLite reuses free pages for the next inserts: nothing to do, no connection to take.
    // VACUUM cannot run inside a transaction, which is all a transaction pooler offers:
    // there autovacuum is left to do it (docs/deployment.md).
    if db.backend() == crate::Backend::Sqlite || db.pooled_begin().is_some() {
        return Ok(false);
    }
    match &mut db.acquire().await? {
        PoolConn::Postgres(c) => postgres::table_vacuum_if_needed(c, secs(recent)).await,
        PoolConn::Sqlite(_) => Ok(false),
    }
}

/// The recorded task declarations, by task name.
pub(crate) async fn task_list(db: &Db) -> Result<Vec<TaskDeclaration>> {
    on_conn!(db, "listing the tasks' declarations", |c| postgres::task_list(c), sqlite::task_list(c))
}

/// Forgets a worker that stopped.
pub(crate) async fn worker_delete(db: &Db, id: &str) -> Result<()> {
    let _turn = db.writing().await?;
    on_conn!(db, "removing the worker", |c| postgres::worker_delete(c, id), sqlite::worker_delete(c, id))
}

/// Forgets workers silent for longer than `stale` (they died without saying so).
pub(crate) async fn worker_prune(db: &Db, stale: Duration) -> Result<()> {
    let _turn = db.writing().await?;
    on_conn!(db, "pruning workers", |c| postgres::worker_prune(c, secs(stale)), sqlite::worker_prune(c, millis(stale)))
}

/// The workers that heartbeated recently.
pub(crate) async fn worker_list(db: &Db) -> Result<Vec<WorkerInfo>> {
    let rows: Vec<(String, String, i32, String, i64, i64)> =
        on_conn!(db, "listing workers", |c| postgres::worker_list(c), sqlite::worker_list(c))?;
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
    on_conn!(
        db,
        "electing a leader",
        |c| postgres::leader_attempt_elect(c, name, id, secs(ttl)),
        sqlite::leader_attempt_elect(c, name, id, millis(ttl))
    )
}

/// Gives up the leadership `name` if `id` holds it.
pub(crate) async fn leader_resign(db: &Db, name: &str, id: &str) -> Result<()> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "resigning the leadership",
        |c| postgres::leader_resign(c, name, id),
        sqlite::leader_resign(c, name, id)
    )
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
    on_conn!(
        db,
        "reading throughput",
        |c| sqlx::query_as(
            "SELECT (extract(epoch FROM finished_at) / 60)::int8 AS minute, count(*) FROM oncommit.jobs \
             WHERE state = 'completed' AND finished_at > now() - make_interval(mins => $1::int4) \
             GROUP BY 1 ORDER BY 1",
        )
        .bind(minutes)
        .fetch_all(&mut **c),
        sqlx::query_as(concat!(
            "SELECT finished_at / 60000 AS minute, count(*) FROM oncommit_jobs \
             WHERE state = 'completed' AND finished_at > ",
            sqlite_now_ms!(),
            " - $1 * 60000 GROUP BY 1 ORDER BY 1"
        ))
        .bind(minutes)
        .fetch_all(&mut **c),
    )
}
