//! Queue-wide flow control: the `queues` table's settings (paused, concurrency limit, rate
//! limit, fairness) and the claim of a queue they control (a fair queue's: `fair`).
//!
//! A controlled queue is claimed inside a transaction that first locks the queue's row, so
//! its claimers take turns: each counts the queue's running jobs and the starts of the
//! current rate window with a snapshot taken after the previous claimer committed, claims at
//! most what the limits leave, and advances the window before letting the next one in. The
//! fast claim of an uncontrolled queue checks the row too (one primary-key probe) and claims
//! nothing once the queue is controlled, so a worker that has not noticed a new setting yet
//! cannot break it.

use std::time::Duration;

use crate::conn::Conn;
use crate::db::Db;
use crate::driver::DriverTx;
pub use crate::driver::contract::RateLimit;
use crate::driver::contract::{Controls, JobClaim, KeyWindow, Setting};
use crate::error::Result;
use crate::job_row::JobRow;

/// A queue's row in the `queues` table, and how its jobs stand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueInfo {
    /// The queue's name.
    pub name: String,
    /// Whether workers are kept from claiming its jobs.
    pub paused: bool,
    /// At most this many of its jobs run at once across all workers; `None`: no limit.
    pub concurrency_limit: Option<i32>,
    /// At most this many of its jobs start per period; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Its jobs waiting to run (`available`).
    pub available: i64,
    /// Its jobs running (claimed by a worker, prefetched ones included).
    pub running: i64,
    /// Its jobs waiting for their time (`scheduled` or `retryable`) or for the jobs they
    /// depend on (`pending`).
    pub waiting: i64,
    /// The workers serving it (among those that reported recently).
    pub workers: i64,
    /// Whether its jobs carry fairness keys, served round robin (`EnqueueOptions::fair_key`).
    pub fair: bool,
    /// A fair queue's keys with the most available jobs, most first (at most
    /// [`TOP_KEYS`]); empty for a queue that is not fair.
    pub top_keys: Vec<KeyBacklog>,
    /// How long its oldest available job has waited for a worker (since its run time);
    /// zero when none waits. The metric operators alert on: `lag_seconds` in JSON,
    /// `oncommit_queue_lag_seconds` in `/metrics`.
    #[serde(rename = "lag_seconds", serialize_with = "seconds")]
    pub lag: Duration,
}

/// How many of a fair queue's keys [`QueueInfo::top_keys`] names.
pub const TOP_KEYS: i64 = 5;

/// A fairness key and its available jobs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyBacklog {
    /// The key (`EnqueueOptions::fair_key`).
    pub key: String,
    /// Its jobs waiting to run.
    pub available: i64,
}

/// The keys of fair queue `queue` with the most available jobs (see `Queues::fair_backlog`).
pub(crate) async fn fair_backlog(db: &Db, queue: &str) -> Result<Vec<KeyBacklog>> {
    let rows = statement!(db, "reading a fair queue's keys", fair_backlog(queue, TOP_KEYS))?;
    Ok(rows.into_iter().map(|(key, available)| KeyBacklog { key, available }).collect())
}

/// A duration as fractional seconds, as Prometheus and `lag_seconds` show it.
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What a claim of a queue found.
pub(crate) enum Claim {
    /// Jobs claimed (perhaps none: the queue is empty).
    Claimed(Vec<JobRow>),
    /// The queue is paused: nothing was claimed.
    Paused,
    /// The queue's limits leave no room now; the rate window reopens after `retry_in`
    /// (`None`: a running job must finish first).
    Full { retry_in: Option<Duration> },
}

impl Controls {
    /// Whether the row controls its queue (`controlled_queue_row!` in SQL).
    fn controls(&self) -> bool {
        self.limited() || self.fair
    }

    /// Whether a pause or a limit holds the queue's jobs back (rather than only its
    /// fairness): then a worker claims for its free slots only.
    fn limited(&self) -> bool {
        self.paused || self.concurrency_limit.is_some() || self.rate_limit.is_some()
    }

