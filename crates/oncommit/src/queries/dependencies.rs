//! Jobs that depend on others: the insert of a dependant, reading a job's parents and a
//! workflow's jobs, and the leader's sweep of pending jobs. The settling itself (pending →
//! available, or cancelled after a failed parent) is done by a trigger on the jobs table,
//! in the transaction that finishes the parent (migrations 012 / 009).

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Acquire, Connection};

use super::NewJob;
use crate::conn::Conn;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobState};
use crate::job_row::JobRow;

/// A job another depends on, as its dependant sees it ([`TaskContext::parents`](crate::TaskContext::parents)).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Parent {
    /// The parent's id.
    pub id: JobId,
    /// Its task.
    pub task: String,
    /// Its state (`completed`, unless the dependant runs after failed parents).
    pub state: JobState,
    /// What its task stored with it, if anything.
    pub result: Option<serde_json::Value>,
}

/// How a dependant starts, from its parents' states when it is enqueued.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    /// Every parent is settled: `available` (or `scheduled`) at once.
    Ready,
    /// Some parent has not finished.
    Pending,
    /// A parent failed or was cancelled, and the dependant does not run anyway.
    Cancelled(String),
}

impl Start {
    /// A ready job of a concurrency key with `holders` jobs holding its slots and `waiting`
    /// ones pending: admitted only into a free slot, and behind those waiting (enqueue
    /// order); else pending until a holder finishes.
    fn admitted(self, holders: i64, waiting: i64, limit: i32) -> Start {
        match self {
            Start::Ready if waiting > 0 || holders >= i64::from(limit) => Start::Pending,
            other => other,
        }
    }

    /// The state to insert (`ready` for available-or-scheduled by the run time), and the
    /// error history.
    fn columns(&self) -> (&'static str, Option<String>) {
        match self {
            Start::Ready => ("ready", None),
            Start::Pending => ("pending", None),
            Start::Cancelled(why) => {
                let at = chrono::Utc::now().timestamp_millis();
                ("cancelled", Some(serde_json::json!([{ "attempt": 0, "at": at, "error": why }]).to_string()))
            }
        }
    }
}

/// How a job whose parents are `parents` (id, state) starts; refuses parents that do not
/// exist.
fn start(depends_on: &[i64], parents: &[(i64, String)], run_anyway: bool) -> Result<Start> {
    if let Some(missing) = depends_on.iter().find(|id| !parents.iter().any(|(p, _)| p == *id)) {
        return Err(Error::InvalidOption {
            option: "depends_on",
            reason: format!("no job {missing}: a job can depend only on jobs that exist"),
        });
    }
    let gave_up = |state: &str| state == "failed" || state == "cancelled";
    if !run_anyway {
        if let Some((id, state)) = parents.iter().find(|(_, state)| gave_up(state)) {
            return Ok(Start::Cancelled(format!("parent job {id} {state}")));
        }
    }
    let settled = parents.iter().all(|(_, state)| state == "completed" || (run_anyway && gave_up(state)));
    Ok(if settled { Start::Ready } else { Start::Pending })
}

/// Inserts a job that depends on others, in a savepoint of the caller's transaction (or a
/// transaction of its own in autocommit): its parents' rows are locked while it looks at
/// their states, so a parent cannot finish unseen between that look and the commit; the
/// parent's finish then waits for this transaction and settles the new dependant itself.
/// Returns its id, and its queue when it is available at once.
pub(crate) async fn job_insert_dependent(conn: Conn<'_>, job: &NewJob) -> Result<(JobId, Option<String>)> {
    let (id, queue, state) = match conn {
        Conn::Postgres(c) => {
            let mut tx = Connection::begin(c).await?;
            let inserted = insert_postgres(tx.acquire().await?, job).await?;
            tx.commit().await?;
            inserted
        }
        Conn::Sqlite(c) => {
            let mut tx = Connection::begin(c).await?;
            let inserted = insert_sqlite(tx.acquire().await?, job).await?;
            tx.commit().await?;
            inserted
        }
    };
    Ok((JobId(id), (state == "available").then_some(queue)))
}

