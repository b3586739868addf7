//! SQLite's statements of flow-controlled queues. The claimer's turn is the database's
//! write lock, taken by the `BEGIN IMMEDIATE` of the claim's transaction: other processes'
//! claimers wait for its commit.

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{
    Controls, ControlsRow, JobClaim, KEY_RATE_SCAN, KeyWindow, QueueRow, Queues, Setting, rate_columns,
};
use crate::driver::millis;
use crate::error::{Error, Result};
use crate::job_row::JobRow;

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
           coalesce((SELECT s.n FROM served s WHERE s.queue = n.queue), 0), coalesce(q.fair, 0) \
    FROM names n LEFT JOIN oncommit_queues q ON q.name = n.queue \
    WHERE n.queue IS NOT NULL \
    ORDER BY n.queue"
    };
}

/// Every queue with its counts (see `Queues::queue_list`).
const QUEUE_LIST: &str = concat!(
    "WITH counts AS ( \
        SELECT queue, 'available' AS state, count(*) AS n FROM oncommit_jobs WHERE state = 'available' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit_jobs \
            WHERE state IN ('scheduled', 'retryable') GROUP BY queue \
        UNION ALL SELECT queue, 'running', count(*) FROM oncommit_jobs WHERE state = 'running' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit_jobs WHERE state = 'pending' GROUP BY queue), ",
    queue_list_sqlite!()
);

/// The same without counting jobs.
const QUEUE_SETTINGS: &str =
    concat!("WITH counts AS (SELECT NULL AS queue, NULL AS state, 0 AS n WHERE 0), ", queue_list_sqlite!());

impl Queues for SqliteDriver {
    async fn queue_controls_lock(c: &mut SqliteConnection, queue: &str) -> Result<Option<Controls>> {
        let row: Option<ControlsRow> = sqlx::query_as(concat!(
            "SELECT paused, concurrency_limit, rate_limit, rate_period_ms, rate_window_ms, rate_window_starts, \
                    rate_limit_per_key, fair, fair_cursor, ",
            sqlite_now_ms!(),
            " FROM oncommit_queues WHERE name = $1"
        ))
        .bind(queue)
        .fetch_optional(&mut *c)
        .await?;
        Ok(row.map(Controls::from))
    }