    /// How many jobs may start now, out of `want`: what the concurrency limit leaves given
    /// `running`, and what the current rate window leaves at `now_ms`. Also the window to
    /// record (its start) when the claim is rate limited.
    fn allowance(&self, want: i64, running: i64, now_ms: i64) -> Allowance {
        let mut allowed = want;
        if let Some(limit) = self.concurrency_limit {
            allowed = allowed.min(i64::from(limit) - running);
        }
        let mut window = None;
        let mut reopens_in = None;
        let mut key_window = None;
        if let (Some(max), Some(period), true) = (self.rate_limit, self.rate_period_ms, self.rate_limit_per_key) {
            let start = now_ms.div_euclid(period) * period;
            key_window = Some(KeyWindow { start, period_ms: period, max_starts: max });
        } else if let (Some(max), Some(period)) = (self.rate_limit, self.rate_period_ms) {
            // A window recorded ahead of ours (the server's clock stepped back) is still the
            // current one: its starts count.
            let start = (now_ms.div_euclid(period) * period).max(self.rate_window_ms.unwrap_or(i64::MIN));
            let started = if self.rate_window_ms == Some(start) { i64::from(self.rate_window_starts) } else { 0 };
            let left = i64::from(max) - started;
            if left <= 0 || left < allowed {
                reopens_in = Some(Duration::from_millis(u64::try_from(start + period - now_ms).unwrap_or(1).max(1)));
            }
            allowed = allowed.min(left);
            window = Some((start, started));
        }
        Allowance { jobs: allowed.max(0), window, reopens_in, key_window }
    }
}

/// What the limits leave for one claim.
#[derive(Debug, PartialEq, Eq)]
struct Allowance {
    jobs: i64,
    /// The rate window `(start, starts before this claim)`, when the queue is rate limited.
    window: Option<(i64, i64)>,
    /// When the rate window bounds the claim: how long until the next window.
    reopens_in: Option<Duration>,
    /// The per-key window, when the rate limit counts each key on its own.
    key_window: Option<KeyWindow>,
}

/// Claims up to `limit` jobs of a controlled `queue` for `worker`, and says whether a pause
/// or a limit holds its jobs back (rather than only its fairness); `None` when the queue
/// turns out not to be controlled (claim it the fast way).
pub(crate) async fn job_claim_controlled(
    db: &Db,
    queue: &str,
    limit: i64,
    worker: &str,
    lease: Duration,
) -> Result<Option<(Claim, bool)>> {
    let claim = JobClaim { queue, limit, worker, lease };
    let _turn = db.writing().await?;
    on_conn!(db, "claiming jobs of a controlled queue", |conn| claim_controlled(conn, &claim))
}

/// The claim in a transaction of its own: the queue's lock is the turn, so the statements
/// after it see every claim committed before it.
async fn claim_controlled(conn: Conn<'_>, claim: &JobClaim<'_>) -> Result<Option<(Claim, bool)>> {
    let mut tx = DriverTx::begin_writing(conn).await?;
    let claimed = claim_in_turn(tx.conn(), claim).await?;
    tx.commit().await?;
    Ok(claimed)
}

async fn claim_in_turn(mut conn: Conn<'_>, claim: &JobClaim<'_>) -> Result<Option<(Claim, bool)>> {
    let controls = on_driver!(conn.reborrow(), queue_controls_lock(claim.queue))?;
    let Some(controls) = controls.filter(Controls::controls) else { return Ok(None) };
    Ok(Some((claim_limited(conn, claim, &controls).await?, controls.limited())))
}

/// The claim of a controlled queue under its lock: what its pause and limits leave, in
/// round robin across the keys when it is fair.
async fn claim_limited(mut conn: Conn<'_>, claim: &JobClaim<'_>, controls: &Controls) -> Result<Claim> {
    if controls.paused {
        return Ok(Claim::Paused);
    }
    // Only limits need the running jobs counted (a walk of their index) and the clock read
    // after the lock was granted; a queue that is only fair starts its jobs when its row
    // was read.
    let (running, now_ms) = match controls.limited() {
        true => on_driver!(conn.reborrow(), queue_running_and_now(claim.queue))?,
        false => (0, controls.read_at_ms),
    };
    let allowance = controls.allowance(claim.limit, running, now_ms);
    if allowance.jobs == 0 {
        return Ok(Claim::Full { retry_in: allowance.reopens_in });
    }
    let claim = JobClaim { limit: allowance.jobs, ..*claim };
    // A fair queue refuses a rate limit per key (and that limit a fair queue's jobs).
    if let Some(window) = allowance.key_window.filter(|_| !controls.fair) {
        return claim_key_rated(conn, &claim, now_ms, &window).await;
    }
    let rows = match controls.fair {
        true => super::fair::claim(conn.reborrow(), &claim, now_ms, controls.fair_cursor.as_deref()).await?,
        false => on_driver!(conn.reborrow(), job_claim_controlled(&claim, now_ms))?,
    };
    if let Some((start, started)) = allowance.window {
        on_driver!(conn, queue_rate_window_set(claim.queue, start, started + rows.len() as i64))?;
    }
    Ok(Claim::Claimed(rows))
}

