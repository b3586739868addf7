//! PostgreSQL's statements of flow-controlled queues: the queue's row locked `FOR UPDATE`
//! is a claimer's turn, and jobs are still claimed `FOR UPDATE SKIP LOCKED`.

use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use super::fair::{FAIR_JOBS, FAIR_KEYS};
use crate::driver::contract::{
    Controls, ControlsRow, JobClaim, KEY_RATE_SCAN, KeyWindow, QueueRow, Queues, Setting, rate_columns,
};
use crate::driver::secs;
use crate::error::Result;
use crate::job_row::JobRow;

/// The claim of a controlled queue, made under the lock of its row with a limit the
/// controls allow. Its jobs start at `$5` (epoch ms): the time the rate window was read
/// at, after the lock was granted (`now()` is when the transaction began, before the wait).
const CLAIM_CONTROLLED: &str = pg_claim!("to_timestamp($5::int8 / 1000.0)", "");

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
           coalesce((SELECT s.n FROM served s WHERE s.queue = n.queue), 0)::int8, coalesce(q.fair, false) \
    FROM names n LEFT JOIN oncommit.queues q ON q.name = n.queue \
    ORDER BY n.queue"
    };
}

/// Every queue with its counts (see `Queues::queue_list`).
const QUEUE_LIST: &str = concat!(
    "WITH counts AS ( \
        SELECT queue, 'available' AS state, count(*) AS n FROM oncommit.jobs WHERE state = 'available' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit.jobs \
            WHERE state IN ('scheduled', 'retryable') GROUP BY queue \
        UNION ALL SELECT queue, 'running', count(*) FROM oncommit.jobs WHERE state = 'running' GROUP BY queue \
        UNION ALL SELECT queue, 'waiting', count(*) FROM oncommit.jobs WHERE state = 'pending' GROUP BY queue), ",
    queue_list_pg!()
);

/// The same without counting jobs, the counts zero (for a caller that counted already).
pub(crate) const QUEUE_SETTINGS: &str = concat!(
    "WITH counts AS (SELECT NULL::text AS queue, NULL::text AS state, 0::int8 AS n WHERE false), ",
    queue_list_pg!()
);

impl Queues for PostgresDriver {
    async fn queue_controls_lock(c: &mut PgConnection, queue: &str) -> Result<Option<Controls>> {
        let row: Option<ControlsRow> = sqlx::query_as(
            "SELECT paused, concurrency_limit, rate_limit, rate_period_ms, rate_window_ms, rate_window_starts, \
                    rate_limit_per_key, fair, fair_cursor, (extract(epoch FROM clock_timestamp()) * 1000)::int8 \
             FROM oncommit.queues WHERE name = $1 FOR UPDATE",
        )
        .bind(queue)
        .fetch_optional(&mut *c)
        .await?;
        Ok(row.map(Controls::from))
    }

    async fn queue_running_and_now(c: &mut PgConnection, queue: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT (SELECT count(*) FROM oncommit.jobs WHERE state = 'running' AND queue = $1), \
                    (extract(epoch FROM clock_timestamp()) * 1000)::int8",
        )
        .bind(queue)
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_claim_controlled(c: &mut PgConnection, claim: &JobClaim<'_>, now_ms: i64) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(CLAIM_CONTROLLED)
            .bind(claim.queue)
            .bind(claim.limit)
            .bind(claim.worker)
            .bind(secs(claim.lease))
            .bind(now_ms)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn queue_rate_window_set(c: &mut PgConnection, queue: &str, start_ms: i64, starts: i64) -> Result<()> {
        sqlx::query("UPDATE oncommit.queues SET rate_window_ms = $2, rate_window_starts = $3 WHERE name = $1")
            .bind(queue)
            .bind(start_ms)
            .bind(i32::try_from(starts).unwrap_or(i32::MAX))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn job_claim_key_rated(
        c: &mut PgConnection,
        claim: &JobClaim<'_>,
        now_ms: i64,
        window: &KeyWindow,
    ) -> Result<Vec<JobRow>> {
        // Rank the first jobs of the queue within their keys, after the key's starts in the
        // window; take those within the limit, in claim order.
        Ok(sqlx::query_as(concat!(
            key_rated_picked!("oncommit.jobs", "oncommit.rate_windows"),
            "UPDATE oncommit.jobs SET state = 'running', attempt = attempt + 1, \
                 attempted_at = to_timestamp($5::int8 / 1000.0), lease_owner = $3, \
                 lease_expires_at = to_timestamp($5::int8 / 1000.0) + make_interval(secs => $4) \
             WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs WHERE id IN (SELECT id FROM picked) \
                                  AND state = 'available' ORDER BY id FOR UPDATE SKIP LOCKED)) \
             RETURNING ",
            pg_job_columns!()
        ))
        .bind(claim.queue)
        .bind(claim.limit)
        .bind(claim.worker)
        .bind(secs(claim.lease))
        .bind(now_ms)
        .bind(window.start)
        .bind(window.max_starts)
        .bind(KEY_RATE_SCAN)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn queue_has_available(c: &mut PgConnection, queue: &str) -> Result<bool> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM oncommit.jobs WHERE state = 'available' AND queue = $1)")
            .bind(queue)
            .fetch_one(&mut *c)
            .await?)
    }

    async fn rate_windows_add(c: &mut PgConnection, queue: &str, start_ms: i64, ids: &[i64]) -> Result<()> {
        sqlx::query(
            "INSERT INTO oncommit.rate_windows AS r (queue, key, window_ms, starts) \
             SELECT $1, coalesce(concurrency_key, ''), $2, count(*) FROM oncommit.jobs WHERE id = ANY($3) GROUP BY 2 \
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

    async fn rate_windows_prune(c: &mut PgConnection) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM oncommit.rate_windows w WHERE NOT EXISTS ( \
                 SELECT 1 FROM oncommit.queues q WHERE q.name = w.queue AND q.rate_limit_per_key \
                   AND w.window_ms + q.rate_period_ms > (extract(epoch FROM now()) * 1000)::int8)",
        )
        .execute(&mut *c)
        .await?
        .rows_affected())
    }

