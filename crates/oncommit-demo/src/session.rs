//! What the scenarios share: telling that a session is blocked, and small queries on socks.

use std::time::{Duration, Instant};

use oncommit::{Db, Lock, Tx};

/// The server process id of a PostgreSQL transaction.
pub(crate) async fn pid(tx: &mut Tx<'_>) -> oncommit::Result<i32> {
    Ok(sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(tx.postgres()?).await?)
}

/// How long any session of a scenario waits for a lock or for the other session: the
/// scenarios' waits are all bounded, so a session that failed cannot leave the other
/// holding its locks forever.
pub(crate) const SCENARIO_WAIT: Duration = Duration::from_secs(10);

/// Waits until PostgreSQL backend `pid` waits for a lock (`pg_blocking_pids`), or until
/// `done()` says the session finished without waiting (at most [`SCENARIO_WAIT`]). Returns
/// whether it was seen blocked.
pub(crate) async fn blocked_or_done(db: &Db, pid: i32, done: impl Fn() -> bool) -> oncommit::Result<bool> {
    let pool = db.pg_pool().expect("pg_blocking_pids needs PostgreSQL");
    let deadline = Instant::now() + SCENARIO_WAIT;
    while !done() && Instant::now() < deadline {
        let blocked: bool =
            sqlx::query_scalar("SELECT cardinality(pg_blocking_pids($1)) > 0").bind(pid).fetch_one(pool).await?;
        if blocked {
            return Ok(true);
        }
        // Polling an event, not guessing a duration: each round trip is the wait.
        tokio::task::yield_now().await;
    }
    Ok(false)
}

/// Locks a sock with `lock` (on SQLite: no clause, the write lock already covers it).
pub(crate) async fn lock_sock(tx: &mut Tx<'_>, id: i64, lock: &Lock) -> oncommit::Result<Option<i64>> {
    let sql = lock.apply(tx.backend(), "SELECT id FROM socks WHERE id = $1");
    Ok(oncommit::with_conn!(tx.conn(), c => {
        sqlx::query_scalar(sql).bind(id).fetch_optional(c).await?
    }))
}

/// Milliseconds since `start`, for reports.
pub(crate) fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}
