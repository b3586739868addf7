//! The per-queue, per-minute activity counts (`oncommit.queue_activity`): a worker's upsert
//! of what it counted, the dashboard's read of the last hour, the leader's prune. The
//! statements are the driver's (`driver::contract::Fleet`).

use crate::db::Db;
use crate::error::Result;

pub(crate) use crate::driver::contract::ActivityRow;

/// Adds `rows` (sorted by key) to the stored counts.
pub(crate) async fn activity_add(db: &Db, rows: &[ActivityRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    statement!(db, "recording queue activity", activity_add(rows))
}

/// The counts of minutes `since_minute` and later (the minute is 0 but for completions).
pub(crate) async fn activity_since(db: &Db, since_minute: i64) -> Result<Vec<ActivityRow>> {
    statement!(db, "reading queue activity", activity_since(since_minute))
}

/// Deletes the minutes before `before_minute`.
pub(crate) async fn activity_prune(db: &Db, before_minute: i64) -> Result<u64> {
    statement!(db, "pruning queue activity", activity_prune(before_minute))
}
