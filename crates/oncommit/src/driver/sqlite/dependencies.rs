//! SQLite's statements on dependencies: one writer at a time, so the write lock taken by a
//! dependant's first statement is the guard every PostgreSQL lock stands for; arrays travel
//! as JSON read with `json_each`.

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{Dependencies, Jobs, Link, NewJob};
use crate::error::{Error, Result};
use crate::job_row::JobRow;

/// `[parents, dependants]` of job `$1` (see `Dependencies::job_linked`).
const LINKED: [&str; 2] = linked!("oncommit_jobs", "oncommit_job_dependencies", sqlite_job_columns!());

fn json(ids: &[i64]) -> Result<String> {
    serde_json::to_string(ids).map_err(Error::app)
}

impl Dependencies for SqliteDriver {
    async fn job_parents_lock(c: &mut SqliteConnection, ids: &[i64]) -> Result<Vec<(i64, String)>> {
        let ids = json(ids)?;
        sqlx::query(
            "UPDATE oncommit_jobs SET has_dependants = 1 \
             WHERE id IN (SELECT value FROM json_each($1)) AND NOT has_dependants",
        )
        .bind(&ids)
        .execute(&mut *c)
        .await?;
        Ok(sqlx::query_as(
            "SELECT id, state FROM oncommit_jobs WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn concurrency_key_lock_count(c: &mut SqliteConnection, key: &str) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state <> 'pending'), count(*) FILTER (WHERE state = 'pending') \
             FROM oncommit_jobs WHERE concurrency_key = $1 \
               AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable')",
        )
        .bind(key)
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_insert_dependent(
        c: &mut SqliteConnection,
        job: &NewJob,
        state: &str,
        errors: Option<&str>,
    ) -> Result<(i64, String, String)> {
        let id: i64 = bind_new_job!(
            sqlx::query_scalar(concat!(
                "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                 workflow_id, on_parent_failure, finished_at, errors, concurrency_key, key_limit, fair_key, fair_weight) \
             VALUES ($1, $2, $3, $4, coalesce($5, ",
                sqlite_now_ms!(),
                "), $6, CASE $7 WHEN 'ready' THEN CASE WHEN $5 > ",
                sqlite_now_ms!(),
                " THEN 'scheduled' ELSE 'available' END ELSE $7 END, $8, $9, $10, CASE WHEN $7 = 'cancelled' THEN ",
                sqlite_now_ms!(),
                " END, coalesce($11, '[]'), $12, $13, $14, $15) RETURNING id"
            )),
            job
        )
        .bind(state)
        .bind(&job.trace_context)
        .bind(&job.workflow_id)
        .bind(job.on_parent_failure)
        .bind(errors)
        .bind(&job.concurrency_key)
        .bind(job.concurrency_key.as_ref().map(|_| job.key_limit))
        .bind(&job.fair_key)
        .bind(job.fair_weight)
        .fetch_one(&mut *c)
        .await?;
        sqlx::query("INSERT INTO oncommit_job_dependencies (job_id, parent_id) SELECT $1, value FROM json_each($2)")
            .bind(id)
            .bind(json(&job.depends_on)?)
            .execute(&mut *c)
            .await?;
        let (queue, state) = SqliteDriver::job_queue_and_state(&mut *c, id).await?;
        Ok((id, queue, state))
    }

    async fn job_linked(c: &mut SqliteConnection, id: i64, link: Link) -> Result<Vec<JobRow>> {
        let sql = LINKED[usize::from(link == Link::Dependants)];
        Ok(sqlx::query_as(sql).bind(id).fetch_all(&mut *c).await?)
    }

    async fn workflow_jobs(c: &mut SqliteConnection, id: &str) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            sqlite_job_columns!(),
            " FROM oncommit_jobs WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn workflow_edges(c: &mut SqliteConnection, id: &str) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT d.job_id, d.parent_id FROM oncommit_job_dependencies d \
             WHERE d.job_id IN (SELECT id FROM oncommit_jobs WHERE workflow_id = $1) ORDER BY d.job_id, d.parent_id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_pending_after(c: &mut SqliteConnection, after: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM oncommit_jobs WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn job_settle_pending(c: &mut SqliteConnection, ids: &[i64]) -> Result<u64> {
        let ids = json(ids)?;
        let cancelled = sqlx::query(concat!(
            "UPDATE oncommit_jobs SET state = 'cancelled', finished_at = ",
            sqlite_now_ms!(),
            ", errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors \
                                         ELSE '[]' END, \
                 '$[#]', json_object('attempt', attempt, 'at', ",
            sqlite_now_ms!(),
            ", 'error', (SELECT 'parent job ' || p.id || ' ' || p.state FROM oncommit_job_dependencies d \
                         JOIN oncommit_jobs p ON p.id = d.parent_id \
                         WHERE d.job_id = oncommit_jobs.id AND p.state IN ('failed', 'cancelled') \
                         ORDER BY p.id LIMIT 1))) \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'pending' \
               AND coalesce(on_parent_failure, 'cancel') = 'cancel' \
               AND EXISTS (SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id \
                           WHERE d.job_id = oncommit_jobs.id AND p.state IN ('failed', 'cancelled'))"
        ))
        .bind(&ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
        let ready = sqlx::query(concat!(
            "UPDATE oncommit_jobs SET state = CASE WHEN run_at > ",
            sqlite_now_ms!(),
            " THEN 'scheduled' ELSE 'available' END \
             WHERE id IN (SELECT value FROM json_each($1)) AND state = 'pending' AND concurrency_key IS NULL \
               AND NOT EXISTS ( \
                 SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id \
                 WHERE d.job_id = oncommit_jobs.id AND p.state <> 'completed' \
                   AND NOT (oncommit_jobs.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')))"
        ))
        .bind(&ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
        Ok(cancelled + ready)
    }
}
