//! Which workers sleep on which queues (PostgreSQL): what `oncommit.enqueue` asks before it
//! NOTIFYs (migration 016 says why and how no wake-up is lost).

use crate::db::Db;
use crate::error::Result;

/// Records that `worker` waits for a NOTIFY on `queue`, under the queue's exclusive
/// advisory lock: the enqueuers that checked for sleepers before have committed when this
/// returns. The caller claims once more before it waits.
pub(crate) async fn sleeper_record(db: &Db, queue: &str, worker: &str) -> Result<()> {
    on_conn!(
        db,
        "recording a sleeping worker",
        |c| async {
            let mut tx = sqlx::Connection::begin(&mut **c).await?;
            sqlx::query("SELECT pg_advisory_xact_lock(1330531, hashtext($1))").bind(queue).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO oncommit.sleepers (queue, worker) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(queue)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        },
        {
            let _ = c; // SQLite has no NOTIFY: its workers are woken in-process or by the poll
            async { Ok::<_, sqlx::Error>(()) }
        },
    )
}

/// `worker` is busy on `queue`: enqueuers need not wake it.
pub(crate) async fn sleeper_forget(db: &Db, queue: &str, worker: &str) -> Result<()> {
    on_conn!(
        db,
        "forgetting a sleeping worker",
        |c| async {
            sqlx::query("DELETE FROM oncommit.sleepers WHERE queue = $1 AND worker = $2")
                .bind(queue)
                .bind(worker)
                .execute(&mut **c)
                .await
                .map(drop)
        },
        {
            let _ = c;
            async { Ok::<_, sqlx::Error>(()) }
        },
    )
}
