//! Queue-wide flow control: the `queues` table's settings (paused, concurrency limit, rate
//! limit) and the claim of a queue they control.
//!
//! A controlled queue is claimed inside a transaction that first locks the queue's row, so
//! its claimers take turns: each counts the queue's running jobs and the starts of the
//! current rate window with a snapshot taken after the previous claimer committed, claims at
//! most what the limits leave, and advances the window before letting the next one in. The
//! fast claim of an uncontrolled queue checks the row too (one primary-key probe) and claims
//! nothing once the queue is controlled, so a worker that has not noticed a new setting yet
//! cannot break it.

use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::key_rate::KeyWindow;
use crate::conn::PoolConn;
use crate::db::Db;
use crate::driver::{millis, secs};
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
    /// How long its oldest available job has waited for a worker (since its run time);
    /// zero when none waits. The metric operators alert on: `lag_seconds` in JSON,
    /// `oncommit_queue_lag_seconds` in `/metrics`.
    #[serde(rename = "lag_seconds", serialize_with = "seconds")]
    pub lag: Duration,
}

/// A duration as fractional seconds, as Prometheus and `lag_seconds` show it.
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

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

/// One change to a queue's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Setting {
    Paused(bool),
    ConcurrencyLimit(Option<u32>),
    RateLimit(Option<RateLimit>),
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

/// A controlled queue's row, locked for a claim.
#[derive(Debug)]
struct Controls {
    paused: bool,
    concurrency_limit: Option<i32>,
    rate_limit: Option<i32>,
    rate_period_ms: Option<i64>,
    rate_window_ms: Option<i64>,
    rate_window_starts: i32,
    /// The rate limit counts each concurrency key's starts on its own (`key_rate`).
    rate_limit_per_key: bool,
}

/// The columns of [`Controls`], in order.
type ControlsRow = (bool, Option<i32>, Option<i32>, Option<i64>, Option<i64>, i32, bool);

impl Controls {
    fn from_row(
        (paused, concurrency_limit, rate_limit, rate_period_ms, rate_window_ms, rate_window_starts, rate_limit_per_key): ControlsRow,
    ) -> Controls {
        Controls {
            paused,
            concurrency_limit,
            rate_limit,
            rate_period_ms,
            rate_window_ms,
            rate_window_starts,
            rate_limit_per_key,
        }
    }

    /// Whether the row controls its queue (`controlled_queue_row!` in SQL).
    fn controls(&self) -> bool {
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

/// Claims up to `limit` jobs of a controlled `queue` for `worker`; `None` when the queue
/// turns out not to be controlled (claim it the fast way).
pub(crate) async fn job_claim_controlled(
    db: &Db,
    queue: &str,
    limit: i64,
    worker: &str,
    lease: Duration,
) -> Result<Option<Claim>> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "claiming jobs of a controlled queue",
        |c| claim_postgres(c, queue, limit, worker, secs(lease)),
        claim_sqlite(c, queue, limit, worker, millis(lease))
    )
}

async fn claim_postgres(
    c: &mut PgConnection,
    queue: &str,
    limit: i64,
    worker: &str,
    lease_secs: f64,
) -> Result<Option<Claim>> {
    let mut tx = c.begin().await?;
    // The lock is the turn: the statements below see every claim committed before it.
    let controls: Option<ControlsRow> = sqlx::query_as(
        "SELECT paused, concurrency_limit, rate_limit, rate_period_ms, rate_window_ms, rate_window_starts, \
                rate_limit_per_key FROM oncommit.queues WHERE name = $1 FOR UPDATE",
    )
    .bind(queue)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(controls) = controls.map(Controls::from_row).filter(Controls::controls) else { return Ok(None) };
    if controls.paused {
        return Ok(Some(Claim::Paused));
    }
    // Running jobs of the queue: read through `jobs_running`, whose rows are bounded by the
    // workers' slots, however long the queue's history.
    let (running, now_ms): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM oncommit.jobs WHERE state = 'running' AND queue = $1), \
                (extract(epoch FROM clock_timestamp()) * 1000)::int8",
    )
    .bind(queue)
    .fetch_one(&mut *tx)
    .await?;
    let allowance = controls.allowance(limit, running, now_ms);
    if allowance.jobs == 0 {
        return Ok(Some(Claim::Full { retry_in: allowance.reopens_in }));
    }
    if let Some(window) = allowance.key_window {
        let claim =
            super::key_rate::claim_postgres(&mut tx, queue, allowance.jobs, (worker, lease_secs), now_ms, window);
        let claim = claim.await?;
        tx.commit().await?;
        return Ok(Some(claim));
    }
    let rows: Vec<JobRow> = sqlx::query_as(crate::driver::postgres::CLAIM_CONTROLLED)
        .bind(queue)
        .bind(allowance.jobs)
        .bind(worker)
        .bind(lease_secs)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
    if let Some((start, started)) = allowance.window {
        let starts = i32::try_from(started + rows.len() as i64).unwrap_or(i32::MAX);
        sqlx::query("UPDATE oncommit.queues SET rate_window_ms = $2, rate_window_starts = $3 WHERE name = $1")
            .bind(queue)
            .bind(start)
            .bind(starts)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(Claim::Claimed(rows)))
}