    async fn queue_running_and_now(c: &mut SqliteConnection, queue: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(concat!(
            "SELECT (SELECT count(*) FROM oncommit_jobs WHERE state = 'running' AND queue = $1), ",
            sqlite_now_ms!()
        ))
        .bind(queue)
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_claim_controlled(c: &mut SqliteConnection, claim: &JobClaim<'_>, now_ms: i64) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(sqlite_claim!("$5", ""))
            .bind(claim.queue)
            .bind(claim.limit)
            .bind(claim.worker)
            .bind(millis(claim.lease))
            .bind(now_ms)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn queue_rate_window_set(c: &mut SqliteConnection, queue: &str, start_ms: i64, starts: i64) -> Result<()> {
        sqlx::query("UPDATE oncommit_queues SET rate_window_ms = $2, rate_window_starts = $3 WHERE name = $1")
            .bind(queue)
            .bind(start_ms)
            .bind(starts)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn job_claim_key_rated(
        c: &mut SqliteConnection,
        claim: &JobClaim<'_>,
        now_ms: i64,
        window: &KeyWindow,
    ) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(concat!(
            key_rated_picked!("oncommit_jobs", "oncommit_rate_windows"),
            "UPDATE oncommit_jobs SET state = 'running', attempt = attempt + 1, attempted_at = $5, \
                 lease_owner = $3, lease_expires_at = $5 + $4 \
             WHERE id IN (SELECT id FROM picked) \
             RETURNING ",
            sqlite_job_columns!()
        ))
        .bind(claim.queue)
        .bind(claim.limit)
        .bind(claim.worker)
        .bind(millis(claim.lease))
        .bind(now_ms)
        .bind(window.start)
        .bind(window.max_starts)
        .bind(KEY_RATE_SCAN)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn queue_has_available(c: &mut SqliteConnection, queue: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oncommit_jobs WHERE state = 'available' AND queue = $1)")
            .bind(queue)
            .fetch_one(&mut *c)
            .await?)
    }

    async fn rate_windows_add(c: &mut SqliteConnection, queue: &str, start_ms: i64, ids: &[i64]) -> Result<()> {
        let ids = serde_json::to_string(ids).map_err(Error::app)?;
        sqlx::query(
            "INSERT INTO oncommit_rate_windows AS r (queue, key, window_ms, starts) \
             SELECT $1, coalesce(concurrency_key, ''), $2, count(*) FROM oncommit_jobs \
             WHERE id IN (SELECT value FROM json_each($3)) GROUP BY 2 \
             ON CONFLICT (queue, key) DO UPDATE SET \
                 starts = CASE WHEN r.window_ms = excluded.window_ms THEN r.starts + excluded.starts \
                               ELSE excluded.starts END, \
                 window_ms = excluded.window_ms",
        )
        .bind(queue)
        .bind(start_ms)
        .bind(ids)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn rate_windows_prune(c: &mut SqliteConnection) -> Result<u64> {
        Ok(sqlx::query(concat!(
            "DELETE FROM oncommit_rate_windows WHERE NOT EXISTS ( \
                 SELECT 1 FROM oncommit_queues q WHERE q.name = oncommit_rate_windows.queue \
                   AND q.rate_limit_per_key AND oncommit_rate_windows.window_ms + q.rate_period_ms > ",
            sqlite_now_ms!(),
            ")"
        ))
        .execute(&mut *c)
        .await?
        .rows_affected())
    }

    async fn queue_set(c: &mut SqliteConnection, queue: &str, setting: Setting) -> Result<()> {
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
            Setting::RateLimit(rate) => {
                let (max, period_ms, per_key) = rate_columns(rate);
                let fair: Option<bool> = sqlx::query_scalar("SELECT fair FROM oncommit_queues WHERE name = $1")
                    .bind(queue)
                    .fetch_optional(&mut *c)
                    .await?;
                if per_key && fair == Some(true) {
                    return Err(Error::InvalidOption {
                        option: "rate limit",
                        reason: format!(
                            "queue {queue:?} is fair (its jobs have fair keys), which does not combine with a rate limit per key"
                        ),
                    });
                }
                sqlx::query(
                    "INSERT INTO oncommit_queues (name, rate_limit, rate_period_ms, rate_limit_per_key) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET rate_limit = excluded.rate_limit, \
                         rate_period_ms = excluded.rate_period_ms, rate_limit_per_key = excluded.rate_limit_per_key, \
                         rate_window_ms = NULL, rate_window_starts = 0, updated_at = excluded.updated_at",
                )
                .bind(queue)
                .bind(max)
                .bind(period_ms)
                .bind(per_key)
            }
        };
        query.execute(&mut *c).await?;
        if let Setting::RateLimit(_) = setting {
            // A new limit starts with fresh windows.
            sqlx::query("DELETE FROM oncommit_rate_windows WHERE queue = $1").bind(queue).execute(&mut *c).await?;
        }
        Ok(())
    }

    async fn fair_top_priority(c: &mut SqliteConnection, queue: &str) -> Result<Option<i16>> {
        Ok(sqlx::query_scalar(
            "SELECT priority FROM oncommit_jobs WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 \
             ORDER BY priority LIMIT 1",
        )
        .bind(queue)
        .fetch_optional(&mut *c)
        .await?)
    }

    async fn fair_keys(
        c: &mut SqliteConnection,
        queue: &str,
        priority: i16,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, i32)>> {
        // A loose index scan, as on PostgreSQL: one probe per key.
        Ok(sqlx::query_as(
            "WITH RECURSIVE ks(key, n) AS ( \
                 SELECT (SELECT fair_key FROM oncommit_jobs \
                         WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 AND priority = $2 \
                           AND fair_key > coalesce($3, '') ORDER BY fair_key LIMIT 1), 1 \
                 UNION ALL \
                 SELECT (SELECT j.fair_key FROM oncommit_jobs j \
                         WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = $1 AND j.priority = $2 \
                           AND j.fair_key > ks.key ORDER BY j.fair_key LIMIT 1), ks.n + 1 \
                 FROM ks WHERE ks.key IS NOT NULL AND ks.n < $4) \
             SELECT ks.key, coalesce((SELECT j.fair_weight FROM oncommit_jobs j \
                                      WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = $1 \
                                        AND j.priority = $2 AND j.fair_key = ks.key ORDER BY j.fair_key, j.id LIMIT 1), 1) \
             FROM ks WHERE ks.key IS NOT NULL ORDER BY ks.n",
        )
        .bind(queue)
        .bind(priority)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn fair_jobs(
        c: &mut SqliteConnection,
        queue: &str,
        priority: i16,
        keys: &[String],
        quotas: &[i64],
    ) -> Result<Vec<(i64, i64)>> {
        // One statement per key: SQLite has no LATERAL, and its statements cost no round trip.
        let mut found = Vec::new();
        for (index, (key, quota)) in keys.iter().zip(quotas).enumerate() {
            let ids: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM oncommit_jobs \
                 WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 AND priority = $2 AND fair_key = $3 \
                 ORDER BY fair_key, id LIMIT $4",
            )
            .bind(queue)
            .bind(priority)
            .bind(key)
            .bind(quota)
            .fetch_all(&mut *c)
            .await?;
            found.extend(ids.into_iter().map(|id| (id, index as i64)));
        }
        Ok(found)
    }

    async fn job_claim_ids(
        c: &mut SqliteConnection,
        claim: &JobClaim<'_>,
        ids: &[i64],
        now_ms: i64,
    ) -> Result<Vec<JobRow>> {
        let ids = serde_json::to_string(ids).map_err(Error::app)?;
        Ok(sqlx::query_as(concat!(
            "UPDATE oncommit_jobs SET state = 'running', attempt = attempt + 1, attempted_at = $4, \
                 lease_owner = $2, lease_expires_at = $4 + $3 \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'available' \
             RETURNING ",
            sqlite_job_columns!()
        ))
        .bind(ids)
        .bind(claim.worker)
        .bind(millis(claim.lease))
        .bind(now_ms)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_claim_fair(_: &mut SqliteConnection, _: &JobClaim<'_>) -> Result<Option<Vec<JobRow>>> {
        // SQLite's statements cost no round trip and its writer takes them in turn anyway:
        // the claim in steps is as quick.
        Ok(None)
    }

    async fn fair_backlog(c: &mut SqliteConnection, queue: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT fair_key, count(*) FROM oncommit_jobs \
             WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 \
             GROUP BY fair_key ORDER BY count(*) DESC, fair_key LIMIT $2",
        )
        .bind(queue)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn queue_fair_cursor_set(c: &mut SqliteConnection, queue: &str, key: &str) -> Result<()> {
        sqlx::query("UPDATE oncommit_queues SET fair_cursor = $2 WHERE name = $1")
            .bind(queue)
            .bind(key)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn queue_list(c: &mut SqliteConnection, counted: bool) -> Result<Vec<QueueRow>> {
        let sql = if counted { QUEUE_LIST } else { QUEUE_SETTINGS };
        Ok(sqlx::query_as(sql).fetch_all(&mut *c).await?)
    }
}
