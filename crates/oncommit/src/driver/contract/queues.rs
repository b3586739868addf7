//! The statements of queue-wide flow control: a queue's settings (paused, concurrency
//! limit, rate limit), the claim of a queue they control, and the per-key rate windows.
//! The algorithm that runs them under the queue's lock is written once, above the driver
//! (`queries::queue_control`).

use std::time::Duration;

use super::{Driver, JobClaim};
use crate::error::Result;
use crate::job_row::JobRow;

/// The statements of flow-controlled queues.
pub(crate) trait Queues: Driver {
    /// A queue's controls, its row locked until the transaction ends, so claimers of a
    /// controlled queue take turns (PostgreSQL: `FOR UPDATE`; SQLite: the transaction's
    /// write lock, taken by `BEGIN IMMEDIATE`). `None` when the queue has no row.
    async fn queue_controls_lock(c: &mut Self::Conn, queue: &str) -> Result<Option<Controls>>;

    /// How many jobs of `queue` run now, and the database's clock in epoch milliseconds,
    /// read after the queue's lock was granted. The count reads the running jobs' partial
    /// index, bounded by the workers' slots however long the queue's history.
    async fn queue_running_and_now(c: &mut Self::Conn, queue: &str) -> Result<(i64, i64)>;

    /// The claim of a controlled queue, under its lock, with the limit its controls allow:
    /// up to `claim.limit` available jobs in claim order, started at `now_ms` (when the
    /// limits were read, not when the transaction began).
    async fn job_claim_controlled(c: &mut Self::Conn, claim: &JobClaim<'_>, now_ms: i64) -> Result<Vec<JobRow>>;

    /// Records the queue's current rate window: its start and the starts made in it.
    async fn queue_rate_window_set(c: &mut Self::Conn, queue: &str, start_ms: i64, starts: i64) -> Result<()>;

    /// The claim of a queue rate limited per concurrency key, under its lock: in claim
    /// order, only jobs whose key has starts left in `window`, looking at the first
    /// [`KEY_RATE_SCAN`] available jobs. Jobs of a key over its limit stay available.
    async fn job_claim_key_rated(
        c: &mut Self::Conn,
        claim: &JobClaim<'_>,
        now_ms: i64,
        window: &KeyWindow,
    ) -> Result<Vec<JobRow>>;

    /// Whether `queue` has an available job (one probe of the claim index).
    async fn queue_has_available(c: &mut Self::Conn, queue: &str) -> Result<bool>;

    /// Adds the starts of the jobs `ids` to their keys' counts in the window starting at
    /// `start_ms` (a key's older window is replaced).
    async fn rate_windows_add(c: &mut Self::Conn, queue: &str, start_ms: i64, ids: &[i64]) -> Result<()>;

    /// Forgets the windows that are over, and those of queues no longer limited per key:
    /// one row per key ever seen would otherwise stay for good. Returns how many went.
    async fn rate_windows_prune(c: &mut Self::Conn) -> Result<u64>;

    /// Changes one setting of `queue`, creating its row if needed. A new rate limit starts
    /// with fresh windows. On PostgreSQL through the SQL function of the same purpose,
    /// which wakes the queue's workers in other processes at commit.
    async fn queue_set(c: &mut Self::Conn, queue: &str, setting: Setting) -> Result<()>;

    /// The best (lowest) priority among the available jobs of `queue` that have a fairness
    /// key: one probe of the fair index. `None` when none is available.
    async fn fair_top_priority(c: &mut Self::Conn, queue: &str) -> Result<Option<i16>>;

    /// Up to `limit` fairness keys with available jobs of `queue` at `priority`, in key
    /// order, after `after` (from the first key when `None`), each with its weight (that of
    /// its oldest available job; 1 when it has none). One probe of the fair index per key.
    async fn fair_keys(
        c: &mut Self::Conn,
        queue: &str,
        priority: i16,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, i32)>>;

    /// The ids of the first `quotas[i]` available jobs of `keys[i]` (in `queue`, at
    /// `priority`), by id within a key, each with its key's index in `keys`.
    async fn fair_jobs(
        c: &mut Self::Conn,
        queue: &str,
        priority: i16,
        keys: &[String],
        quotas: &[i64],
    ) -> Result<Vec<(i64, i64)>>;

    /// Claims the jobs `ids` that are still available for `claim.worker`, started at
    /// `now_ms` (`claim.limit` is not read: the ids are the claim).
    async fn job_claim_ids(c: &mut Self::Conn, claim: &JobClaim<'_>, ids: &[i64], now_ms: i64) -> Result<Vec<JobRow>>;

    /// The claim of `queries::fair` in one call, for a queue that is only fair (not paused,
    /// no limit): it waits for the queue's turn, claims up to `claim.limit` jobs in claim
    /// order with a snapshot taken after the wait, and records the key it ended with. `None`
    /// when this database has no such call; no rows when the queue is not only fair or has
    /// no keyed job available. In both cases the caller claims in steps, under the turn.
    async fn job_claim_fair(c: &mut Self::Conn, claim: &JobClaim<'_>) -> Result<Option<Vec<JobRow>>>;

    /// The `limit` fairness keys of `queue` with the most available jobs, and how many each
    /// has, most first: a read of the queue's part of the fair index.
    async fn fair_backlog(c: &mut Self::Conn, queue: &str, limit: i64) -> Result<Vec<(String, i64)>>;

    /// Records the key a fair queue's claim ended with: the next starts after it.
    async fn queue_fair_cursor_set(c: &mut Self::Conn, queue: &str, key: &str) -> Result<()>;

    /// Every queue a setting names, a job waits or runs in, a task declares or a worker
    /// serves, by name, with its settings and how many workers serve it; with `counted`,
    /// also its available, running and waiting jobs (each read through its partial index,
    /// never the finished rows), else those counts are zero.
    async fn queue_list(c: &mut Self::Conn, counted: bool) -> Result<Vec<QueueRow>>;
}

/// The most available jobs one claim of a queue rate limited per key looks through for
/// keys with starts left: a queue whose first 10,000 jobs all belong to keys over their
/// limits claims nothing until a window reopens.
pub(crate) const KEY_RATE_SCAN: i64 = 10_000;

/// At most `max_starts` job starts per `period`, counted in windows of `period` aligned to
/// the Unix epoch (a limit of 10 per minute allows 10 starts in each clock minute), for the
/// whole queue or, with `per_key`, for each concurrency key of its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    /// Starts allowed per window (at least 1).
    pub max_starts: u32,
    /// The window's length (at least a millisecond).
    #[serde(with = "period_ms", rename = "period_ms")]
    pub period: Duration,
    /// Whether the limit applies to each concurrency key (`EnqueueOptions::concurrency_key`)
    /// on its own, jobs without a key sharing one window, rather than to the whole queue.
    #[serde(default)]
    pub per_key: bool,
}

/// `period` travels as whole milliseconds, as the table stores it.
mod period_ms {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(period: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(period.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(serde::Deserialize::deserialize(d)?))
    }
}

/// A queue's row in the `queues` table, as a claim reads it under the row's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Controls {
    pub(crate) paused: bool,
    pub(crate) concurrency_limit: Option<i32>,
    pub(crate) rate_limit: Option<i32>,
    pub(crate) rate_period_ms: Option<i64>,
    /// The start of the rate window whose starts `rate_window_starts` counts (epoch ms).
    pub(crate) rate_window_ms: Option<i64>,
    pub(crate) rate_window_starts: i32,
    /// The rate limit counts each concurrency key's starts on its own (`rate_windows`).
    pub(crate) rate_limit_per_key: bool,
    /// Its jobs carry fairness keys: claims serve the keys round robin.
    pub(crate) fair: bool,
    /// The key the last claim of a fair queue ended with.
    pub(crate) fair_cursor: Option<String>,
    /// The database's clock when the row was read (epoch ms): the start of a claim that
    /// needs no count of running jobs.
    pub(crate) read_at_ms: i64,
}

/// The columns of [`Controls`], in order, as the drivers read them.
pub(crate) type ControlsRow =
    (bool, Option<i32>, Option<i32>, Option<i64>, Option<i64>, i32, bool, bool, Option<String>, i64);

impl From<ControlsRow> for Controls {
    fn from(
        (
            paused,
            concurrency_limit,
            rate_limit,
            rate_period_ms,
            rate_window_ms,
            rate_window_starts,
            rate_limit_per_key,
            fair,
            fair_cursor,
            read_at_ms,
        ): ControlsRow,
    ) -> Controls {
        Controls {
            paused,
            concurrency_limit,
            rate_limit,
            rate_period_ms,
            rate_window_ms,
            rate_window_starts,
            rate_limit_per_key,
            fair,
            fair_cursor,
            read_at_ms,
        }
    }
}

/// The current window of a per-key rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyWindow {
    /// Its start, epoch ms.
    pub(crate) start: i64,
    pub(crate) period_ms: i64,
    /// Starts allowed per key in it.
    pub(crate) max_starts: i32,
}

/// One change to a queue's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setting {
    Paused(bool),
    ConcurrencyLimit(Option<u32>),
    RateLimit(Option<RateLimit>),
}

/// A queue as [`Queues::queue_list`] reads it: name, paused, concurrency limit, rate limit,
/// rate period in ms, rate limit per key, available, running, waiting, workers.
pub(crate) type QueueRow = (String, bool, Option<i32>, Option<i32>, Option<i64>, bool, i64, i64, i64, i64, bool);

/// A rate limit as the `queues` table stores it: starts, period in ms, per key.
pub(crate) fn rate_columns(rate: Option<RateLimit>) -> (Option<i64>, Option<i64>, bool) {
    (
        rate.map(|r| i64::from(r.max_starts)),
        rate.map(|r| crate::driver::millis(r.period)),
        rate.is_some_and(|r| r.per_key),
    )
}
