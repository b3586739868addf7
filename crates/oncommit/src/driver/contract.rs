//! The contract: the statements oncommit sends to its own tables, declared once with what
//! they do. `driver::postgres` and `driver::sqlite` each fulfil it with their SQL; a new
//! database implements these traits.
//!
//! A method is one statement, or a fixed few on the one connection it is given, never a
//! decision above the database: choosing, retrying, waiting, pooling and the SQLite write
//! gate belong to the callers (`queries`, `Db`). It runs where the caller put it: inside
//! the caller's transaction, or in autocommit. Times are the database's: delays and leases
//! are computed by its clock, never a worker's, so workers with skewed clocks agree.
//!
//! Statements that exist on one database only stay in its module, outside the contract:
//! PostgreSQL's vacuum and its statements for LISTEN.

mod dependencies;
mod diagnostics;
mod dialect;
mod history;
mod queues;
mod selected;

use std::time::Duration;

use crate::error::Result;
use crate::job::{JobId, JobState};
use crate::job_row::JobRow;

use super::rows::{TableStats, TaskDeclaration};
use super::selection::Filter;
use crate::unique::Identity;

pub(crate) use dependencies::*;
pub(crate) use diagnostics::*;
pub(crate) use dialect::*;
pub(crate) use history::*;
pub use queues::RateLimit;
pub(crate) use queues::*;
pub(crate) use selected::*;

/// Every trait of the contract, unnamed: what calls their methods imports it.
pub(crate) mod prelude {
    pub(crate) use super::{
        Dependencies as _, Diagnostics as _, Dialect as _, Fleet as _, History as _, Jobs as _, Queues as _,
        SelectedJobs as _, Sessions as _, UniqueJobs as _,
    };
}

/// A database oncommit can run on: the connection its statements take.
pub(crate) trait Driver {
    /// The database's connection (a pooled one or a transaction derefs to it).
    type Conn;
}

/// The statements on jobs: insert, claim, record outcomes, renew leases, rescue, and the
/// operator's verbs.
pub(crate) trait Jobs: Driver {
    /// Inserts jobs without a unique key, dependencies, workflow or concurrency key, in one
    /// statement, in input order; returns their ids in that order and the queues to wake.
    async fn job_insert_plain(c: &mut Self::Conn, jobs: &[&NewJob]) -> Result<Inserted>;

    /// Inserts one job with a unique key (`NewJob::unique_key`), unless an unfinished job
    /// holds the key: then that job's id comes back instead. Also returns the queue to wake
    /// when the job is available now (PostgreSQL; SQLite wakes this process at commit).
    async fn job_insert_keyed(c: &mut Self::Conn, job: &NewJob) -> Result<(JobId, Option<String>)>;

    /// The queue and state of job `id`, as the database's insert rules left them (a task's
    /// declaration, a future run time, waiting parents).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code, reason = "only SQLite's inserts read it back"))]
    async fn job_queue_and_state(c: &mut Self::Conn, id: i64) -> Result<(String, String)>;

