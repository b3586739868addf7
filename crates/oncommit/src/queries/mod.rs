//! Running oncommit's statements for `Db`: on a pooled connection, behind the SQLite write
//! gate, within the query timeout, in a transaction of its own behind a transaction pooler
//! ([`statement!`]). The statements themselves are the driver's (`driver::contract`, one
//! module per database).
//!
//! The files beside this one are the algorithms of several statements, each written once
//! over the contract's statements: the controlled claim (`queue_control`), the unique
//! insert, a dependant's insert and the sweep (`dependencies`), bulk actions (`bulk`).
//! `activity`, `sleepers` and `listing` run single statements for `Db`.
//!
//! JSON crosses the boundary as text; times as `timestamptz` on PostgreSQL and epoch
//! milliseconds on SQLite (the row decoder in `job_row.rs` knows both).

use std::time::Duration;

use crate::conn::Conn;
use crate::db::Db;
use crate::error::Result;
use crate::job::{Job, JobId, JobState};

/// Runs `$body` with `$conn` bound to a [`Conn`] of `$db`'s pool: one of oncommit's
/// statements, or an algorithm over several. On a worker's own pool (`Db::own_pool`) it is
/// bounded by the pool's query timeout, and a connection whose statement timed out is
/// closed rather than returned: its state is unknown, and the pool's check of a returned
/// connection would wait forever on a silent network. Behind a transaction pooler it runs
/// in a transaction of its own (see `driver::postgres`). An error that says the server is
/// gone or no longer suits (a failover) is shown to the pool, which then looks for the one
/// that does.
macro_rules! on_conn {
    ($db:expr, $what:literal, |$conn:ident| $body:expr $(,)?) => {{
        let db: &$crate::Db = $db;
        let mut pooled = db.acquire().await?;
        let outcome = {
            let run = async {
                let opened = pooled.open_pooled(db.pooled_begin()).await?;
                let result: $crate::Result<_> = {
                    let $conn = pooled.conn();
                    $body.await.map_err(Into::into)
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

/// Runs the contract's statement `$method` on a connection of `$db` (see [`on_conn!`]):
/// `statement!(db, "reading a job", job_get(id))`. With `write` first, it takes the SQLite
/// write gate before the connection: oncommit's writes queue in this process rather than
/// spin on the database's busy timeout.
macro_rules! statement {
    ($db:expr, write $what:literal, $method:ident($($arg:expr),* $(,)?)) => {{
        let db: &$crate::Db = $db;
        let _turn = db.writing().await?;
        statement!(db, $what, $method($($arg),*))
    }};
    ($db:expr, $what:literal, $method:ident($($arg:expr),* $(,)?)) => {{
        on_conn!($db, $what, |conn| async { on_driver!(conn, $method($($arg),*)) })
    }};
}

pub(crate) mod activity;
pub(crate) mod bulk;
#[cfg(test)]
mod dashboard_plans;
mod dependencies;
pub(crate) mod diagnostics;
pub(crate) mod fair;
#[cfg(test)]
mod fair_plans;
pub(crate) mod history;
pub(crate) mod listing;
#[cfg(test)]
pub(crate) mod plans;
mod queue_control;
pub(crate) mod sleepers;
mod unique_insert;

pub(crate) use crate::driver::contract::Link;
pub(crate) use crate::driver::contract::Setting;
pub use dependencies::Parent;
pub(crate) use dependencies::{job_linked, job_parents, job_sweep_pending, workflow_jobs};
pub(crate) use queue_control::{Claim, fair_backlog, queue_lag, queue_list, queue_set, rate_windows_prune};
pub use queue_control::{KeyBacklog, QueueInfo, RateLimit, TOP_KEYS};

pub(crate) use crate::driver::contract::{Declaration, Inserted, NewJob, Tick, Transition};
pub(crate) use crate::driver::rows::StateCount;
pub use crate::driver::rows::{TableStats, TaskDeclaration, WorkerInfo};
#[cfg(feature = "postgres")]
pub(crate) use crate::driver::{CANCEL_CHANNEL, JOBS_CHANNEL};

use crate::driver::contract::{JobClaim, JobHeartbeat, JobPrune, LeaderElect, Upkeep, WorkerBeat};

/// Planner settings of the worker's own PostgreSQL sessions. Every statement a worker runs
/// is a few index probes by design (claim in index order, completions and heartbeats by
/// primary key, ticks and rescues on partial indexes); what the planner would pick instead
/// when its statistics lag behind a queue's churn — a hash join over a whole index, a
/// sequential scan of a million-row table — costs seconds per statement, and grows with
/// the pile-up it causes. These make those plans the last resort, so the plans stay what
/// the statements were written for, however the statistics stand (tested in `plans`).
pub(crate) const PLANNER_SETTINGS: &[(&str, &str)] =
    &[("enable_seqscan", "off"), ("enable_hashjoin", "off"), ("enable_mergejoin", "off")];

/// Inserts jobs inside the caller's transaction (or autocommit): those without a key, a
/// parent or a workflow in one statement, then each of the others by its rules. A job whose
/// unique key is held by an unfinished job is not inserted; that job's id stands in its
/// place. Nothing is NOTIFYed here: the queues to wake come back.
pub(crate) async fn job_insert(mut conn: Conn<'_>, jobs: &[NewJob]) -> Result<Inserted> {
    let (keyed, plain): (Vec<&NewJob>, Vec<&NewJob>) =
        jobs.iter().partition(|j| j.unique_key.is_some() || j.unique.is_some() || j.in_graph());
    let mut inserted = match plain.is_empty() {
        true => Inserted::default(),
        false => on_driver!(conn.reborrow(), job_insert_plain(&plain))?,
    };
    for job in keyed {
        let (id, wake) = match &job.unique {
            _ if job.in_graph() => Box::pin(dependencies::job_insert_dependent(conn.reborrow(), job)).await?,
            Some(identity) => Box::pin(unique_insert::job_insert_unique(conn.reborrow(), job, identity)).await?,
            None => on_driver!(conn.reborrow(), job_insert_keyed(job))?,
        };
        inserted.ids.push(id);
        // Repeated queues are fine: the notifier wakes each once.
        inserted.wake.extend(wake);
    }
    Ok(inserted)
}

/// How a queue is claimed, as its last claim found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Route {
    /// Neither paused, limited nor fair: the fast claim, which takes no lock.
    #[default]
    Fast,
    /// Paused, limited or fair: claims take turns on the queue's row (`queue_control`).
    /// `limited` when a pause or a limit holds jobs back: then a worker claims for its free
    /// slots only, since what waits in its prefetch counts against the limit that keeps
    /// other workers from running it. A queue that is only fair prefetches as any other.
    Turns { limited: bool },
}

/// Claims up to `limit` available jobs of `queue` for `worker`, committing the attempt.
/// A row that cannot be decoded comes back with its problem, to be failed.
///
/// `route` is the caller's belief of how the queue is claimed, kept up to date here: a
/// controlled queue is claimed under its row's lock (`queue_control`); the fast claim of
/// any other claims nothing once it becomes controlled, and an empty fast claim checks
/// whether it did. A queue that is only fair is claimed in one call where the database
/// has one (`Queues::job_claim_fair`), in steps under the turn where it has not or that
/// call claimed nothing.
pub(crate) async fn job_claim(
    db: &Db,
    queue: &str,
    limit: i64,
    worker: &str,
    lease: Duration,
    route: &mut Route,
) -> Result<Claim> {
    let claim = JobClaim { queue, limit, worker, lease };
    // Not behind the write gate: SQLite, which has the gate, has no such call and answers at
    // once; PostgreSQL has no gate.
    if *route == (Route::Turns { limited: false })
        && let Some(rows) = statement!(db, "claiming jobs of a fair queue", job_claim_fair(&claim))?
        && !rows.is_empty()
    {
        return Ok(Claim::Claimed(rows));
    }
    if let Route::Turns { .. } = route
        && let Some(claim) = claim_in_turn(db, queue, limit, worker, lease, route).await?
    {
        return Ok(claim);
    }
    let rows = statement!(db, write "claiming jobs", job_claim(&claim))?;
    if !rows.is_empty() {
        return Ok(Claim::Claimed(rows));
    }
    if !statement!(db, "reading a queue's controls", queue_is_controlled(queue))? {
        return Ok(Claim::Claimed(rows));
    }
    Ok(claim_in_turn(db, queue, limit, worker, lease, route).await?.unwrap_or(Claim::Claimed(rows)))
}

/// The claim of a controlled queue, taking its turn on the queue's row; records in `route`
/// how the queue is to be claimed next. `None` when it is not controlled after all.
async fn claim_in_turn(
    db: &Db,
    queue: &str,
    limit: i64,
    worker: &str,
    lease: Duration,
    route: &mut Route,
) -> Result<Option<Claim>> {
    let claimed = queue_control::job_claim_controlled(db, queue, limit, worker, lease).await?;
    *route = match &claimed {
        Some((_, limited)) => Route::Turns { limited: *limited },
        None => Route::Fast,
    };
    Ok(claimed.map(|(claim, _)| claim))
}

/// [`Jobs::job_set_state_if_running_many`](crate::driver::contract::Jobs) on the pool.
pub(crate) async fn job_set_state_if_running_many(db: &Db, changes: &[Transition]) -> Result<Vec<(i64, bool)>> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    statement!(db, write "recording finished jobs", job_set_state_if_running_many(changes))
}

/// The same, inside a transaction: the job's completion commits with the task's work.
/// `None` when the job was not changed (no longer this attempt's); else whether it has
/// dependants.
pub(crate) async fn job_set_state_if_running(conn: Conn<'_>, change: &Transition) -> Result<Option<bool>> {
    let changed = on_driver!(conn, job_set_state_if_running_many(std::slice::from_ref(change)))?;
    Ok(changed.first().map(|(_, has_dependants)| *has_dependants))
}

/// Renews the leases of the jobs `ids` while `worker` still holds them (see the contract).
pub(crate) async fn job_heartbeat(
    db: &Db,
    worker: &str,
    ids: &[i64],
    lease: Duration,
) -> Result<Vec<(i64, i32, bool, bool)>> {
    statement!(db, write "renewing leases", job_heartbeat_many(&JobHeartbeat { worker, ids, lease }))
}

/// Returns jobs whose lease expired to the queue; returns the queues that got work back.
pub(crate) async fn job_rescue(db: &Db) -> Result<Vec<String>> {
    statement!(db, write "rescuing jobs", job_rescue_many())
}

/// A worker's periodic look at the queue (see the contract's `job_tick`).
pub(crate) async fn job_tick(db: &Db, queues: &[String]) -> Result<Tick> {
    statement!(db, write "looking for due jobs", job_tick(queues))
}

/// Cancels a job: a queued one at once, a running one by asking its worker. Returns the
/// state it is left in, or `None` when it was already finished or does not exist.
pub(crate) async fn job_cancel(db: &Db, id: JobId) -> Result<Option<JobState>> {
    let state = statement!(db, write "cancelling a job", job_cancel(id.0))?;
    state.map(|s| s.parse().map_err(crate::Error::app)).transpose()
}

/// Makes a finished or waiting job available now; returns whether a job was changed.
pub(crate) async fn job_retry(db: &Db, id: JobId) -> Result<bool> {
    statement!(db, write "retrying a job", job_retry(id.0))
}

/// Deletes a job that is not running. Returns whether one was deleted.
pub(crate) async fn job_delete(db: &Db, id: JobId) -> Result<bool> {
    statement!(db, write "deleting a job", job_delete(id.0))
}

/// One job by id.
pub(crate) async fn job_get(db: &Db, id: JobId) -> Result<Option<Job>> {
    Ok(statement!(db, "reading a job", job_get(id.0))?.map(|r| r.job))
}

/// Counts per queue and state.
pub(crate) async fn job_count_by_queue_and_state(db: &Db) -> Result<Vec<StateCount>> {
    state_counts(statement!(db, "counting jobs", job_count_by_queue_and_state())?)
}

/// `(queue, state, count)` rows as [`StateCount`]s.
fn state_counts(rows: Vec<(String, String, i64)>) -> Result<Vec<StateCount>> {
    rows.into_iter()
        .map(|(queue, state, count)| Ok(StateCount { queue, state: state.parse().map_err(crate::Error::app)?, count }))
        .collect()
}

/// Counts per queue and state of the finished jobs, or of the unfinished ones.
pub(crate) async fn job_count_split(db: &Db, finished: bool) -> Result<Vec<StateCount>> {
    state_counts(statement!(db, "counting jobs", job_count_split(finished))?)
}

/// Deletes completed jobs finished more than `completed` ago, and failed or cancelled ones
/// more than `discarded` ago, at most `limit` of each. Returns how many were deleted.
pub(crate) async fn job_prune(db: &Db, completed: Duration, discarded: Duration, limit: i64) -> Result<u64> {
    statement!(db, write "pruning jobs", job_prune(&JobPrune { completed, discarded, limit }))
}

/// Records that `worker` is alive.
pub(crate) async fn worker_heartbeat(db: &Db, id: &str, hostname: &str, pid: i32, queues: &str) -> Result<()> {
    let clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let beat = WorkerBeat { id, hostname, pid, queues, clock_ms };
    statement!(db, write "recording the worker heartbeat", worker_heartbeat(&beat))
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
    statement!(db, write "recording the tasks' declarations", task_declare(worker, &rows))
}

/// The jobs table's size and dead rows.
pub(crate) async fn table_stats(db: &Db) -> Result<TableStats> {
    statement!(db, "reading the jobs table's size", table_stats())
}

/// The jobs table's upkeep (see `worker::vacuumer`); `None` where nothing is to be done:
/// SQLite reclaims space itself, and VACUUM cannot run inside a transaction, which is all a
/// transaction pooler offers (there autovacuum is left to do it, docs/deployment.md).
pub(crate) async fn table_upkeep(db: &Db) -> Result<Option<Upkeep>> {
    if db.pooled_begin().is_some() {
        return Ok(None);
    }
    statement!(db, "reading the jobs table's upkeep", table_upkeep())
}

/// Vacuums the jobs table now (PostgreSQL). Not bounded by the query timeout (a vacuum of
/// a large table takes as long as it takes): run it where nothing waits for it.
pub(crate) async fn table_vacuum(db: &Db, analyze: bool) -> Result<()> {
    on_driver!(db.acquire().await?.conn(), table_vacuum(analyze))
}

/// The recorded task declarations, by task name.
pub(crate) async fn task_list(db: &Db) -> Result<Vec<TaskDeclaration>> {
    statement!(db, "listing the tasks' declarations", task_list())
}

/// Forgets a worker that stopped.
pub(crate) async fn worker_delete(db: &Db, id: &str) -> Result<()> {
    statement!(db, write "removing the worker", worker_delete(id))
}

/// Forgets workers silent for longer than `stale` (they died without saying so).
pub(crate) async fn worker_prune(db: &Db, stale: Duration) -> Result<()> {
    statement!(db, write "pruning workers", worker_prune(stale))
}

/// The workers that heartbeated recently.
pub(crate) async fn worker_list(db: &Db) -> Result<Vec<WorkerInfo>> {
    let rows = statement!(db, "listing workers", worker_list())?;
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
    statement!(db, write "electing a leader", leader_attempt_elect(&LeaderElect { name, id, ttl }))
}

/// Gives up the leadership `name` if `id` holds it.
pub(crate) async fn leader_resign(db: &Db, name: &str, id: &str) -> Result<()> {
    statement!(db, write "resigning the leadership", leader_resign(name, id))
}

/// Claims `period` of the periodic job `name` inside the enqueueing transaction; returns
/// false when that period (or a later one) was claimed already.
pub(crate) async fn periodic_claim(conn: Conn<'_>, name: &str, period: i64) -> Result<bool> {
    on_driver!(conn, periodic_claim(name, period))
}

/// Jobs completed per minute over the last `minutes`: `(minute since the epoch, count)`.
pub(crate) async fn job_throughput(db: &Db, minutes: i64) -> Result<Vec<(i64, i64)>> {
    statement!(db, "reading throughput", job_throughput(minutes))
}