/// The claim of a queue rate limited per concurrency key: only jobs whose key has starts
/// left in the current window, the starts made recorded per key in `rate_windows`. Jobs
/// of a key over its limit stay `available` and are passed over.
async fn claim_key_rated(mut conn: Conn<'_>, claim: &JobClaim<'_>, now_ms: i64, window: &KeyWindow) -> Result<Claim> {
    let rows = on_driver!(conn.reborrow(), job_claim_key_rated(claim, now_ms, window))?;
    if rows.is_empty() {
        return Ok(match on_driver!(conn, queue_has_available(claim.queue))? {
            // Only keys over their limits: wait for the next window.
            true => {
                let after = u64::try_from(window.start + window.period_ms - now_ms).unwrap_or(1).max(1);
                Claim::Full { retry_in: Some(Duration::from_millis(after)) }
            }
            false => Claim::Claimed(rows),
        });
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.job.id.0).collect();
    on_driver!(conn, rate_windows_add(claim.queue, window.start, &ids))?;
    Ok(Claim::Claimed(rows))
}

/// Changes one setting of `queue`, creating its row if needed.
pub(crate) async fn queue_set(db: &Db, queue: &str, setting: Setting) -> Result<()> {
    statement!(db, write "changing a queue's settings", queue_set(queue, setting))
}

/// Forgets rate windows that are over (see `Queues::rate_windows_prune`).
pub(crate) async fn rate_windows_prune(db: &Db) -> Result<u64> {
    statement!(db, write "pruning rate windows", rate_windows_prune())
}

/// Every queue with its settings, workers and (with `counted`) waiting and running jobs.
pub(crate) async fn queue_list(db: &Db, counted: bool) -> Result<Vec<QueueInfo>> {
    let rows = statement!(db, "listing queues", queue_list(counted))?;
    Ok(rows
        .into_iter()
        .map(
            |(
                name,
                paused,
                concurrency_limit,
                rate_limit,
                rate_period_ms,
                per_key,
                available,
                running,
                waiting,
                workers,
                fair,
            )| {
                QueueInfo {
                    name,
                    paused,
                    concurrency_limit,
                    rate_limit: rate_limit.zip(rate_period_ms).map(|(max, ms)| RateLimit {
                        max_starts: u32::try_from(max).unwrap_or(0),
                        period: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
                        per_key,
                    }),
                    available,
                    running,
                    waiting,
                    workers,
                    lag: Duration::ZERO,
                    fair,
                    top_keys: Vec::new(),
                }
            },
        )
        .collect())
}

/// The age of the oldest available job of each queue that has one.
pub(crate) async fn queue_lag(db: &Db) -> Result<std::collections::BTreeMap<String, Duration>> {
    let rows = statement!(db, "reading the queues' lag", queue_lag())?;
    Ok(rows.into_iter().map(|(queue, ms)| (queue, Duration::from_millis(u64::try_from(ms).unwrap_or(0)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls(concurrency_limit: Option<i32>, rate: Option<(i32, i64)>, window: Option<(i64, i32)>) -> Controls {
        Controls {
            paused: false,
            concurrency_limit,
            rate_limit: rate.map(|r| r.0),
            rate_period_ms: rate.map(|r| r.1),
            rate_window_ms: window.map(|w| w.0),
            rate_window_starts: window.map_or(0, |w| w.1),
            rate_limit_per_key: false,
            fair: false,
            fair_cursor: None,
            read_at_ms: 0,
        }
    }

    #[test]
    fn the_concurrency_limit_leaves_what_is_not_running() {
        let c = controls(Some(5), None, None);
        assert_eq!(c.allowance(100, 3, 0).jobs, 2);
        assert_eq!(c.allowance(1, 3, 0).jobs, 1);
        assert_eq!(c.allowance(100, 5, 0).jobs, 0);
        // Lowered below what runs: nothing, never negative.
        assert_eq!(c.allowance(100, 9, 0).jobs, 0);
    }

    #[test]
    fn the_rate_window_counts_starts_and_reopens_on_the_period() {
        let c = controls(None, Some((10, 1000)), Some((5000, 7)));
        let a = c.allowance(100, 0, 5400);
        assert_eq!((a.jobs, a.window), (3, Some((5000, 7))));
        assert_eq!(a.reopens_in, Some(Duration::from_millis(600)));
        // A new window: the count starts again.
        let a = c.allowance(100, 0, 6001);
        assert_eq!((a.jobs, a.window), (10, Some((6000, 0))));
        // Full window: nothing until the next.
        let full = controls(None, Some((10, 1000)), Some((5000, 10)));
        let a = full.allowance(4, 0, 5999);
        assert_eq!((a.jobs, a.reopens_in), (0, Some(Duration::from_millis(1))));
        // Both limits: the tighter wins.
        let both = controls(Some(2), Some((10, 1000)), None);
        assert_eq!(both.allowance(100, 1, 0).jobs, 1);
    }
}
