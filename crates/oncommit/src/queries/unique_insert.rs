//! Inserting a job that is unique by content (`EnqueueOptions::unique`): the insert, the
//! look-up of the job holding its identity, and the replacement of a job that has not
//! started, tried again while the holder changes under us.

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::NewJob;
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::JobId;
use crate::unique::Identity;

/// Whether a row holds its identity now: it has a hash, and its state is among its held
/// states. Word for word the predicate of the `jobs_unique_hash` index (migrations 011/008),
/// so the `ON CONFLICT` below is inferred to be that index.
macro_rules! unique_held {
    () => {
        "unique_hash IS NOT NULL AND ((unique_states >> (CASE state WHEN 'scheduled' THEN 0 WHEN 'available' THEN 1 \
         WHEN 'running' THEN 2 WHEN 'retryable' THEN 3 WHEN 'completed' THEN 4 WHEN 'failed' THEN 5 \
         WHEN 'cancelled' THEN 6 WHEN 'pending' THEN 7 ELSE 31 END)) & 1) = 1"
    };
}

/// How often the insert is tried again when the job holding the identity finished, or
/// started, between our insert and our look-up.
const TRIES: usize = 10;

/// Inserts `job`, unless a job holding its identity exists: then returns that job's id
/// (after updating it, in replace mode, if it has not started). Returns the queue to wake
/// when the job (new or updated) is available now. Callers box this future: it is large,
/// and every enqueue's future would otherwise carry its size.
pub(crate) async fn job_insert_unique(
    mut conn: Conn<'_>,
    job: &NewJob,
    id: &Identity,
) -> Result<(JobId, Option<String>)> {
    for _ in 0..TRIES {
        if let Some((new, queue, state)) = try_insert(conn.reborrow(), job, id).await? {
            return Ok((JobId(new), (state == "available").then_some(queue)));
        }
        let Some((holder, state)) = holder(conn.reborrow(), &id.hash).await? else { continue };
        if !(id.replace && (state == "scheduled" || state == "available")) {
            return Ok((JobId(holder), None));
        }
        if let Some((queue, state)) = replace(conn.reborrow(), holder, job).await? {
            return Ok((JobId(holder), (state == "available").then_some(queue)));
        }
        // It started meanwhile: try again (a new job, unless its state holds the identity).
    }
    Err(Error::app(format!("the unique job {} kept changing hands", id.hash)))
}

async fn try_insert(conn: Conn<'_>, job: &NewJob, id: &Identity) -> Result<Option<(i64, String, String)>> {
    Ok(match conn {
        Conn::Postgres(c) => bind_new_job!(
            sqlx::query_as(concat!(
                "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                     unique_hash, unique_states) \
                 VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
                     CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, $7, $8, $9) \
                 ON CONFLICT (unique_hash) WHERE ",
                unique_held!(),
                " DO NOTHING RETURNING id, queue, state"
            )),
            job
        )
        .bind(&job.trace_context)
        .bind(&id.hash)
        .bind(id.states)
        .fetch_optional(&mut *c)
        .await?,
        Conn::Sqlite(c) => insert_sqlite(c, job, id).await?,
    })
}

async fn insert_sqlite(c: &mut SqliteConnection, job: &NewJob, id: &Identity) -> Result<Option<(i64, String, String)>> {
    let inserted: Option<i64> = bind_new_job!(
        sqlx::query_scalar(concat!(
            "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
             unique_hash, unique_states) \
         VALUES ($1, $2, $3, $4, coalesce($5, ",
            sqlite_now_ms!(),
            "), $6, CASE WHEN $5 > ",
            sqlite_now_ms!(),
            " THEN 'scheduled' ELSE 'available' END, $7, $8, $9) \
         ON CONFLICT (unique_hash) WHERE ",
            unique_held!(),
            " DO NOTHING RETURNING id"
        )),
        job
    )
    .bind(&job.trace_context)
    .bind(&id.hash)
    .bind(id.states)
    .fetch_optional(&mut *c)
    .await?;
    let Some(new) = inserted else { return Ok(None) };
    let (queue, state) = <crate::driver::SqliteDriver as crate::driver::contract::Jobs>::job_queue_and_state(&mut *c, new).await?;
    Ok(Some((new, queue, state)))
}

/// The job holding `hash` now, with its state.
async fn holder(conn: Conn<'_>, hash: &str) -> Result<Option<(i64, String)>> {
    Ok(match conn {
        Conn::Postgres(c) => {
            sqlx::query_as(concat!("SELECT id, state FROM oncommit.jobs WHERE unique_hash = $1 AND ", unique_held!()))
                .bind(hash)
                .fetch_optional(&mut *c)
                .await?
        }
        Conn::Sqlite(c) => {
            sqlx::query_as(concat!("SELECT id, state FROM oncommit_jobs WHERE unique_hash = $1 AND ", unique_held!()))
                .bind(hash)
                .fetch_optional(&mut *c)
                .await?
        }
    })
}

/// Gives the waiting job `holder` the new job's arguments, run time and priority, if it has
/// still not started; returns its queue and new state.
async fn replace(conn: Conn<'_>, holder: i64, job: &NewJob) -> Result<Option<(String, String)>> {
    Ok(match conn {
        Conn::Postgres(c) => replace_postgres(c, holder, job).await?,
        Conn::Sqlite(c) => {
            sqlx::query_as(concat!(
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
            .await?
        }
    })
}

async fn replace_postgres(c: &mut PgConnection, holder: i64, job: &NewJob) -> Result<Option<(String, String)>> {
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
