//! The statements of actions on every job a filter selects (retry, cancel, delete). The
//! walk in batches by id is written once, above the driver (`queries::bulk`).

use super::Driver;
use crate::driver::selection::Filter;
use crate::error::Result;

/// The statements of bulk actions.
pub(crate) trait SelectedJobs: Driver {
    /// How many jobs the filter selects now.
    async fn job_count_selected(c: &mut Self::Conn, filter: &Filter) -> Result<i64>;

    /// The ids of up to `limit` jobs the filter selects after `after`, in id order.
    async fn job_select_ids(c: &mut Self::Conn, filter: &Filter, after: i64, limit: i64) -> Result<Vec<i64>>;

    /// Applies `action` to the jobs `ids`, each checked against the filter again as it is
    /// changed (a job that moved on meanwhile, say claimed by a worker, is left alone).
    /// Returns a row per job changed: its queue (its id, for a cancel) and its state after.
    async fn job_act_on(
        c: &mut Self::Conn,
        filter: &Filter,
        action: Action,
        ids: &[i64],
    ) -> Result<Vec<(String, String)>>;

    /// Wakes the workers of `queues` and asks the workers running the jobs `stop` (ids) to
    /// stop them, at commit: PostgreSQL's NOTIFY. SQLite has none: its workers see a
    /// cancellation at their next heartbeat, and the caller wakes this process's workers.
    async fn jobs_notify(c: &mut Self::Conn, queues: &[String], stop: &[String]) -> Result<()>;
}

/// What a bulk action does to each selected job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Available now, with one more attempt if none is left (not a running job).
    Retry,
    /// Cancelled if waiting; asked to stop if running.
    Cancel,
    /// Deleted (not a running job).
    Delete,
}
