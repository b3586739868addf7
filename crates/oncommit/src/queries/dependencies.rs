//! Jobs that depend on others: the insert of a dependant, reading a job's parents and a
//! workflow's jobs, and the leader's sweep of pending jobs. The settling itself (pending →
//! available, or cancelled after a failed parent) is done by a trigger on the jobs table,
//! in the transaction that finishes the parent (migrations 012 / 009). The statements are
//! the driver's (`driver::contract::Dependencies`).

use super::NewJob;
use crate::conn::Conn;
use crate::db::Db;
use crate::driver::DriverTx;
use crate::driver::contract::Link;
use crate::error::{Error, Result};
use crate::job::{Job, JobId, JobState};

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
    let mut tx = DriverTx::begin(conn).await?;
    let (id, queue, state) = insert_dependent(tx.conn(), job).await?;
    tx.commit().await?;
    Ok((JobId(id), (state == "available").then_some(queue)))
}

async fn insert_dependent(mut conn: Conn<'_>, job: &NewJob) -> Result<(i64, String, String)> {
    let mut parents: Vec<(i64, String)> = Vec::new();
    if !job.depends_on.is_empty() {
        parents = on_driver!(conn.reborrow(), job_parents_lock(&job.depends_on))?;
    }
    let mut start = start(&job.depends_on, &parents, job.on_parent_failure == Some("run"))?;
    if let Some(key) = &job.concurrency_key {
        let (holders, waiting) = on_driver!(conn.reborrow(), concurrency_key_lock_count(key))?;
        start = start.admitted(holders, waiting, job.key_limit);
    }
    let (state, errors) = start.columns();
    on_driver!(conn, job_insert_dependent(job, state, errors.as_deref()))
}

/// The jobs `id` depends on that still exist, with their states and results.
pub(crate) async fn job_parents(db: &Db, id: JobId) -> Result<Vec<Parent>> {
    Ok(job_linked(db, id, Link::Parents)
        .await?
        .into_iter()
        .map(|job| Parent { id: job.id, task: job.task, state: job.state, result: job.result })
        .collect())
}

/// The jobs on one side of job `id`'s dependencies, in id order.
pub(crate) async fn job_linked(db: &Db, id: JobId, link: Link) -> Result<Vec<Job>> {
    let rows = statement!(db, "reading a job's dependencies", job_linked(id.0, link))?;
    Ok(rows.into_iter().map(|r| r.job).collect())
}

/// The jobs of workflow `id`, in id order, each with the ids of its parents.
pub(crate) async fn workflow_jobs(db: &Db, id: &str) -> Result<Vec<(Job, Vec<JobId>)>> {
    let rows = statement!(db, "reading a workflow", workflow_jobs(id))?;
    let edges = statement!(db, "reading a workflow", workflow_edges(id))?;
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
        let ids = statement!(db, "reading pending jobs", job_pending_after(after, SWEEP_BATCH))?;
        let Some(&last) = ids.last() else { return Ok(settled) };
        settled += statement!(db, write "settling pending jobs", job_settle_pending(&ids))?;
        after = last;
    }
}

/// Pending jobs looked at per statement by the sweep.
const SWEEP_BATCH: i64 = 1000;

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
