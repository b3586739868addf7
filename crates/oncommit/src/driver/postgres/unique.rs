//! PostgreSQL's statements on jobs unique by content (`EnqueueOptions::unique`).

use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use crate::driver::contract::{NewJob, UniqueJobs};
use crate::error::Result;
use crate::unique::Identity;

impl UniqueJobs for PostgresDriver {
    async fn job_insert_unique(
        c: &mut PgConnection,
        job: &NewJob,
        id: &Identity,
    ) -> Result<Option<(i64, String, String)>> {
        Ok(bind_new_job!(
            sqlx::query_as(concat!(
                "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                     unique_hash, unique_states, fair_key, fair_weight) \
                 VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
                     CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, $7, $8, $9, \
                     $10, $11) \
                 ON CONFLICT (unique_hash) WHERE ",
                unique_held!(),
                " DO NOTHING RETURNING id, queue, state"
            )),
            job
        )
        .bind(&job.trace_context)
        .bind(&id.hash)
        .bind(id.states)
        .bind(&job.fair_key)
        .bind(job.fair_weight)
        .fetch_optional(&mut *c)
        .await?)
    }

    async fn job_unique_holder(c: &mut PgConnection, hash: &str) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as(concat!("SELECT id, state FROM oncommit.jobs WHERE unique_hash = $1 AND ", unique_held!()))
            .bind(hash)
            .fetch_optional(&mut *c)
            .await?)
    }

    async fn job_unique_replace(c: &mut PgConnection, holder: i64, job: &NewJob) -> Result<Option<(String, String)>> {
        // A worker claiming it right now holds its row: the update waits for that claim, then
        // finds it running and changes nothing.
        Ok(sqlx::query_as(
            "UPDATE oncommit.jobs SET args = $2::jsonb, run_at = coalesce(to_timestamp($3 / 1000.0), now()), \
                 state = CASE WHEN to_timestamp($3 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, \
                 priority = coalesce($4, priority), trace_context = coalesce($5, trace_context) \
             WHERE id = $1 AND state IN ('scheduled', 'available') RETURNING queue, state",
        )
        .bind(holder)
        .bind(&job.args)
        .bind(job.run_at_ms)
        .bind(job.priority)
        .bind(&job.trace_context)
        .fetch_optional(&mut *c)
        .await?)
    }
}
