//! Seed 004: two transactions lock two socks in opposite order and deadlock; PostgreSQL
//! aborts one of them. Run again with retry, both commit; lock in one deterministic order
//! ([`Tx::lock_in_order`](oncommit::Tx::lock_in_order)), and the deadlock never happens.

use std::sync::{Arc, OnceLock};

use oncommit::{Backend, Db, Error, Lock, TransactionRetry};
use serde::Serialize;
use tokio::sync::Barrier;

use crate::schema;
use crate::session::{SCENARIO_WAIT, blocked_or_done, lock_sock, pid};

/// How many concurrent pairs the ordered-locking run tries.
const ORDERED_PAIRS: usize = 20;

/// What happened, as `oncommit demo deadlock --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `postgres` or `sqlite`.
    pub backend: Backend,
    /// Transactions aborted with "deadlock detected" when locking in opposite order
    /// without retry (PostgreSQL: exactly 1, either side).
    pub deadlock_errors: usize,
    /// The victim's error message, when there was one.
    pub victim_error: Option<String>,
    /// PostgreSQL's detail of the deadlock: which process waited for which.
    pub victim_detail: Option<String>,
    /// Whether both transactions committed when the same scenario ran with retry.
    pub with_retry_committed: bool,
    /// How many attempts each side took in the retry run.
    pub with_retry_attempts: [u32; 2],
    /// Deadlocks among the ordered-locking pairs (0: sorted lock order cannot deadlock).
    pub ordered_locking_deadlocks: usize,
    /// How many concurrent pairs the ordered-locking run tried.
    pub ordered_locking_pairs: usize,
    /// What happened, in words.
    pub explanation: &'static str,
}

/// Runs the scenario on `db` (migrating the demo tables if needed).
pub async fn run(db: &Db) -> oncommit::Result<Report> {
    schema::migrate(db).await?;
    schema::reset_socks(db, &[(1, "black"), (2, "white")]).await?;
    let backend = db.backend();

    let naive = opposite_order(db, TransactionRetry::never()).await;
    let victim = naive.iter().find_map(|r| r.as_ref().err().filter(|e| e.is_deadlock()));
    let deadlock_errors = naive.iter().filter(|r| r.as_ref().is_err_and(Error::is_deadlock)).count();
    if let Some(other) = naive.iter().find_map(|r| r.as_ref().err().filter(|e| !e.is_deadlock())) {
        return Err(Error::app(format!("unexpected error in the deadlock scenario: {other}")));
    }
    let (victim_error, victim_detail) = match victim {
        Some(Error::Deadlock { message, detail }) => (Some(message.clone()), detail.clone()),
        _ => (None, None),
    };

    let retried = opposite_order(db, TransactionRetry::default()).await;
    let with_retry_committed = retried.iter().all(Result::is_ok);
    let with_retry_attempts = [0, 1].map(|i| retried[i].as_ref().copied().unwrap_or(0));

    let ordered_locking_deadlocks = ordered(db).await?;

    Ok(Report {
        backend,
        deadlock_errors,
        victim_error,
        victim_detail,
        with_retry_committed,
        with_retry_attempts,
        ordered_locking_deadlocks,
        ordered_locking_pairs: ORDERED_PAIRS,
        explanation: match backend {
            Backend::Postgres => {
                "A held sock 1 and waited for 2 while B held 2 and waited for 1: PostgreSQL aborted one. \
                 Retrying the victim lets both commit; locking in key order makes the cycle impossible"
            }
            Backend::Sqlite => {
                "SQLite cannot deadlock on rows: each writing transaction takes the database write lock \
                 at BEGIN IMMEDIATE, so B waited for A to finish before taking any lock"
            }
        },
    })
}

/// A locks sock 1 then 2, B locks 2 then 1, each in a transaction run with `retry`. On
/// PostgreSQL the first attempt of each is choreographed into the deadlock: both hold their
/// first lock, A asks for its second, and once A is seen waiting B asks for its own.
/// Returns each side's attempt count or error.
async fn opposite_order(db: &Db, retry: TransactionRetry) -> [oncommit::Result<u32>; 2] {
    let choreographed = db.backend() == Backend::Postgres;
    let both_hold_one = Arc::new(Barrier::new(2));
    let a_pid = Arc::new(OnceLock::new());
    let side = |first: i64, second: i64, is_b: bool| {
        let (db, both_hold_one, a_pid) = (db.clone(), both_hold_one.clone(), a_pid.clone());
        tokio::spawn(async move {
            let scope = db.transaction().retry(retry).lock_timeout(SCENARIO_WAIT);
            oncommit::atomic!(scope, |tx| {
                let staged = choreographed && tx.attempt() == 1;
                if staged && !is_b {
                    a_pid.set(pid(tx).await?).ok();
                }
                lock_sock(tx, first, &Lock::update()).await?;
                if staged {
                    // Bounded: if the other side failed before the barrier, this one
                    // must not hold its lock forever.
                    tokio::time::timeout(SCENARIO_WAIT, both_hold_one.wait())
                        .await
                        .map_err(|_| Error::app("the other session never reached the barrier"))?;
                    if is_b {
                        let a = *a_pid.get().expect("A set its pid before the barrier");
                        blocked_or_done(&db, a, || false).await?;
                    }
                }
                lock_sock(tx, second, &Lock::update()).await?;
                Ok(tx.attempt())
            })
            .await
        })
    };
    let a = side(1, 2, false);
    let b = side(2, 1, true);
    [a.await.expect("session A ran"), b.await.expect("session B ran")]
}

/// Runs pairs of transactions that want socks {1, 2} in opposite orders, each locking with
/// `lock_in_order`; returns how many deadlocked.
async fn ordered(db: &Db) -> oncommit::Result<usize> {
    let mut tasks = Vec::new();
    for i in 0..ORDERED_PAIRS * 2 {
        let db = db.clone();
        let keys = if i % 2 == 0 { [1, 2] } else { [2, 1] };
        tasks.push(tokio::spawn(async move {
            oncommit::atomic!(db.transaction().lock_timeout(SCENARIO_WAIT), |tx| {
                tx.lock_in_order("socks", "id", &keys, &Lock::update()).await.map(drop)
            })
            .await
        }));
    }
    let mut deadlocks = 0;
    for task in tasks {
        match task.await.expect("ordered pair ran") {
            Ok(()) => {}
            Err(e) if e.is_deadlock() => deadlocks += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(deadlocks)
}
