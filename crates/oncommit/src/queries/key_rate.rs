//! A queue's rate limit per concurrency key: the claim of such a queue (under its row's
//! lock, see `queue_control`) takes, in claim order, only jobs whose key has starts left in
//! the current window, and records the starts it made per key in `rate_windows`.
//!
//! Jobs of a key over its limit stay `available` and are passed over. The claim looks at
//! the first [`SCAN`] available jobs of the queue in claim order: a queue whose first
//! 10,000 jobs all belong to keys over their limits claims nothing until a window reopens.

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::queue_control::Claim;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::job_row::JobRow;

/// The most available jobs one claim looks through for keys with starts left.
const SCAN: i64 = 10_000;

/// The current window of a per-key rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyWindow {
    /// Its start, epoch ms.
    pub(super) start: i64,
    pub(super) period_ms: i64,
    /// Starts allowed per key in it.
    pub(super) max_starts: i32,
}

impl KeyWindow {
    /// What a claim that found only keys over their limits says: wait for the next window.
    fn full(&self, now_ms: i64) -> Claim {
        let after = u64::try_from(self.start + self.period_ms - now_ms).unwrap_or(1).max(1);
        Claim::Full { retry_in: Some(Duration::from_millis(after)) }
    }
}

/// Claims up to `limit` jobs of `queue` at `now_ms`, in the transaction holding the queue's
/// lock; `$1` queue, `$2` limit, `$3` worker, `$4` lease, `$5` now, `$6` window start, `$7`
/// starts per key, `$8` the scan.
pub(super) async fn claim_postgres(
    c: &mut PgConnection,
    queue: &str,
    limit: i64,
    (worker, lease_secs): (&str, f64),
    now_ms: i64,
    window: KeyWindow,
) -> Result<Claim> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "WITH w AS (SELECT key, starts FROM oncommit.rate_windows WHERE queue = $1 AND window_ms = $6), \
         cand AS (SELECT id, coalesce(concurrency_key, '') AS k, priority, run_at FROM oncommit.jobs \
                  WHERE state = 'available' AND queue = $1 ORDER BY priority, run_at, id LIMIT $8), \
         ranked AS (SELECT c.id, c.priority, c.run_at, \
                           row_number() OVER (PARTITION BY c.k ORDER BY c.priority, c.run_at, c.id) \
                             + coalesce(w.starts, 0) AS nth \
                    FROM cand c LEFT JOIN w ON w.key = c.k), \
         picked AS (SELECT id FROM ranked WHERE nth <= $7 ORDER BY priority, run_at, id LIMIT $2) \
         UPDATE oncommit.jobs SET state = 'running', attempt = attempt + 1, attempted_at = to_timestamp($5::int8 / 1000.0), \
             lease_owner = $3, lease_expires_at = to_timestamp($5::int8 / 1000.0) + make_interval(secs => $4) \
         WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs WHERE id IN (SELECT id FROM picked) AND state = 'available' \
                              ORDER BY id FOR UPDATE SKIP LOCKED)) \
         RETURNING ",
        pg_job_columns!()
    ))
    .bind(queue)
    .bind(limit)
    .bind(worker)
    .bind(lease_secs)
    .bind(now_ms)
    .bind(window.start)
    .bind(window.max_starts)
    .bind(SCAN)
    .fetch_all(&mut *c)
    .await?;
    if rows.is_empty() {
        let waiting: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oncommit.jobs WHERE state = 'available' AND queue = $1)")
                .bind(queue)
                .fetch_one(&mut *c)
                .await?;
        return Ok(if waiting { window.full(now_ms) } else { Claim::Claimed(rows) });
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.job.id.0).collect();
    sqlx::query(
        "INSERT INTO oncommit.rate_windows AS r (queue, key, window_ms, starts) \
         SELECT $1, coalesce(concurrency_key, ''), $2, count(*) FROM oncommit.jobs WHERE id = ANY($3) GROUP BY 2 \
         ON CONFLICT (queue, key) DO UPDATE SET \
             starts = CASE WHEN r.window_ms = excluded.window_ms THEN r.starts + excluded.starts ELSE excluded.starts END, \
             window_ms = excluded.window_ms",
    )
    .bind(queue)
    .bind(window.start)
    .bind(&ids)
    .execute(&mut *c)
    .await?;
    Ok(Claim::Claimed(rows))
}