async fn insert_postgres(c: &mut PgConnection, job: &NewJob) -> Result<(i64, String, String)> {
    let mut parents: Vec<(i64, String)> = Vec::new();
    if !job.depends_on.is_empty() {
        // Only the first dependant writes the parent row; every one locks it.
        sqlx::query("UPDATE oncommit.jobs SET has_dependants = true WHERE id = ANY($1) AND NOT has_dependants")
            .bind(&job.depends_on)
            .execute(&mut *c)
            .await?;
        parents = sqlx::query_as("SELECT id, state FROM oncommit.jobs WHERE id = ANY($1) ORDER BY id FOR SHARE")
            .bind(&job.depends_on)
            .fetch_all(&mut *c)
            .await?;
    }
    let mut start = start(&job.depends_on, &parents, job.on_parent_failure == Some("run"))?;
    if let Some(key) = &job.concurrency_key {
        // The key's turn: its finishers take the same lock, so a slot freed now is seen by
        // the count below, and one freed after our commit admits this job itself.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('oncommit.concurrency_key:' || $1, 0))")
            .bind(key)
            .execute(&mut *c)
            .await?;
        let (holders, waiting): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state <> 'pending'), count(*) FILTER (WHERE state = 'pending') \
             FROM oncommit.jobs WHERE concurrency_key = $1 \
               AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable')",
        )
        .bind(key)
        .fetch_one(&mut *c)
        .await?;
        start = start.admitted(holders, waiting, job.key_limit);
    }
    let (state, errors) = start.columns();
    let row: (i64, String, String) = bind_new_job!(sqlx::query_as(
        "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
             workflow_id, on_parent_failure, finished_at, errors, concurrency_key, key_limit) \
         VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
             CASE $7 WHEN 'ready' THEN CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END \
                     ELSE $7 END, \
             $8, $9, $10, CASE WHEN $7 = 'cancelled' THEN now() END, coalesce($11::jsonb, '[]'::jsonb), $12, $13) \
         RETURNING id, queue, state",
    ), job)
    .bind(state)
    .bind(&job.trace_context)
    .bind(&job.workflow_id)
    .bind(job.on_parent_failure)
    .bind(errors)
    .bind(&job.concurrency_key)
    .bind(job.concurrency_key.as_ref().map(|_| job.key_limit))
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

