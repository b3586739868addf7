//! The history of finished jobs (PostgreSQL; docs/history.md): the statements the leader's
//! pruning pass runs on it. They are the driver's (`driver::contract::History`); on SQLite
//! there is no history and each does nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::error::Result;

pub(crate) use crate::driver::contract::{HistoryClass, Leaves};

/// `class`'s partitions and the database's clock, or `None` where there is no history.
pub(crate) async fn history_leaves(db: &Db, class: HistoryClass) -> Result<Option<Leaves>> {
    statement!(db, "reading the history's partitions", history_leaves(class))
}

/// Adds `class`'s partition for `[from, to)`.
pub(crate) async fn history_leaf_create(
    db: &Db,
    class: HistoryClass,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<()> {
    statement!(db, write "adding a partition to the history", history_leaf_create(class, from, to))
}

/// Drops `class`'s partition `name` with its jobs.
pub(crate) async fn history_leaf_drop(db: &Db, class: HistoryClass, name: &str) -> Result<()> {
    statement!(db, write "dropping a partition of the history", history_leaf_drop(class, name))
}

/// Counts the history's partition `name` once for all.
pub(crate) async fn history_leaf_count(db: &Db, name: &str) -> Result<()> {
    statement!(db, write "counting a partition of the history", history_leaf_count(name))
}

/// Deletes up to `limit` of `class`'s jobs finished more than `older_than` ago: in every
/// partition (`everywhere`) or only among those that found none.
pub(crate) async fn history_prune(
    db: &Db,
    class: HistoryClass,
    older_than: Duration,
    everywhere: bool,
    limit: i64,
) -> Result<u64> {
    statement!(db, write "pruning the history", history_prune(class, older_than, everywhere, limit))
}

/// Moves up to `limit` finished jobs from the jobs table to the history.
pub(crate) async fn job_archive(db: &Db, limit: i64) -> Result<u64> {
    statement!(db, write "moving finished jobs to the history", job_archive(limit))
}
