//! Seed 004: `select_for_update` makes the next locker wait until the first commits.
//!
//! Session A locks sock 1 `FOR UPDATE` and holds it; session B asks for the same lock and
//! waits. A holds its lock for at least `hold`, and in any case until B is seen waiting, so
//! the outcome does not depend on timing.

use std::time::{Duration, Instant};

use oncommit::{Backend, Db, Lock};
use serde::Serialize;

use crate::schema;
use crate::session::{SCENARIO_WAIT, blocked_or_done, lock_sock, millis_since, pid};

/// What happened, as `oncommit demo select-for-update --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `postgres` or `sqlite`.
    pub backend: Backend,
    /// The least time A held its lock, in milliseconds.
    pub hold_ms: u64,
    /// How long B's lock request waited, in milliseconds.
    pub waited_ms: u64,
    /// Whether B was seen waiting for A (`pg_blocking_pids` on PostgreSQL; on SQLite, a
    /// zero-wait attempt at the write lock failing with BUSY).
    pub blocked: bool,
    /// What stood in for the row lock, in words.
    pub explanation: &'static str,
}

/// Runs the scenario on `db` (migrating the demo tables if needed).
pub async fn run(db: &Db, hold: Duration) -> oncommit::Result<Report> {
    schema::migrate(db).await?;
    schema::reset_socks(db, &[(1, "black")]).await?;
    let backend = db.backend();
    let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
    let mut a = db.begin().await?;
    lock_sock(&mut a, 1, &Lock::update()).await?;
    let a_locked = Instant::now();
    tracing::info!(hold_ms, "select-for-update: A holds the lock");

    let (waited_ms, blocked) = match backend {
        Backend::Postgres => {
            // B waits for A's lock, but never longer than A's hold and a margin.
            let mut b = db.transaction().lock_timeout(hold + SCENARIO_WAIT).begin().await?;
            let b_pid = pid(&mut b).await?;
            let b_task = tokio::spawn(async move {
                let start = Instant::now();
                lock_sock(&mut b, 1, &Lock::update()).await?;
                let waited = millis_since(start);
                b.commit().await?;
                Ok::<_, oncommit::Error>(waited)
            });
            let blocked = blocked_or_done(db, b_pid, || b_task.is_finished()).await?;
            tokio::time::sleep(hold.saturating_sub(a_locked.elapsed())).await;
            a.commit().await?;
            (b_task.await.expect("session B ran")?, blocked)
        }
        Backend::Sqlite => {
            // No row locks: B cannot even begin a writing transaction while A holds the
            // database write lock. A zero-wait attempt shows it; then B waits in earnest.
            let blocked = matches!(
                db.transaction().lock_timeout(Duration::ZERO).begin().await.map(drop),
                Err(oncommit::Error::Busy { .. })
            );
            let db_b = db.clone();
            let b_task = tokio::spawn(async move {
                let start = Instant::now();
                let mut b = db_b.transaction().lock_timeout(hold + SCENARIO_WAIT).begin().await?;
                lock_sock(&mut b, 1, &Lock::update()).await?;
                let waited = millis_since(start);
                b.commit().await?;
                Ok::<_, oncommit::Error>(waited)
            });
            tokio::time::sleep(hold.saturating_sub(a_locked.elapsed())).await;
            a.commit().await?;
            (b_task.await.expect("session B ran")?, blocked)
        }
    };
    Ok(Report {
        backend,
        hold_ms,
        waited_ms,
        blocked,
        explanation: match backend {
            Backend::Postgres => "B's SELECT … FOR UPDATE waited on A's row lock until A committed",
            Backend::Sqlite => {
                "SQLite has no row locks: B waited at BEGIN IMMEDIATE for the database write lock A held"
            }
        },
    })
}