    /// The fast claim of a queue that is neither paused nor limited: up to `limit` of its
    /// available jobs, chosen in claim order (priority, run time, id; the rows come back in
    /// no particular order), become `running` under
    /// `worker`'s lease, the attempt counted. Claims nothing once the queue is controlled
    /// (see `queue_is_controlled`). A row that cannot be decoded comes back with its
    /// problem, to be failed.
    async fn job_claim(c: &mut Self::Conn, claim: &JobClaim<'_>) -> Result<Vec<JobRow>>;

    /// Whether `queue` is paused or limited: its claims go through `queue_control`.
    async fn queue_is_controlled(c: &mut Self::Conn, queue: &str) -> Result<bool>;

    /// Applies state changes to running jobs in one statement; returns the ids it changed
    /// (a job re-leased since, or no longer running, is left alone), each with whether it
    /// has dependants or a concurrency key (whose settling the change triggered).
    async fn job_set_state_if_running_many(c: &mut Self::Conn, changes: &[Transition]) -> Result<Vec<(i64, bool)>>;

    /// Renews the leases of the jobs `ids` while `worker` still holds them; returns those
    /// still its as `(id, attempt, cancel requested, renewed)`. A row locked by another
    /// statement at that moment is not waited for, and comes back with `renewed` false.
    async fn job_heartbeat_many(c: &mut Self::Conn, renew: &JobHeartbeat<'_>) -> Result<Vec<(i64, i32, bool, bool)>>;

    /// Returns jobs whose lease expired to the queue, or fails those out of attempts, with
    /// an entry in their error history; returns the queues that got work back.
    async fn job_rescue_many(c: &mut Self::Conn) -> Result<Vec<String>>;

    /// A worker's periodic look at the queue: promotes due scheduled and retryable jobs,
    /// and says which of `queues` have work, when the next job falls due, and whether
    /// leases expired. Costs an idle worker one transaction.
    async fn job_tick(c: &mut Self::Conn, queues: &[String]) -> Result<Tick>;

    /// Cancels job `id`: a waiting one at once, a running one by asking its worker. Returns
    /// the state it is left in, or `None` when it was finished or does not exist.
    async fn job_cancel(c: &mut Self::Conn, id: i64) -> Result<Option<String>>;

    /// Makes a finished or waiting job available now, granting it one more attempt if it had
    /// none left. Returns whether a job was changed.
    async fn job_retry(c: &mut Self::Conn, id: i64) -> Result<bool>;

    /// Deletes a job that is not running. Returns whether one was deleted.
    async fn job_delete(c: &mut Self::Conn, id: i64) -> Result<bool>;

    /// One job by id.
    async fn job_get(c: &mut Self::Conn, id: i64) -> Result<Option<JobRow>>;

    /// `(queue, state, count)` of every job.
    async fn job_count_by_queue_and_state(c: &mut Self::Conn) -> Result<Vec<(String, String, i64)>>;

    /// `(queue, state, count)` of the finished jobs, or of the unfinished ones, read through
    /// their partial indexes without touching finished rows.
    async fn job_count_split(c: &mut Self::Conn, finished: bool) -> Result<Vec<(String, String, i64)>>;

    /// Deletes finished jobs past their retention, at most `limit` of each kind, with the
    /// dependency edges of pruned dependants. Returns how many jobs went.
    async fn job_prune(c: &mut Self::Conn, prune: &JobPrune) -> Result<u64>;

    /// The lowest and highest job ids, or `None` for an empty table: two probes of the
    /// primary key's ends.
    async fn job_id_bounds(c: &mut Self::Conn) -> Result<Option<(i64, i64)>>;

    /// Up to `window.limit` jobs the filter selects with ids in `[window.lo, window.hi)`,
    /// newest or oldest first. A window bounds the statement to a range of the primary key,
    /// so a page costs the same on a table of a thousand jobs or of millions, however rare
    /// the matches (`crate::listing` walks the windows).
    async fn job_window(c: &mut Self::Conn, filter: &Filter, window: &JobWindow) -> Result<Vec<JobRow>>;

    /// The age of the oldest available job of each queue that has one, in milliseconds,
    /// by queue name: how long work has waited for a worker (run time to now). A skip scan
    /// of the claim index, a few probes per queue and priority, never a count.
    async fn queue_lag(c: &mut Self::Conn) -> Result<Vec<(String, i64)>>;

    /// Jobs completed per minute over the last `minutes`: `(minute since the epoch, count)`.
    async fn job_throughput(c: &mut Self::Conn, minutes: i64) -> Result<Vec<(i64, i64)>>;
}

/// The statements on the fleet: workers, leaders, task declarations, periodic runs and the
/// jobs table itself.
pub(crate) trait Fleet: Driver {
    /// Records that a worker is alive (its row, created on its first heartbeat).
    async fn worker_heartbeat(c: &mut Self::Conn, worker: &WorkerBeat<'_>) -> Result<()>;

    /// Forgets a worker that stopped, and its sleeps.
    async fn worker_delete(c: &mut Self::Conn, id: &str) -> Result<()>;

    /// Forgets workers silent for longer than `stale` (they died without saying so).
    async fn worker_prune(c: &mut Self::Conn, stale: Duration) -> Result<()>;

    /// The workers' rows: `(id, hostname, pid, queues as JSON, started, heartbeat)`, times in
    /// epoch milliseconds, oldest first.
    async fn worker_list(c: &mut Self::Conn) -> Result<Vec<(String, String, i32, String, i64, i64)>>;

    /// Records what tasks declare for their jobs (`rows`, a JSON array of objects with
    /// `task`, `queue`, `priority`, `max_attempts`), replacing earlier records of the same
    /// tasks.
    async fn task_declare(c: &mut Self::Conn, worker: &str, rows: &str) -> Result<()>;

    /// The recorded task declarations, by task name.
    async fn task_list(c: &mut Self::Conn) -> Result<Vec<TaskDeclaration>>;

    /// Takes or keeps the leadership `name` for `ttl`; returns whether `id` leads.
    async fn leader_attempt_elect(c: &mut Self::Conn, elect: &LeaderElect<'_>) -> Result<bool>;

    /// Gives up the leadership `name` if `id` holds it.
    async fn leader_resign(c: &mut Self::Conn, name: &str, id: &str) -> Result<()>;

    /// Claims `period` of the periodic job `name` (inside the transaction that enqueues
    /// it); false when that period or a later one was claimed already.
    async fn periodic_claim(c: &mut Self::Conn, name: &str, period: i64) -> Result<bool>;

    /// Records that `worker` waits for a NOTIFY on `queue`, under the queue's exclusive
    /// advisory lock: the enqueuers that checked for sleepers before have committed when
    /// this returns (migration 016 says why no wake-up is lost). SQLite has no NOTIFY: its
    /// workers are woken in-process or by the poll, and nothing is recorded.
    async fn sleeper_record(c: &mut Self::Conn, queue: &str, worker: &str) -> Result<()>;

    /// `worker` is busy on `queue`: enqueuers need not wake it.
    async fn sleeper_forget(c: &mut Self::Conn, queue: &str, worker: &str) -> Result<()>;

    /// Adds the counters `rows` to the stored per-minute queue activity. The rows arrive
    /// sorted by key, so two workers adding to the same minutes lock the same rows in the
    /// same order and never deadlock.
    async fn activity_add(c: &mut Self::Conn, rows: &[ActivityRow]) -> Result<()>;

    /// The activity of minutes `since_minute` and later, summed per minute for completions
    /// (the chart) and over the whole range for the rest (the minute is 0 then).
    async fn activity_since(c: &mut Self::Conn, since_minute: i64) -> Result<Vec<ActivityRow>>;

    /// Deletes the activity of minutes before `before_minute`; returns how many rows went.
    async fn activity_prune(c: &mut Self::Conn, before_minute: i64) -> Result<u64>;

    /// What the vacuum duty decides by: the jobs table's dead and live rows, its last
    /// vacuum, whether one runs now and whether this session may run one. `None` where the
    /// database reclaims space by itself (SQLite).
    async fn table_upkeep(c: &mut Self::Conn) -> Result<Option<Upkeep>>;

    /// Vacuums the jobs table now, its indexes included, `analyze` too if asked; skips it
    /// when another vacuum holds the table. Runs outside a transaction, without the
    /// session's statement timeout. Nothing to do on SQLite.
    async fn table_vacuum(c: &mut Self::Conn, analyze: bool) -> Result<()>;

    /// The jobs table's size and dead rows.
    async fn table_stats(c: &mut Self::Conn) -> Result<TableStats>;

    /// oncommit's schema as the database describes it, as text in a fixed order: tables,
    /// indexes, triggers, functions and the migrations recorded. The suite compares it with
    /// the snapshot checked in beside the code (`schema/`), so a migration that changes the
    /// schema changes the snapshot in the same commit.
    async fn schema_describe(c: &mut Self::Conn) -> Result<String>;
}

/// The statements on jobs unique by content (`EnqueueOptions::unique`). The algorithm that
/// tries them in turn, while the job holding an identity changes under it, is written once
/// above the driver (`queries::unique_insert`).
pub(crate) trait UniqueJobs: Driver {
    /// Inserts `job` with its identity `id`, unless a job holds that identity now (its
    /// state among the identity's held states): then nothing. Returns the new job's id,
    /// queue and state as the database's insert rules left them.
    async fn job_insert_unique(
        c: &mut Self::Conn,
        job: &NewJob,
        id: &Identity,
    ) -> Result<Option<(i64, String, String)>>;

    /// The job holding the identity `hash` now, with its state.
    async fn job_unique_holder(c: &mut Self::Conn, hash: &str) -> Result<Option<(i64, String)>>;

    /// Gives job `holder` the arguments, run time, priority and trace context of `job`, if
    /// it is still waiting (scheduled or available; a claim in flight is waited for).
    /// Returns its queue and new state, or `None` when it has started.
    async fn job_unique_replace(c: &mut Self::Conn, holder: i64, job: &NewJob) -> Result<Option<(String, String)>>;
}

/// A claim's parameters (see [`Jobs::job_claim`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobClaim<'a> {
    pub(crate) queue: &'a str,
    /// At most this many jobs.
    pub(crate) limit: i64,
    /// The worker that will hold them: the lease's owner.
    pub(crate) worker: &'a str,
    /// How long the lease lasts before the jobs count as abandoned.
    pub(crate) lease: Duration,
}

/// A lease renewal's parameters (see [`Jobs::job_heartbeat_many`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobHeartbeat<'a> {
    pub(crate) worker: &'a str,
    /// The jobs the worker holds in memory: a job whose claim reply was lost is not among
    /// them, so its lease runs out and it is rescued.
    pub(crate) ids: &'a [i64],
    pub(crate) lease: Duration,
}

/// A window of the job listing (see [`Jobs::job_window`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobWindow {
    /// The lowest id of the window.
    pub(crate) lo: i64,
    /// Above the highest id of the window.
    pub(crate) hi: i64,
    pub(crate) newest_first: bool,
    pub(crate) limit: i64,
}

/// Retention of finished jobs (see [`Jobs::job_prune`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobPrune {
    /// Completed jobs finished longer ago than this go.
    pub(crate) completed: Duration,
    /// Failed and cancelled ones, likewise.
    pub(crate) discarded: Duration,
    /// At most this many of each per call, so that one call stays short.
    pub(crate) limit: i64,
}