async fn insert_sqlite(c: &mut SqliteConnection, job: &NewJob) -> Result<(i64, String, String)> {
    let parents_json = serde_json::to_string(&job.depends_on).map_err(Error::app)?;
    let mut parents: Vec<(i64, String)> = Vec::new();
    if !job.depends_on.is_empty() {
        // One writer at a time: the write lock, taken by this first statement, is the guard.
        sqlx::query(
            "UPDATE oncommit_jobs SET has_dependants = 1 WHERE id IN (SELECT value FROM json_each($1)) AND NOT has_dependants",
        )
        .bind(&parents_json)
        .execute(&mut *c)
        .await?;
        parents = sqlx::query_as(
            "SELECT id, state FROM oncommit_jobs WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
        )
        .bind(&parents_json)
        .fetch_all(&mut *c)
        .await?;
    }
    let mut start = start(&job.depends_on, &parents, job.on_parent_failure == Some("run"))?;
    if let Some(key) = &job.concurrency_key {
        let (holders, waiting): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state <> 'pending'), count(*) FILTER (WHERE state = 'pending') \
             FROM oncommit_jobs WHERE concurrency_key = $1 \
               AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable')",
        )
        .bind(key)
        .fetch_one(&mut *c)
        .await?;
        start = start.admitted(holders, waiting, job.key_limit);
    }
    let (state, errors) = start.columns();
    let id: i64 = bind_new_job!(
        sqlx::query_scalar(concat!(
            "INSERT INTO oncommit_jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
             workflow_id, on_parent_failure, finished_at, errors, concurrency_key, key_limit) \
         VALUES ($1, $2, $3, $4, coalesce($5, ",
            sqlite_now_ms!(),
            "), $6, CASE $7 WHEN 'ready' THEN CASE WHEN $5 > ",
            sqlite_now_ms!(),
            " THEN 'scheduled' ELSE 'available' END ELSE $7 END, $8, $9, $10, CASE WHEN $7 = 'cancelled' THEN ",
            sqlite_now_ms!(),
            " END, coalesce($11, '[]'), $12, $13) RETURNING id"
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
    .fetch_one(&mut *c)
    .await?;
    sqlx::query("INSERT INTO oncommit_job_dependencies (job_id, parent_id) SELECT $1, value FROM json_each($2)")
        .bind(id)
        .bind(&parents_json)
        .execute(&mut *c)
        .await?;
    let (queue, state) =
        <crate::driver::SqliteDriver as crate::driver::contract::Jobs>::job_queue_and_state(&mut *c, id).await?;
    Ok((id, queue, state))
}

/// The jobs `id` depends on that still exist, with their states and results.
pub(crate) async fn job_parents(db: &Db, id: JobId) -> Result<Vec<Parent>> {
    Ok(job_linked(db, id, Link::Parents)
        .await?
        .into_iter()
        .map(|job| Parent { id: job.id, task: job.task, state: job.state, result: job.result })
        .collect())
}

/// Which side of a job's dependencies [`job_linked`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The jobs it waits for.
    Parents,
    /// The jobs that wait for it.
    Dependants,
}

/// The jobs on one side of job `id`'s dependencies, in id order: the edges' primary key
/// serves parents, their `parent_id` index dependants.
pub(crate) async fn job_linked(db: &Db, id: JobId, link: Link) -> Result<Vec<Job>> {
    macro_rules! linked {
        ($jobs:literal, $edges:literal, $columns:expr) => {
            [
                concat!(
                    "SELECT ",
                    $columns,
                    " FROM ",
                    $jobs,
                    " WHERE id IN (SELECT parent_id FROM ",
                    $edges,
                    " WHERE job_id = $1) ORDER BY id"
                ),
                concat!(
                    "SELECT ",
                    $columns,
                    " FROM ",
                    $jobs,
                    " WHERE id IN (SELECT job_id FROM ",
                    $edges,
                    " WHERE parent_id = $1) ORDER BY id"
                ),
            ]
        };
    }
    let side = usize::from(link == Link::Dependants);
    let rows: Vec<JobRow> = on_conn!(
        db,
        "reading a job's dependencies",
        |c| sqlx::query_as(linked!("oncommit.jobs", "oncommit.job_dependencies", pg_job_columns!())[side])
            .bind(id.0)
            .fetch_all(&mut **c),
        sqlx::query_as(linked!("oncommit_jobs", "oncommit_job_dependencies", sqlite_job_columns!())[side])
            .bind(id.0)
            .fetch_all(&mut **c),
    )?;
    Ok(rows.into_iter().map(|r| r.job).collect())
}

/// The jobs of workflow `id`, in id order, each with the ids of its parents.
pub(crate) async fn workflow_jobs(db: &Db, id: &str) -> Result<Vec<(Job, Vec<JobId>)>> {
    let rows: Vec<JobRow> = on_conn!(
        db,
        "reading a workflow",
        |c| sqlx::query_as(concat!(
            "SELECT ",
            pg_job_columns!(),
            " FROM oncommit.jobs WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&mut **c),
        sqlx::query_as(concat!(
            "SELECT ",
            sqlite_job_columns!(),
            " FROM oncommit_jobs WHERE workflow_id = $1 ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&mut **c),
    )?;
    let edges: Vec<(i64, i64)> = on_conn!(
        db,
        "reading a workflow",
        |c| sqlx::query_as(
            "SELECT d.job_id, d.parent_id FROM oncommit.job_dependencies d \
             WHERE d.job_id IN (SELECT id FROM oncommit.jobs WHERE workflow_id = $1) ORDER BY d.job_id, d.parent_id"
        )
        .bind(id)
        .fetch_all(&mut **c),
        sqlx::query_as(
            "SELECT d.job_id, d.parent_id FROM oncommit_job_dependencies d \
             WHERE d.job_id IN (SELECT id FROM oncommit_jobs WHERE workflow_id = $1) ORDER BY d.job_id, d.parent_id"
        )
        .bind(id)
        .fetch_all(&mut **c),
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let parents = edges.iter().filter(|(job, _)| *job == r.job.id.0).map(|(_, p)| JobId(*p)).collect();
            (r.job, parents)
        })
        .collect())
}

/// Settles pending jobs whose parents have all finished but that are still pending (not
/// those waiting for a concurrency key's slot: a finishing holder admits them): what the
/// trigger does at each parent's finish, for a database where it could not (a SQLite
/// pool without `recursive_triggers`, a cascade cut short). Walks every pending job once,
/// in batches by id. Returns how many it settled.
pub(crate) async fn job_sweep_pending(db: &Db) -> Result<u64> {
    let mut settled = 0;
    let mut after = 0_i64;
    loop {
        let _turn = db.writing().await?;
        let (last, done): (Option<i64>, u64) =
            on_conn!(db, "settling pending jobs", |c| sweep_postgres(c, after), sweep_sqlite(c, after))?;
        settled += done;
        match last {
            Some(last) => after = last,
            None => return Ok(settled),
        }
    }
}

/// Pending jobs looked at per statement by the sweep.
const SWEEP_BATCH: i64 = 1000;

async fn sweep_postgres(c: &mut PgConnection, after: i64) -> Result<(Option<i64>, u64)> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM oncommit.jobs WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(SWEEP_BATCH)
            .fetch_all(&mut *c)
            .await?;
    if ids.is_empty() {
        return Ok((None, 0));
    }
    let cancelled = sqlx::query(
        "UPDATE oncommit.jobs c SET state = 'cancelled', finished_at = now(), \
             errors = CASE WHEN jsonb_typeof(c.errors) = 'array' THEN c.errors ELSE '[]'::jsonb END \
                 || jsonb_build_array(jsonb_build_object('attempt', c.attempt, \
                        'at', (extract(epoch FROM now()) * 1000)::int8, 'error', f.why)) \
         FROM (SELECT d.job_id, min(format('parent job %s %s', p.id, p.state)) AS why \
               FROM oncommit.job_dependencies d JOIN oncommit.jobs p ON p.id = d.parent_id \
               WHERE d.job_id = ANY($1) AND p.state IN ('failed', 'cancelled') GROUP BY d.job_id) AS f \
         WHERE c.id = f.job_id AND c.state = 'pending' AND coalesce(c.on_parent_failure, 'cancel') = 'cancel'",
    )
    .bind(&ids)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let ready: Vec<String> = sqlx::query_scalar(
        "UPDATE oncommit.jobs c SET state = CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END \
         WHERE c.id = ANY($1) AND c.state = 'pending' AND c.concurrency_key IS NULL AND NOT EXISTS ( \
             SELECT 1 FROM oncommit.job_dependencies d JOIN oncommit.jobs p ON p.id = d.parent_id \
             WHERE d.job_id = c.id AND p.state <> 'completed' \
               AND NOT (c.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled'))) \
         RETURNING c.queue",
    )
    .bind(&ids)
    .fetch_all(&mut *c)
    .await?;
    crate::driver::postgres::notify_on(&mut *c, super::JOBS_CHANNEL, &ready).await?;
    Ok((ids.last().copied(), cancelled + ready.len() as u64))
}

async fn sweep_sqlite(c: &mut SqliteConnection, after: i64) -> Result<(Option<i64>, u64)> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM oncommit_jobs WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(SWEEP_BATCH)
            .fetch_all(&mut *c)
            .await?;
    let Some(&last) = ids.last() else { return Ok((None, 0)) };
    let ids_json = serde_json::to_string(&ids).map_err(Error::app)?;
    let cancelled = sqlx::query(concat!(
        "UPDATE oncommit_jobs SET state = 'cancelled', finished_at = ",
        sqlite_now_ms!(),
        ", errors = json_insert(CASE WHEN json_valid(errors) AND json_type(errors) = 'array' THEN errors ELSE '[]' END, \
             '$[#]', json_object('attempt', attempt, 'at', ",
        sqlite_now_ms!(),
        ", 'error', (SELECT 'parent job ' || p.id || ' ' || p.state FROM oncommit_job_dependencies d \
                     JOIN oncommit_jobs p ON p.id = d.parent_id \
                     WHERE d.job_id = oncommit_jobs.id AND p.state IN ('failed', 'cancelled') ORDER BY p.id LIMIT 1))) \
         WHERE id IN (SELECT value FROM json_each($1)) AND state = 'pending' \
           AND coalesce(on_parent_failure, 'cancel') = 'cancel' \
           AND EXISTS (SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id \
                       WHERE d.job_id = oncommit_jobs.id AND p.state IN ('failed', 'cancelled'))"
    ))
    .bind(&ids_json)
    .execute(&mut *c)
    .await?
    .rows_affected();
    let ready = sqlx::query(concat!(
        "UPDATE oncommit_jobs SET state = CASE WHEN run_at > ",
        sqlite_now_ms!(),
        " THEN 'scheduled' ELSE 'available' END \
         WHERE id IN (SELECT value FROM json_each($1)) AND state = 'pending' AND concurrency_key IS NULL AND NOT EXISTS ( \
             SELECT 1 FROM oncommit_job_dependencies d JOIN oncommit_jobs p ON p.id = d.parent_id \
             WHERE d.job_id = oncommit_jobs.id AND p.state <> 'completed' \
               AND NOT (oncommit_jobs.on_parent_failure = 'run' AND p.state IN ('failed', 'cancelled')))"
    ))
    .bind(&ids_json)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok((Some(last), cancelled + ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parents(states: &[&str]) -> Vec<(i64, String)> {
        states.iter().enumerate().map(|(i, s)| (i as i64 + 1, (*s).to_owned())).collect()
    }

    #[test]
    fn a_dependant_starts_by_its_parents_states() {
        let ids = [1, 2];
        let start = |states: &[&str], anyway| start(&ids, &parents(states), anyway).map_err(|e| e.to_string());
        assert_eq!(start(&["completed", "completed"], false), Ok(Start::Ready));
        assert_eq!(start(&["completed", "running"], false), Ok(Start::Pending));
        assert_eq!(start(&["running", "failed"], false), Ok(Start::Cancelled("parent job 2 failed".into())));
        assert_eq!(start(&["running", "failed"], true), Ok(Start::Pending));
        assert_eq!(start(&["completed", "cancelled"], true), Ok(Start::Ready));
        let missing = super::start(&[1, 9], &parents(&["completed"]), false).map(|_| ()).map_err(|e| e.to_string());
        let missing = missing.expect_err("a missing parent is refused");
        assert!(missing.contains("no job 9"), "{missing}");
    }
}
