//! The statements on jobs that depend on others: the insert of a dependant, a job's
//! parents and dependants, a workflow's jobs, and the sweep of pending jobs. The choice of
//! how a dependant starts is written once, above the driver (`queries::dependencies`); the
//! settling at a parent's finish is a trigger on the jobs table (migrations 012 / 009).

use super::{Driver, NewJob};
use crate::error::Result;
use crate::job_row::JobRow;

/// The statements of job dependencies and workflows.
pub(crate) trait Dependencies: Driver {
    /// Marks the jobs `ids` as having dependants and returns `(id, state)` of those that
    /// exist, in id order, each locked against finishing until the transaction ends
    /// (PostgreSQL: `FOR SHARE`; SQLite: the write lock this first write takes), so a parent
    /// cannot finish unseen between this look and the dependant's commit.
    async fn job_parents_lock(c: &mut Self::Conn, ids: &[i64]) -> Result<Vec<(i64, String)>>;

    /// Takes the concurrency key's turn until the transaction ends (its finishers take the
    /// same one, so a slot freed now is seen by the count, and one freed after the commit
    /// admits the new job itself) and counts its unfinished jobs: `(holding a slot,
    /// pending)`.
    async fn concurrency_key_lock_count(c: &mut Self::Conn, key: &str) -> Result<(i64, i64)>;

    /// Inserts a dependant, a workflow step or a job with a concurrency key in `state`
    /// (`ready`: available or scheduled by its run time; `pending`; `cancelled`, with the
    /// error history `errors`), with its dependency edges. Returns its id, queue and state
    /// as the database's insert rules left them.
    async fn job_insert_dependent(
        c: &mut Self::Conn,
        job: &NewJob,
        state: &str,
        errors: Option<&str>,
    ) -> Result<(i64, String, String)>;

    /// The jobs on one side of job `id`'s dependencies, in id order: the edges' primary key
    /// serves parents, their `parent_id` index dependants.
    async fn job_linked(c: &mut Self::Conn, id: i64, link: Link) -> Result<Vec<JobRow>>;

    /// The jobs of workflow `id`, in id order.
    async fn workflow_jobs(c: &mut Self::Conn, id: &str) -> Result<Vec<JobRow>>;

    /// The dependency edges `(job, parent)` of workflow `id`'s jobs, in that order.
    async fn workflow_edges(c: &mut Self::Conn, id: &str) -> Result<Vec<(i64, i64)>>;

    /// The ids of up to `limit` pending jobs after `after`, in id order.
    async fn job_pending_after(c: &mut Self::Conn, after: i64, limit: i64) -> Result<Vec<i64>>;

    /// Settles those of the pending jobs `ids` whose parents have all finished (not those
    /// waiting for a concurrency key's slot: a finishing holder admits them), as the
    /// trigger does at a parent's finish: cancelled after a failed parent, else available
    /// (or scheduled); PostgreSQL wakes the queues that got work. Returns how many settled.
    async fn job_settle_pending(c: &mut Self::Conn, ids: &[i64]) -> Result<u64>;
}

/// Which side of a job's dependencies [`Dependencies::job_linked`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The jobs it waits for.
    Parents,
    /// The jobs that wait for it.
    Dependants,
}
