//! PostgreSQL's statements on dependencies: parents locked `FOR SHARE`, a concurrency key's
//! turn an advisory lock its finishers take too, arrays as `int8[]`.

use sqlx::postgres::PgConnection;

use super::{PostgresDriver, notify_on};
use crate::driver::JOBS_CHANNEL;
use crate::driver::contract::{Dependencies, Link, NewJob};
use crate::error::Result;
use crate::job_row::JobRow;

/// `[parents, dependants]` of job `$1` (see `Dependencies::job_linked`).
const LINKED: [&str; 2] = linked!("oncommit.all_jobs", "oncommit.job_dependencies", pg_job_columns!());

impl Dependencies for PostgresDriver {
    async fn job_parents_lock(c: &mut PgConnection, ids: &[i64]) -> Result<Vec<(i64, String)>> {
        // Only the first dependant writes the parent row; every one locks it.
        sqlx::query("UPDATE oncommit.jobs SET has_dependants = true WHERE id = ANY($1) AND NOT has_dependants")
            .bind(ids)
            .execute(&mut *c)
            .await?;
        let mut parents: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, state FROM oncommit.jobs WHERE id = ANY($1) ORDER BY id FOR SHARE")
                .bind(ids)
                .fetch_all(&mut *c)
                .await?;
        // Parents that finished and moved to the history: read after the jobs table, so one
        // that moved meanwhile is found there (each statement sees what has committed).
        let missing: Vec<i64> = ids.iter().copied().filter(|id| !parents.iter().any(|(p, _)| p == id)).collect();
        if !missing.is_empty() {
            parents.extend(
                sqlx::query_as::<_, (i64, String)>(
                    "SELECT id, state FROM oncommit.job_history WHERE id = ANY($1) ORDER BY id FOR SHARE",
                )
                .bind(&missing)
                .fetch_all(&mut *c)
                .await?,
            );
            parents.sort_unstable_by_key(|(id, _)| *id);
        }
        Ok(parents)
    }

    async fn concurrency_key_lock_count(c: &mut PgConnection, key: &str) -> Result<(i64, i64)> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('oncommit.concurrency_key:' || $1, 0))")
            .bind(key)
            .execute(&mut *c)
            .await?;
        Ok(sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state <> 'pending'), count(*) FILTER (WHERE state = 'pending') \
             FROM oncommit.jobs WHERE concurrency_key = $1 \
               AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable')",
        )
        .bind(key)
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_insert_dependent(
        c: &mut PgConnection,
        job: &NewJob,
        state: &str,
        errors: Option<&str>,
    ) -> Result<(i64, String, String)> {
        let row: (i64, String, String) = bind_new_job!(
            sqlx::query_as(
                "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                 workflow_id, on_parent_failure, finished_at, errors, concurrency_key, key_limit, fair_key, fair_weight) \
             VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
                 CASE $7 WHEN 'ready' THEN CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' \
                                               ELSE 'available' END \
                         ELSE $7 END, \
                 $8, $9, $10, CASE WHEN $7 = 'cancelled' THEN now() END, coalesce($11::jsonb, '[]'::jsonb), $12, $13, \
                 $14, $15) \
             RETURNING id, queue, state",
            ),
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
        // (Nothing for a first step: unnest of an empty array.)
        sqlx::query("INSERT INTO oncommit.job_dependencies (job_id, parent_id) SELECT $1, unnest($2::int8[])")
            .bind(row.0)
            .bind(&job.depends_on)
            .execute(&mut *c)
            .await?;
        Ok(row)
    }

    async fn job_linked(c: &mut PgConnection, id: i64, link: Link) -> Result<Vec<JobRow>> {
        let sql = LINKED[usize::from(link == Link::Dependants)];
        Ok(sqlx::query_as(sql).bind(id).fetch_all(&mut *c).await?)
    }

    async fn workflow_jobs(c: &mut PgConnection, id: &str) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(concat!(
            "SELECT ",
            pg_job_columns!(),
            " FROM oncommit.all_jobs WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn workflow_edges(c: &mut PgConnection, id: &str) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT d.job_id, d.parent_id FROM oncommit.job_dependencies d \
             WHERE d.job_id IN (SELECT id FROM oncommit.all_jobs WHERE workflow_id = $1) ORDER BY d.job_id, d.parent_id",
        )
        .bind(id)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_pending_after(c: &mut PgConnection, after: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM oncommit.jobs WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn job_settle_pending(c: &mut PgConnection, ids: &[i64]) -> Result<u64> {
        let cancelled = sqlx::query(
            "UPDATE oncommit.jobs c SET state = 'cancelled', finished_at = now(), \
                 errors = CASE WHEN jsonb_typeof(c.errors) = 'array' THEN c.errors ELSE '[]'::jsonb END \
                     || jsonb_build_array(jsonb_build_object('attempt', c.attempt, \
                            'at', (extract(epoch FROM now()) * 1000)::int8, 'error', f.why)) \
             FROM (SELECT d.job_id, min(format('parent job %s %s', p.id, p.state)) AS why \
                   FROM oncommit.job_dependencies d JOIN oncommit.all_jobs p ON p.id = d.parent_id \
                   WHERE d.job_id = ANY($1) AND p.state IN ('failed', 'cancelled') GROUP BY d.job_id) AS f \
             WHERE c.id = f.job_id AND c.state = 'pending' AND coalesce(c.on_parent_failure, 'cancel') = 'cancel'",
        )
        .bind(ids)
        .execute(&mut *c)
        .await?
        .rows_affected();
        let ready: Vec<String> = sqlx::query_scalar(
            "UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END \
             WHERE c.id = ANY($1) AND c.state = 'pending' AND c.concurrency_key IS NULL AND NOT EXISTS ( \
                 SELECT 1 FROM oncommit.job_dependencies d JOIN oncommit.all_jobs p ON p.id = d.parent_id \
                 WHERE d.job_id = c.id AND p.state <> 'completed' \
                   AND NOT (c.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled'))) \
             RETURNING c.queue",
        )
        .bind(ids)
        .fetch_all(&mut *c)
        .await?;
        notify_on(&mut *c, JOBS_CHANNEL, &ready).await?;
        Ok(cancelled + ready.len() as u64)
    }
}
