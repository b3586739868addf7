//! Looking at and steering what the workers do: the jobs, the queues, the workers. What
//! `oncommit`'s CLI and the dashboard call, and what an application's own admin code calls.
//!
//! Three handles, one per thing an operator thinks about, each borrowed from the [`Db`]:
//!
//! - [`Db::jobs`] → [`Jobs`]: one job (`get`, `dependencies`, `retry`, `cancel`, `delete`),
//!   many (`list` a page at a time, `count`, `retry_all`, `cancel_all`, `delete_all`, each
//!   over a [`JobSelection`]), and figures (`stats`, `throughput`, `table_stats`).
//! - [`Db::queues`] → [`Queues`]: `list`, `get`, `overview` (what a dashboard or a
//!   metrics scrape refreshes), `lag`, `activity`, and the controls `pause`, `resume`,
//!   `set_concurrency_limit`, `set_rate_limit`.
//! - [`Db::workers`] → [`Workers`]: `list`, and the `tasks` they declare.
//!
//! ```no_run
//! # use oncommit::admin::{JobSelection, PageRequest};
//! # use oncommit::JobState;
//! # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
//! let failed = JobSelection::new([JobState::Failed]).queue("mail");
//! let page = db.jobs().list(&failed, &PageRequest::default()).await?;
//! println!("{} of {} failed mail jobs", page.jobs.len(), db.jobs().count(&failed).await?);
//! db.jobs().retry_all(&failed).await?;
//! db.queues().pause("mail").await?;
//! # Ok(()) }
//! ```

pub(crate) mod bulk;
pub(crate) mod jobs;
pub(crate) mod listing;
mod queues;
mod workers;

pub use crate::activity::QueueActivity;
pub use crate::queries::{KeyBacklog, QueueInfo, RateLimit, TableStats, TaskDeclaration, WorkerInfo};
pub use bulk::{BulkCancelled, JobSelection};
pub use jobs::{Cancelled, JobDependencies, JobStats};
pub use listing::{JobOrder, JobsPage, PageRequest};
pub use queues::QueuesOverview;

use crate::db::Db;

/// The jobs of a database: [`Db::jobs`].
#[derive(Debug, Clone, Copy)]
pub struct Jobs<'db> {
    db: &'db Db,
}

/// The queues of a database: [`Db::queues`].
#[derive(Debug, Clone, Copy)]
pub struct Queues<'db> {
    db: &'db Db,
}

/// The workers serving a database: [`Db::workers`].
#[derive(Debug, Clone, Copy)]
pub struct Workers<'db> {
    db: &'db Db,
}

impl Db {
    /// The jobs: look at them one at a time, a page at a time or counted, and retry,
    /// cancel or delete them ([`Jobs`]).
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs { db: self }
    }

    /// The queues: list them, read their lag and activity, pause them and limit them
    /// ([`Queues`]).
    pub fn queues(&self) -> Queues<'_> {
        Queues { db: self }
    }

    /// The workers that reported recently, and the tasks they declare ([`Workers`]).
    pub fn workers(&self) -> Workers<'_> {
        Workers { db: self }
    }
}
