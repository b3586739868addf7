//! SQLite's statements on the fleet: workers, leaders, task declarations, periodic runs and
//! the database file's footprint.

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{ActivityRow, Fleet, LeaderElect, Upkeep, WorkerBeat};
use crate::driver::millis;
use crate::driver::rows::{TableStats, TaskDeclaration, declaration};
use crate::error::Result;

impl Fleet for SqliteDriver {
    async fn table_upkeep(_: &mut SqliteConnection) -> Result<Option<Upkeep>> {
        // SQLite deletes index entries with their rows and reuses free pages itself.
        Ok(None)
    }

    async fn table_vacuum(_: &mut SqliteConnection, _: bool) -> Result<()> {
        Ok(())
    }

    async fn worker_heartbeat(c: &mut SqliteConnection, worker: &WorkerBeat<'_>) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO oncommit_workers (id, hostname, pid, queues, clock_offset_ms) VALUES ($1, $2, $3, $4, $5 - ",
            sqlite_now_ms!(),
            ") ON CONFLICT (id) DO UPDATE SET heartbeat_at = ",
            sqlite_now_ms!(),
            ", clock_offset_ms = excluded.clock_offset_ms"
        ))
        .bind(worker.id)
        .bind(worker.hostname)
        .bind(worker.pid)
        .bind(worker.queues)
        .bind(worker.clock_ms)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn table_stats(c: &mut SqliteConnection) -> Result<TableStats> {
        let (bytes, free_bytes): (i64, i64) = sqlx::query_as(
            "SELECT p.page_count * s.page_size, f.freelist_count * s.page_size \
             FROM pragma_page_count() AS p, pragma_page_size() AS s, pragma_freelist_count() AS f",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(TableStats { bytes, free_bytes: Some(free_bytes), live_rows: None, dead_rows: None, last_vacuum_at: None })
    }

    async fn task_declare(c: &mut SqliteConnection, worker: &str, rows: &str) -> Result<()> {
        sqlx::query(concat!(
            "INSERT INTO oncommit_tasks (name, queue, priority, max_attempts, declared_by) \
             SELECT value ->> '$.task', value ->> '$.queue', value ->> '$.priority', value ->> '$.max_attempts', $2 \
             FROM json_each($1) WHERE true \
             ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, priority = excluded.priority, \
                 max_attempts = excluded.max_attempts, declared_by = excluded.declared_by, declared_at = ",
            sqlite_now_ms!()
        ))
        .bind(rows)
        .bind(worker)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn task_list(c: &mut SqliteConnection) -> Result<Vec<TaskDeclaration>> {
        let rows: Vec<(String, String, i16, i32, String, i64)> = sqlx::query_as(
            "SELECT name, queue, priority, max_attempts, declared_by, declared_at FROM oncommit_tasks ORDER BY name",
        )
        .fetch_all(&mut *c)
        .await?;
        Ok(rows.into_iter().map(declaration).collect())
    }

    async fn worker_delete(c: &mut SqliteConnection, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM oncommit_workers WHERE id = $1").bind(id).execute(&mut *c).await?;
        Ok(())
    }

    async fn worker_prune(c: &mut SqliteConnection, stale: Duration) -> Result<()> {
        sqlx::query(concat!("DELETE FROM oncommit_workers WHERE heartbeat_at < ", sqlite_now_ms!(), " - $1"))
            .bind(millis(stale))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn worker_list(c: &mut SqliteConnection) -> Result<Vec<(String, String, i32, String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, hostname, pid, queues, started_at, heartbeat_at FROM oncommit_workers ORDER BY started_at",
        )
        .fetch_all(&mut *c)
        .await?)
    }

    async fn leader_attempt_elect(c: &mut SqliteConnection, elect: &LeaderElect<'_>) -> Result<bool> {
        let leader: Option<String> = sqlx::query_scalar(concat!(
            "INSERT INTO oncommit_leaders (name, leader_id, expires_at) VALUES ($1, $2, ",
            sqlite_now_ms!(),
            " + $3) \
             ON CONFLICT (name) DO UPDATE SET leader_id = excluded.leader_id, expires_at = excluded.expires_at \
             WHERE oncommit_leaders.expires_at < ",
            sqlite_now_ms!(),
            " OR oncommit_leaders.leader_id = excluded.leader_id \
             RETURNING leader_id"
        ))
        .bind(elect.name)
        .bind(elect.id)
        .bind(millis(elect.ttl))
        .fetch_optional(&mut *c)
        .await?;
        Ok(leader.is_some())
    }

    async fn leader_resign(c: &mut SqliteConnection, name: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM oncommit_leaders WHERE name = $1 AND leader_id = $2")
            .bind(name)
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn sleeper_record(_: &mut SqliteConnection, _: &str, _: &str) -> Result<()> {
        Ok(())
    }

    async fn sleeper_forget(_: &mut SqliteConnection, _: &str, _: &str) -> Result<()> {
        Ok(())
    }

    async fn activity_add(c: &mut SqliteConnection, rows: &[ActivityRow]) -> Result<()> {
        sqlx::query(
            "INSERT INTO oncommit_queue_activity (minute, queue, metric, bucket, count) \
             SELECT value ->> '$[0]', value ->> '$[1]', value ->> '$[2]', value ->> '$[3]', value ->> '$[4]' \
             FROM json_each($1) WHERE true \
             ON CONFLICT (minute, queue, metric, bucket) DO UPDATE SET count = count + excluded.count",
        )
        .bind(serde_json::to_string(rows).map_err(crate::Error::app)?)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn activity_since(c: &mut SqliteConnection, since_minute: i64) -> Result<Vec<ActivityRow>> {
        Ok(sqlx::query_as(activity_since!("oncommit_queue_activity", "sum(count)"))
            .bind(since_minute)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn activity_prune(c: &mut SqliteConnection, before_minute: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oncommit_queue_activity WHERE minute < $1")
            .bind(before_minute)
            .execute(&mut *c)
            .await?;
        Ok(done.rows_affected())
    }

    async fn schema_describe(c: &mut SqliteConnection) -> Result<String> {
        super::schema::describe(c).await
    }

    async fn periodic_claim(c: &mut SqliteConnection, name: &str, period: i64) -> Result<bool> {
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO oncommit_periodic_runs (name, last_period) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period \
             WHERE oncommit_periodic_runs.last_period < excluded.last_period RETURNING name",
        )
        .bind(name)
        .bind(period)
        .fetch_optional(c)
        .await?;
        Ok(claimed.is_some())
    }
}