async fn claim_sqlite(
    c: &mut SqliteConnection,
    queue: &str,
    limit: i64,
    worker: &str,
    lease_ms: i64,
) -> Result<Option<Claim>> {
    // The write lock up front: other processes' claimers wait for this one's commit.
    let mut tx = c.begin_with("BEGIN IMMEDIATE").await?;
    let controls: Option<ControlsRow> = sqlx::query_as(
        "SELECT paused, concurrency_limit, rate_limit, rate_period_ms, rate_window_ms, rate_window_starts, \
                rate_limit_per_key FROM oncommit_queues WHERE name = $1",
    )
    .bind(queue)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(controls) = controls.map(Controls::from_row).filter(Controls::controls) else { return Ok(None) };
    if controls.paused {
        return Ok(Some(Claim::Paused));
    }
    let (running, now_ms): (i64, i64) = sqlx::query_as(concat!(
        "SELECT (SELECT count(*) FROM oncommit_jobs WHERE state = 'running' AND queue = $1), ",
        sqlite_now_ms!()
    ))
    .bind(queue)
    .fetch_one(&mut *tx)
    .await?;
    let allowance = controls.allowance(limit, running, now_ms);
    if allowance.jobs == 0 {
        return Ok(Some(Claim::Full { retry_in: allowance.reopens_in }));
    }
    if let Some(window) = allowance.key_window {
        let claim = super::key_rate::claim_sqlite(&mut tx, queue, allowance.jobs, (worker, lease_ms), now_ms, window);
        let claim = claim.await?;
        tx.commit().await?;
        return Ok(Some(claim));
    }
    let rows =
        crate::driver::sqlite::job_claim_unguarded(&mut tx, queue, allowance.jobs, worker, lease_ms, now_ms).await?;
    if let Some((start, started)) = allowance.window {
        sqlx::query("UPDATE oncommit_queues SET rate_window_ms = $2, rate_window_starts = $3 WHERE name = $1")
            .bind(queue)
            .bind(start)
            .bind(started + rows.len() as i64)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Some(Claim::Claimed(rows)))
}

