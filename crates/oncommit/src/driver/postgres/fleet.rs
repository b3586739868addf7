//! PostgreSQL's statements on the fleet: workers, leaders, task declarations, periodic
//! runs and the jobs table's upkeep.

use std::time::Duration;

use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use crate::driver::contract::{ActivityRow, Fleet, LeaderElect, Upkeep, WorkerBeat};
use crate::driver::rows::{TableStats, TaskDeclaration, declaration};
use crate::driver::secs;
use crate::error::Result;

/// The activity of the minutes since `$1` (see `Fleet::activity_since`).
pub(crate) const ACTIVITY_SINCE: &str = activity_since!("oncommit.queue_activity", "sum(count)::int8");

impl Fleet for PostgresDriver {
    async fn table_upkeep(c: &mut PgConnection) -> Result<Option<Upkeep>> {
        let (dead_rows, live_rows, vacuumed_secs, vacuuming, permitted): (i64, i64, Option<f64>, bool, bool) =
            sqlx::query_as(UPKEEP).fetch_one(&mut *c).await?;
        let vacuumed_ago = vacuumed_secs.map(|s| Duration::from_secs_f64(s.max(0.0)));
        Ok(Some(Upkeep { dead_rows, live_rows, vacuumed_ago, vacuuming, permitted }))
    }

    async fn table_vacuum(c: &mut PgConnection, analyze: bool) -> Result<()> {
        // The worker's sessions carry a statement timeout; a vacuum must not be cut short
        // by it. SKIP_LOCKED: a vacuum that would wait for the table's lock (autovacuum
        // started meanwhile, an index being built) is not needed now. INDEX_CLEANUP ON:
        // the point is the claim index's dead entries, which PostgreSQL may otherwise leave
        // when few heap pages have dead rows.
        sqlx::raw_sql("SET statement_timeout = 0").execute(&mut *c).await?;
        let vacuumed = sqlx::raw_sql(match analyze {
            false => "VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON) oncommit.jobs",
            true => "VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, ANALYZE) oncommit.jobs",
        })
        .execute(&mut *c)
        .await;
        sqlx::raw_sql("RESET statement_timeout").execute(&mut *c).await?;
        vacuumed?;
        Ok(())
    }