/// The same on SQLite, inside the claim's `BEGIN IMMEDIATE`.
pub(super) async fn claim_sqlite(
    c: &mut SqliteConnection,
    queue: &str,
    limit: i64,
    (worker, lease_ms): (&str, i64),
    now_ms: i64,
    window: KeyWindow,
) -> Result<Claim> {
    let rows: Vec<JobRow> = sqlx::query_as(concat!(
        "WITH w AS (SELECT key, starts FROM oncommit_rate_windows WHERE queue = $1 AND window_ms = $6), \
         cand AS (SELECT id, coalesce(concurrency_key, '') AS k, priority, run_at FROM oncommit_jobs \
                  WHERE state = 'available' AND queue = $1 ORDER BY priority, run_at, id LIMIT $8), \
         ranked AS (SELECT c.id, c.priority, c.run_at, \
                           row_number() OVER (PARTITION BY c.k ORDER BY c.priority, c.run_at, c.id) \
                             + coalesce(w.starts, 0) AS nth \
                    FROM cand c LEFT JOIN w ON w.key = c.k), \
         picked AS (SELECT id FROM ranked WHERE nth <= $7 ORDER BY priority, run_at, id LIMIT $2) \
         UPDATE oncommit_jobs SET state = 'running', attempt = attempt + 1, attempted_at = $5, \
             lease_owner = $3, lease_expires_at = $5 + $4 \
         WHERE id IN (SELECT id FROM picked) \
         RETURNING ",
        sqlite_job_columns!()
    ))
    .bind(queue)
    .bind(limit)
    .bind(worker)
    .bind(lease_ms)
    .bind(now_ms)
    .bind(window.start)
    .bind(window.max_starts)
    .bind(SCAN)
    .fetch_all(&mut *c)
    .await?;
    if rows.is_empty() {
        let waiting: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oncommit_jobs WHERE state = 'available' AND queue = $1)")
                .bind(queue)
                .fetch_one(&mut *c)
                .await?;
        return Ok(if waiting { window.full(now_ms) } else { Claim::Claimed(rows) });
    }
    let ids = serde_json::to_string(&rows.iter().map(|r| r.job.id.0).collect::<Vec<_>>()).map_err(Error::app)?;
    sqlx::query(
        "INSERT INTO oncommit_rate_windows AS r (queue, key, window_ms, starts) \
         SELECT $1, coalesce(concurrency_key, ''), $2, count(*) FROM oncommit_jobs \
         WHERE id IN (SELECT value FROM json_each($3)) GROUP BY 2 \
         ON CONFLICT (queue, key) DO UPDATE SET \
             starts = CASE WHEN r.window_ms = excluded.window_ms THEN r.starts + excluded.starts ELSE excluded.starts END, \
             window_ms = excluded.window_ms",
    )
    .bind(queue)
    .bind(window.start)
    .bind(ids)
    .execute(&mut *c)
    .await?;
    Ok(Claim::Claimed(rows))
}

/// Forgets the windows that are over, and those of queues no longer limited per key: one
/// row per key ever seen would otherwise stay for good.
pub(crate) async fn rate_windows_prune(db: &Db) -> Result<u64> {
    let _turn = db.writing().await?;
    on_conn!(
        db,
        "pruning rate windows",
        |c| async {
            Ok::<_, sqlx::Error>(
                sqlx::query(
                    "DELETE FROM oncommit.rate_windows w WHERE NOT EXISTS ( \
                         SELECT 1 FROM oncommit.queues q WHERE q.name = w.queue AND q.rate_limit_per_key \
                           AND w.window_ms + q.rate_period_ms > (extract(epoch FROM now()) * 1000)::int8)",
                )
                .execute(&mut **c)
                .await?
                .rows_affected(),
            )
        },
        async {
            Ok::<_, sqlx::Error>(
                sqlx::query(concat!(
                    "DELETE FROM oncommit_rate_windows WHERE NOT EXISTS ( \
                         SELECT 1 FROM oncommit_queues q WHERE q.name = oncommit_rate_windows.queue \
                           AND q.rate_limit_per_key AND oncommit_rate_windows.window_ms + q.rate_period_ms > ",
                    sqlite_now_ms!(),
                    ")"
                ))
                .execute(&mut **c)
                .await?
                .rows_affected(),
            )
        },
    )
}