    async fn queue_set(c: &mut PgConnection, queue: &str, setting: Setting) -> Result<()> {
        let query = match setting {
            Setting::Paused(true) => sqlx::query("SELECT oncommit.pause_queue($1)").bind(queue),
            Setting::Paused(false) => sqlx::query("SELECT oncommit.resume_queue($1)").bind(queue),
            Setting::ConcurrencyLimit(limit) => sqlx::query("SELECT oncommit.limit_queue($1, $2)")
                .bind(queue)
                .bind(limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
            Setting::RateLimit(rate) => {
                let (max, period_ms, per_key) = rate_columns(rate);
                sqlx::query(
                    "SELECT oncommit.rate_limit_queue($1, $2::int4, make_interval(secs => $3::int8 / 1000.0), \
                                                      per_key => $4)",
                )
                .bind(queue)
                .bind(max)
                .bind(period_ms)
                .bind(per_key)
            }
        };
        query.execute(&mut *c).await?;
        Ok(())
    }

    async fn fair_top_priority(c: &mut PgConnection, queue: &str) -> Result<Option<i16>> {
        Ok(sqlx::query_scalar(
            "SELECT priority FROM oncommit.jobs WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 \
             ORDER BY priority LIMIT 1",
        )
        .bind(queue)
        .fetch_optional(&mut *c)
        .await?)
    }

    async fn fair_keys(
        c: &mut PgConnection,
        queue: &str,
        priority: i16,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, i32)>> {
        Ok(sqlx::query_as(FAIR_KEYS).bind(queue).bind(priority).bind(after).bind(limit).fetch_all(&mut *c).await?)
    }

    async fn fair_jobs(
        c: &mut PgConnection,
        queue: &str,
        priority: i16,
        keys: &[String],
        quotas: &[i64],
    ) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(FAIR_JOBS).bind(queue).bind(priority).bind(keys).bind(quotas).fetch_all(&mut *c).await?)
    }

    async fn job_claim_ids(
        c: &mut PgConnection,
        claim: &JobClaim<'_>,
        ids: &[i64],
        _now_ms: i64,
    ) -> Result<Vec<JobRow>> {
        // Started when the statement runs, as the fast claim's: the clock read with the
        // queue's row may precede a wait for its lock.
        Ok(sqlx::query_as(concat!(
            "UPDATE oncommit.jobs SET state = 'running', attempt = attempt + 1, \
                 attempted_at = statement_timestamp(), lease_owner = $2, \
                 lease_expires_at = statement_timestamp() + make_interval(secs => $3) \
             WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs WHERE id = ANY($1) AND state = 'available' \
                                  ORDER BY id FOR UPDATE SKIP LOCKED)) \
             RETURNING ",
            pg_job_columns!()
        ))
        .bind(ids)
        .bind(claim.worker)
        .bind(secs(claim.lease))
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_claim_fair(c: &mut PgConnection, claim: &JobClaim<'_>) -> Result<Option<Vec<JobRow>>> {
        Ok(Some(
            sqlx::query_as(super::fair::CLAIM_FAIR)
                .bind(claim.queue)
                .bind(claim.limit)
                .bind(claim.worker)
                .bind(secs(claim.lease))
                .fetch_all(&mut *c)
                .await?,
        ))
    }

    async fn fair_backlog(c: &mut PgConnection, queue: &str, limit: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT fair_key, count(*) FROM oncommit.jobs \
             WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 \
             GROUP BY fair_key ORDER BY count(*) DESC, fair_key LIMIT $2",
        )
        .bind(queue)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn queue_fair_cursor_set(c: &mut PgConnection, queue: &str, key: &str) -> Result<()> {
        sqlx::query("UPDATE oncommit.queues SET fair_cursor = $2 WHERE name = $1")
            .bind(queue)
            .bind(key)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn queue_list(c: &mut PgConnection, counted: bool) -> Result<Vec<QueueRow>> {
        let sql = if counted { QUEUE_LIST } else { QUEUE_SETTINGS };
        Ok(sqlx::query_as(sql).fetch_all(&mut *c).await?)
    }
}
