//! SQLite's statements on jobs unique by content (`EnqueueOptions::unique`).

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{Jobs, NewJob, UniqueJobs};
use crate::error::Result;
use crate::unique::Identity;

impl UniqueJobs for SqliteDriver {
    async fn job_insert_unique(
        c: &mut SqliteConnection,
        job: &NewJob,
        id: &Identity,
    ) -> Result<Option<(i64, String, String)>> {
        let inserted: Option<i64> = bind_new_job!(
            sqlx::query_scalar(concat!(
                "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                 unique_hash, unique_states, fair_key, fair_weight) \
             VALUES ($1, $2, $3, $4, coalesce($5, ",
                sqlite_now_ms!(),
                "), $6, CASE WHEN $5 > ",
                sqlite_now_ms!(),
                " THEN 'scheduled' ELSE 'available' END, $7, $8, $9, $10, $11) \
             ON CONFLICT (unique_hash) WHERE ",
                unique_held!(),
                " DO NOTHING RETURNING id"
            )),
            job
        )
        .bind(&job.trace_context)
        .bind(&id.hash)
        .bind(id.states)
        .bind(&job.fair_key)
        .bind(job.fair_weight)
        .fetch_optional(&mut *c)
        .await?;
        let Some(new) = inserted else { return Ok(None) };
        let (queue, state) = SqliteDriver::job_queue_and_state(&mut *c, new).await?;
        Ok(Some((new, queue, state)))
    }

    async fn job_unique_holder(c: &mut SqliteConnection, hash: &str) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as(concat!("SELECT id, state FROM oncommit_jobs WHERE unique_hash = $1 AND ", unique_held!()))
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?)
    }

    async fn job_unique_replace(
        c: &mut SqliteConnection,
        holder: i64,
        job: &NewJob,
    ) -> Result<Option<(String, String)>> {
        Ok(sqlx::query_as(concat!(
            "UPDATE oncommit_jobs SET args = $2, run_at = coalesce($3, ",
            sqlite_now_ms!(),
            "), state = CASE WHEN $3 > ",
            sqlite_now_ms!(),
            " THEN 'scheduled' ELSE 'available' END, priority = coalesce($4, priority), \
         trace_context = coalesce($5, trace_context) \
         WHERE id = $1 AND state IN ('scheduled', 'available') RETURNING queue, state"
        ))
        .bind(holder)
        .bind(&job.args)
        .bind(job.run_at_ms)
        .bind(job.priority)
        .bind(&job.trace_context)
        .fetch_optional(&mut *c)
        .await?)
    }
}