    async fn worker_heartbeat(c: &mut PgConnection, worker: &WorkerBeat<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO oncommit.workers (id, hostname, pid, queues, clock_offset_ms) \
             VALUES ($1, $2, $3, $4::jsonb, $5 - (extract(epoch FROM clock_timestamp()) * 1000)::int8) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), clock_offset_ms = EXCLUDED.clock_offset_ms",
        )
        .bind(worker.id)
        .bind(worker.hostname)
        .bind(worker.pid)
        .bind(worker.queues)
        .bind(worker.clock_ms)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn table_stats(c: &mut PgConnection) -> Result<TableStats> {
        let (bytes, live_rows, dead_rows, last_vacuum_at): (i64, Option<i64>, Option<i64>, Option<i64>) =
            sqlx::query_as(
                "SELECT pg_total_relation_size('oncommit.jobs'), s.n_live_tup, s.n_dead_tup, \
                    (extract(epoch FROM greatest(s.last_vacuum, s.last_autovacuum)) * 1000)::int8 \
             FROM (SELECT 1) AS one LEFT JOIN pg_stat_user_tables s ON s.relid = 'oncommit.jobs'::regclass",
            )
            .fetch_one(&mut *c)
            .await?;
        Ok(TableStats { bytes, free_bytes: None, live_rows, dead_rows, last_vacuum_at })
    }

    async fn task_declare(c: &mut PgConnection, worker: &str, rows: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO oncommit.tasks AS t (name, queue, priority, max_attempts, declared_by) \
             SELECT d ->> 'task', d ->> 'queue', (d ->> 'priority')::smallint, (d ->> 'max_attempts')::integer, $2 \
             FROM jsonb_array_elements($1::jsonb) AS d \
             ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, priority = excluded.priority, \
                 max_attempts = excluded.max_attempts, declared_by = excluded.declared_by, declared_at = now()",
        )
        .bind(rows)
        .bind(worker)
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn task_list(c: &mut PgConnection) -> Result<Vec<TaskDeclaration>> {
        let rows: Vec<(String, String, i16, i32, String, i64)> = sqlx::query_as(
            "SELECT name, queue, priority, max_attempts, declared_by, \
                    (extract(epoch FROM declared_at) * 1000)::bigint \
             FROM oncommit.tasks ORDER BY name",
        )
        .fetch_all(&mut *c)
        .await?;
        Ok(rows.into_iter().map(declaration).collect())
    }

    async fn worker_delete(c: &mut PgConnection, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM oncommit.workers WHERE id = $1").bind(id).execute(&mut *c).await?;
        sqlx::query("DELETE FROM oncommit.sleepers WHERE worker = $1").bind(id).execute(&mut *c).await?;
        Ok(())
    }

    async fn worker_prune(c: &mut PgConnection, stale: Duration) -> Result<()> {
        sqlx::query("DELETE FROM oncommit.workers WHERE heartbeat_at < now() - make_interval(secs => $1)")
            .bind(secs(stale))
            .execute(&mut *c)
            .await?;
        // A dead worker's sleeps: they would only cost enqueuers a NOTIFY each.
        sqlx::query(
            "DELETE FROM oncommit.sleepers s WHERE NOT EXISTS (SELECT 1 FROM oncommit.workers w WHERE w.id = s.worker)",
        )
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn worker_list(c: &mut PgConnection) -> Result<Vec<(String, String, i32, String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, hostname, pid, queues::text, (extract(epoch FROM started_at) * 1000)::int8, \
                    (extract(epoch FROM heartbeat_at) * 1000)::int8 \
             FROM oncommit.workers ORDER BY started_at",
        )
        .fetch_all(&mut *c)
        .await?)
    }

    async fn leader_attempt_elect(c: &mut PgConnection, elect: &LeaderElect<'_>) -> Result<bool> {
        let leader: Option<String> = sqlx::query_scalar(
            "INSERT INTO oncommit.leaders (name, leader_id, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE SET leader_id = EXCLUDED.leader_id, expires_at = EXCLUDED.expires_at \
             WHERE oncommit.leaders.expires_at < now() OR oncommit.leaders.leader_id = EXCLUDED.leader_id \
             RETURNING leader_id",
        )
        .bind(elect.name)
        .bind(elect.id)
        .bind(secs(elect.ttl))
        .fetch_optional(&mut *c)
        .await?;
        Ok(leader.is_some())
    }

    async fn leader_resign(c: &mut PgConnection, name: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM oncommit.leaders WHERE name = $1 AND leader_id = $2")
            .bind(name)
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn sleeper_record(c: &mut PgConnection, queue: &str, worker: &str) -> Result<()> {
        let mut tx = sqlx::Connection::begin(&mut *c).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(1330531, hashtext($1))").bind(queue).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO oncommit.sleepers (queue, worker) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(queue)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        Ok(tx.commit().await?)
    }

    async fn sleeper_forget(c: &mut PgConnection, queue: &str, worker: &str) -> Result<()> {
        sqlx::query("DELETE FROM oncommit.sleepers WHERE queue = $1 AND worker = $2")
            .bind(queue)
            .bind(worker)
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn activity_add(c: &mut PgConnection, rows: &[ActivityRow]) -> Result<()> {
        sqlx::query(
            "INSERT INTO oncommit.queue_activity (minute, queue, metric, bucket, count) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int2[], $5::int8[]) \
             ON CONFLICT (minute, queue, metric, bucket) \
             DO UPDATE SET count = oncommit.queue_activity.count + excluded.count",
        )
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.2.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.3).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.4).collect::<Vec<_>>())
        .execute(&mut *c)
        .await?;
        Ok(())
    }

    async fn activity_since(c: &mut PgConnection, since_minute: i64) -> Result<Vec<ActivityRow>> {
        Ok(sqlx::query_as(ACTIVITY_SINCE).bind(since_minute).fetch_all(&mut *c).await?)
    }

    async fn activity_prune(c: &mut PgConnection, before_minute: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oncommit.queue_activity WHERE minute < $1")
            .bind(before_minute)
            .execute(&mut *c)
            .await?;
        Ok(done.rows_affected())
    }

    async fn schema_describe(c: &mut PgConnection) -> Result<String> {
        super::schema::describe(c).await
    }

    async fn periodic_claim(c: &mut PgConnection, name: &str, period: i64) -> Result<bool> {
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO oncommit.periodic_runs (name, last_period) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET last_period = EXCLUDED.last_period \
             WHERE oncommit.periodic_runs.last_period < EXCLUDED.last_period RETURNING name",
        )
        .bind(name)
        .bind(period)
        .fetch_optional(c)
        .await?;
        Ok(claimed.is_some())
    }
}

/// The jobs table's upkeep (see `Fleet::table_upkeep`). A vacuum needs the table's owner,
/// the database's owner or a superuser (`pg_has_role` is true for a superuser).
const UPKEEP: &str = "SELECT coalesce(s.n_dead_tup, 0), coalesce(s.n_live_tup, 0), \
        extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8, \
        EXISTS (SELECT 1 FROM pg_stat_progress_vacuum p WHERE p.relid = 'oncommit.jobs'::regclass), \
        pg_has_role((SELECT relowner FROM pg_class WHERE oid = 'oncommit.jobs'::regclass), 'USAGE') \
            OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') \
     FROM (SELECT 1) AS one LEFT JOIN pg_stat_user_tables s ON s.relid = 'oncommit.jobs'::regclass";
