//! The statements on the history of finished jobs (PostgreSQL: `oncommit.job_history`,
//! partitioned by class and by the time each job finished; docs/history.md). What to create
//! and drop is decided once above the driver (`worker::history`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Driver;
use crate::error::Result;

/// The finished jobs kept for one retention: each class has its own partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryClass {
    /// Completed jobs.
    Completed,
    /// Failed and cancelled jobs, kept longer for inspection.
    Discarded,
}

impl HistoryClass {
    /// Both, in the order the leader tends them.
    pub(crate) const ALL: [HistoryClass; 2] = [HistoryClass::Completed, HistoryClass::Discarded];

    /// The word in its tables' names: `job_history_completed`, `job_history_discarded`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HistoryClass::Completed => "completed",
            HistoryClass::Discarded => "discarded",
        }
    }
}

/// One partition of a class's history: the jobs that finished in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    /// Its table's name, in the `oncommit` schema.
    pub(crate) name: String,
    /// The earliest finish time it holds.
    pub(crate) from: DateTime<Utc>,
    /// The finish time it holds up to, excluded.
    pub(crate) to: DateTime<Utc>,
    /// Whether its jobs are counted once for all (`history_leaf_count`).
    pub(crate) counted: bool,
}

/// A class's history as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaves {
    /// The database's clock when read: every decision about time is made by it.
    pub(crate) now: DateTime<Utc>,
    /// Its partitions, earliest first.
    pub(crate) leaves: Vec<Leaf>,
    /// The latest finish time among the jobs that found no partition (the class's default
    /// partition): a new partition must start after it.
    pub(crate) unplaced_until: Option<DateTime<Utc>>,
}

/// The history's statements. On SQLite finished jobs stay in the jobs table: there is no
/// history, and these do nothing.
pub(crate) trait History: Driver {
    /// `class`'s partitions, or `None` where there is no history.
    async fn history_leaves(c: &mut Self::Conn, class: HistoryClass) -> Result<Option<Leaves>>;

    /// Adds `class`'s partition for jobs finished in `[from, to)`, waiting for its locks at
    /// most a moment (writers of the history queue behind a waiting lock).
    async fn history_leaf_create(
        c: &mut Self::Conn,
        class: HistoryClass,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<()>;

    /// Drops `class`'s partition `name` and every job in it, likewise waiting at most a
    /// moment for its locks.
    async fn history_leaf_drop(c: &mut Self::Conn, class: HistoryClass, name: &str) -> Result<()>;

    /// Counts partition `name`'s jobs per queue and state once for all, for counts of the
    /// history to add up instead of reading them (no job may land in it any more).
    async fn history_leaf_count(c: &mut Self::Conn, name: &str) -> Result<()>;

    /// Counts per queue and state of every finished job: those in the jobs table, the
    /// counted partitions' counts, and the jobs of the partitions not counted yet.
    /// (PostgreSQL's `Jobs::job_count_split` adds up through it; SQLite counts its table.)
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    async fn history_count(c: &mut Self::Conn) -> Result<Vec<(String, String, i64)>>;

    /// Deletes up to `limit` of `class`'s jobs finished more than `older_than` ago, in
    /// every partition (`everywhere`) or only among those that found none.
    async fn history_prune(
        c: &mut Self::Conn,
        class: HistoryClass,
        older_than: Duration,
        everywhere: bool,
        limit: i64,
    ) -> Result<u64>;

    /// Moves up to `limit` finished jobs from the jobs table to the history, oldest first:
    /// those finished by a statement other than the completion (a rescue, a cancel, a
    /// parent's failure) or by an older binary. A job that holds a unique key stays.
    async fn job_archive(c: &mut Self::Conn, limit: i64) -> Result<u64>;
}
