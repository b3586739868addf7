//! Which workers sleep on which queues (PostgreSQL): what `oncommit.enqueue` asks before it
//! NOTIFYs (migration 016 says why and how no wake-up is lost). The statements are the
//! driver's (`driver::contract::Fleet`); SQLite records nothing.

use crate::db::Db;
use crate::error::Result;

/// Records that `worker` waits for a NOTIFY on `queue`; the caller claims once more before
/// it waits.
pub(crate) async fn sleeper_record(db: &Db, queue: &str, worker: &str) -> Result<()> {
    statement!(db, "recording a sleeping worker", sleeper_record(queue, worker))
}

/// `worker` is busy on `queue`: enqueuers need not wake it.
pub(crate) async fn sleeper_forget(db: &Db, queue: &str, worker: &str) -> Result<()> {
    statement!(db, "forgetting a sleeping worker", sleeper_forget(queue, worker))
}