/// Changes one setting of `queue`, creating its row if needed; on PostgreSQL through the SQL
/// function of the same purpose, which wakes the queue's workers in other processes at
/// commit.
pub(crate) async fn queue_set(db: &Db, queue: &str, setting: Setting) -> Result<()> {
    let _turn = db.writing().await?;
    let mut conn = db.acquire().await?;
    // Behind a transaction pooler, in a transaction of its own.
    let opened = conn.open_pooled(db).await?;
    let result = async {
        match &mut conn {
            PoolConn::Postgres(c) => {
                let query = match setting {
                    Setting::Paused(true) => sqlx::query("SELECT oncommit.pause_queue($1)").bind(queue),
                    Setting::Paused(false) => sqlx::query("SELECT oncommit.resume_queue($1)").bind(queue),
                    Setting::ConcurrencyLimit(limit) => sqlx::query("SELECT oncommit.limit_queue($1, $2)")
                        .bind(queue)
                        .bind(limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
                    Setting::RateLimit(rate) => sqlx::query(
                        "SELECT oncommit.rate_limit_queue($1, $2, make_interval(secs => $3::int8 / 1000.0), per_key => $4)",
                    )
                    .bind(queue)
                    .bind(rate.map(|r| i32::try_from(r.max_starts).unwrap_or(i32::MAX)))
                    .bind(rate.map(|r| millis(r.period)))
                    .bind(rate.is_some_and(|r| r.per_key)),
                };
                query.execute(&mut **c).await?;
            }
            PoolConn::Sqlite(c) => {
                let query = match setting {
                    Setting::Paused(paused) => sqlx::query(
                        "INSERT INTO oncommit_queues (name, paused) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
                    )
                    .bind(queue)
                    .bind(paused),
                    Setting::ConcurrencyLimit(limit) => sqlx::query(
                        "INSERT INTO oncommit_queues (name, concurrency_limit) VALUES ($1, $2) \
                         ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, \
                             updated_at = excluded.updated_at",
                    )
                    .bind(queue)
                    .bind(limit.map(i64::from)),
                    Setting::RateLimit(rate) => sqlx::query(
                        "INSERT INTO oncommit_queues (name, rate_limit, rate_period_ms, rate_limit_per_key) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO UPDATE SET rate_limit = excluded.rate_limit, \
                             rate_period_ms = excluded.rate_period_ms, rate_limit_per_key = excluded.rate_limit_per_key, \
                             rate_window_ms = NULL, rate_window_starts = 0, updated_at = excluded.updated_at",
                    )
                    .bind(queue)
                    .bind(rate.map(|r| i64::from(r.max_starts)))
                    .bind(rate.map(|r| millis(r.period)))
                    .bind(rate.is_some_and(|r| r.per_key)),
                };
                query.execute(&mut **c).await?;
                if let Setting::RateLimit(_) = setting {
                    // A new limit starts with fresh windows.
                    sqlx::query("DELETE FROM oncommit_rate_windows WHERE queue = $1").bind(queue).execute(&mut **c).await?;
                }
            }
        }
        Ok::<(), crate::Error>(())
    }
    .await;
    conn.close_pooled(opened, result.is_ok()).await?;
    result
}

/// The part of the queue list after its `counts`.
macro_rules! queue_list_pg {
    () => {
        "served AS ( \
        SELECT k AS queue, count(*) AS n FROM oncommit.workers w, \
            jsonb_object_keys(CASE WHEN jsonb_typeof(w.queues) = 'object' THEN w.queues ELSE '{}' END) AS k \
        GROUP BY k), \
    names AS (SELECT queue FROM counts UNION SELECT name FROM oncommit.queues \
              UNION SELECT queue FROM oncommit.tasks UNION SELECT queue FROM served) \
    SELECT n.queue, coalesce(q.paused, false), q.concurrency_limit, q.rate_limit, q.rate_period_ms, \
           coalesce(q.rate_limit_per_key, false), \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'available')::int8, \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'running')::int8, \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'waiting')::int8, \
           coalesce((SELECT s.n FROM served s WHERE s.queue = n.queue), 0)::int8 \
    FROM names n LEFT JOIN oncommit.queues q ON q.name = n.queue \
    ORDER BY n.queue"
    };
}

/// Every queue a setting names, a job waits or runs in, a task declares or a worker serves,
/// by name: its settings, the counts of its waiting and running jobs (each read through
/// its partial index, never the finished rows), and how many workers serve it.
pub(super) const QUEUE_LIST_POSTGRES: &str = concat!(
    "WITH counts AS ( \
        SELECT queue, 'available' AS state, count(*) AS n FROM oncommit.jobs WHERE state = 'available' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit.jobs \
            WHERE state IN ('scheduled', 'retryable') GROUP BY queue \
        UNION ALL SELECT queue, 'running', count(*) FROM oncommit.jobs WHERE state = 'running' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit.jobs WHERE state = 'pending' GROUP BY queue), ",
    queue_list_pg!()
);

/// The same without counting jobs: the settings and workers of every queue a setting names,
/// a task declares or a worker serves, its counts zero (for a caller that counted already).
pub(super) const QUEUE_SETTINGS_POSTGRES: &str = concat!(
    "WITH counts AS (SELECT NULL::text AS queue, NULL::text AS state, 0::int8 AS n WHERE false), ",
    queue_list_pg!()
);

/// The SQLite queue list after its `counts`.
macro_rules! queue_list_sqlite {
    () => {
        "served AS ( \
        SELECT k.key AS queue, count(*) AS n FROM oncommit_workers w, \
            json_each(CASE WHEN json_valid(w.queues) AND json_type(w.queues) = 'object' THEN w.queues ELSE '{}' END) AS k \
        GROUP BY k.key), \
    names AS (SELECT queue FROM counts UNION SELECT name FROM oncommit_queues \
              UNION SELECT queue FROM oncommit_tasks UNION SELECT queue FROM served) \
    SELECT n.queue, coalesce(q.paused, 0), q.concurrency_limit, q.rate_limit, q.rate_period_ms, \
           coalesce(q.rate_limit_per_key, 0), \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'available'), \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'running'), \
           (SELECT coalesce(sum(c.n), 0) FROM counts c WHERE c.queue = n.queue AND c.state = 'waiting'), \
           coalesce((SELECT s.n FROM served s WHERE s.queue = n.queue), 0) \
    FROM names n LEFT JOIN oncommit_queues q ON q.name = n.queue \
    WHERE n.queue IS NOT NULL \
    ORDER BY n.queue"
    };
}

const QUEUE_LIST_SQLITE: &str = concat!(
    "WITH counts AS ( \
        SELECT queue, 'available' AS state, count(*) AS n FROM oncommit_jobs WHERE state = 'available' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit_jobs \
            WHERE state IN ('scheduled', 'retryable') GROUP BY queue \
        UNION ALL SELECT queue, 'running', count(*) FROM oncommit_jobs WHERE state = 'running' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit_jobs WHERE state = 'pending' GROUP BY queue), ",
    queue_list_sqlite!()
);

const QUEUE_SETTINGS_SQLITE: &str =
    concat!("WITH counts AS (SELECT NULL AS queue, NULL AS state, 0 AS n WHERE 0), ", queue_list_sqlite!());

/// Every queue with its settings, workers and (with `counted`) waiting and running jobs.
pub(crate) async fn queue_list(db: &Db, counted: bool) -> Result<Vec<QueueInfo>> {
    type Row = (String, bool, Option<i32>, Option<i32>, Option<i64>, bool, i64, i64, i64, i64);
    let (pg, lite) = match counted {
        true => (QUEUE_LIST_POSTGRES, QUEUE_LIST_SQLITE),
        false => (QUEUE_SETTINGS_POSTGRES, QUEUE_SETTINGS_SQLITE),
    };
    let rows: Vec<Row> = on_conn!(
        db,
        "listing queues",
        |c| sqlx::query_as(pg).fetch_all(&mut **c),
        sqlx::query_as(lite).fetch_all(&mut **c),
    )?;
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