/// A worker's heartbeat (see [`Fleet::worker_heartbeat`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerBeat<'a> {
    pub(crate) id: &'a str,
    pub(crate) hostname: &'a str,
    pub(crate) pid: i32,
    /// The queues it serves with their concurrency, a JSON object.
    pub(crate) queues: &'a str,
    /// The worker's wall clock, epoch milliseconds: the beat records how far it is from
    /// the database's (`oncommit doctor`).
    pub(crate) clock_ms: i64,
}

/// An election's parameters (see [`Fleet::leader_attempt_elect`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaderElect<'a> {
    /// The leadership: one leader per name.
    pub(crate) name: &'a str,
    /// The candidate.
    pub(crate) id: &'a str,
    /// How long the leadership lasts unless renewed.
    pub(crate) ttl: Duration,
}

/// The jobs table's state as a vacuum sees it (see [`Fleet::table_upkeep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Upkeep {
    /// Dead row versions not yet vacuumed: each claim and each outcome leaves one, and the
    /// claim index keeps an entry for each claimed job until a vacuum removes it.
    pub(crate) dead_rows: i64,
    /// Live rows, as the server estimates them.
    pub(crate) live_rows: i64,
    /// How long ago the last vacuum, manual or automatic, ended; `None` if none has.
    pub(crate) vacuumed_ago: Option<Duration>,
    /// A vacuum of the table is under way (autovacuum's or another worker's).
    pub(crate) vacuuming: bool,
    /// This session may vacuum the table (its role owns the table or the database, or is a
    /// superuser).
    pub(crate) permitted: bool,
}

/// One activity counter: `(minute since the epoch, queue, metric, bucket, count)`.
pub(crate) type ActivityRow = (i64, String, String, i16, i64);

/// Jobs inserted, and the queues to wake once they commit (those that got available jobs).
#[derive(Debug, Default)]
pub(crate) struct Inserted {
    pub(crate) ids: Vec<JobId>,
    pub(crate) wake: Vec<String>,
}

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
    /// Its fairness key and weight (see `queries::fair`).
    pub(crate) fair_key: Option<String>,
    pub(crate) fair_weight: Option<i16>,
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
