//! SQLite keeps finished jobs in the jobs table, pruned row by row (docs/history.md): one
//! writer and no partitions, and its index entries go with their rows, so the head of the
//! claim index holds no dead entries to walk.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{History, HistoryClass, Leaves};
use crate::error::Result;

impl History for SqliteDriver {
    async fn history_leaves(_: &mut SqliteConnection, _: HistoryClass) -> Result<Option<Leaves>> {
        Ok(None)
    }

    async fn history_leaf_create(
        _: &mut SqliteConnection,
        _: HistoryClass,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<()> {
        Ok(())
    }

    async fn history_leaf_drop(_: &mut SqliteConnection, _: HistoryClass, _: &str) -> Result<()> {
        Ok(())
    }

    async fn history_leaf_count(_: &mut SqliteConnection, _: &str) -> Result<()> {
        Ok(())
    }

    async fn history_count(_: &mut SqliteConnection) -> Result<Vec<(String, String, i64)>> {
        Ok(Vec::new())
    }

    async fn history_prune(_: &mut SqliteConnection, _: HistoryClass, _: Duration, _: bool, _: i64) -> Result<u64> {
        Ok(0)
    }

    async fn job_archive(_: &mut SqliteConnection, _: i64) -> Result<u64> {
        Ok(0)
    }
}
