//! An idle worker is quiet: it costs at most two transactions per second, heartbeat and
//! maintenance included, as PostgreSQL counts them (`pg_stat_database.xact_commit`).
//!
//! A test binary of its own: cargo runs test binaries one at a time, so no other test's
//! sessions are counted with the worker's.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use oncommit::{Db, Shutdown, Task, TaskContext, TaskError, Worker};
use oncommit_testing::{TestDb, admin_url, eventually};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Noop;

impl Task for Noop {
    const NAME: &'static str = "noop";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Commits (and aborts) counted by PostgreSQL for database `name`, once every session on it
/// has ended and reported its counts (a session reports them as it exits, just after it
/// leaves `pg_stat_activity`: the count is read until it holds still).
async fn transactions(admin: &Db, name: &str) -> i64 {
    let pool = admin.pg_pool().unwrap();
    let read = || async {
        let (sessions, count): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = $1), \
                    (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1)",
        )
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
        (sessions == 0).then_some(count)
    };
    let settled = std::sync::Mutex::new((None, 0));
    eventually("the test database's sessions to end and report", || async {
        let count = read().await?;
        let mut settled = settled.lock().unwrap();
        *settled = if settled.0 == Some(count) { (Some(count), settled.1 + 1) } else { (Some(count), 0) };
        // Held still over a hundred reads (a few hundred milliseconds).
        (settled.1 >= 100).then_some(count)
    })
    .await
}

/// Runs the default worker, as `oncommit worker` runs it, idle for `window`; returns the
/// transactions it cost from start to stop.
async fn idle_run(t: &TestDb, admin: &Db, name: &str, window: Duration) -> i64 {
    let before = transactions(admin, name).await;
    let db = Db::connect(&t.url).await.unwrap();
    let (stop, shutdown) = Shutdown::new();
    let worker = tokio::spawn(Worker::new(db.clone()).register::<Noop>().run(shutdown));
    tokio::time::sleep(window).await;
    stop.trigger();
    worker.await.unwrap().unwrap();
    db.pg_pool().unwrap().close().await;
    transactions(admin, name).await - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_runs_at_most_two_transactions_a_second() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    t.db.pg_pool().unwrap().close().await;
    let admin = Db::connect(&admin_url()).await.unwrap();
    // Start-up (sessions, first heartbeat and claims) and shutdown cost the same in both
    // runs: the difference is what twenty idle seconds cost.
    let (short, long) = (Duration::from_secs(2), Duration::from_secs(22));
    let short_spent = idle_run(&t, &admin, &name, short).await;
    let long_spent = idle_run(&t, &admin, &name, long).await;
    let per_second = (long_spent - short_spent) as f64 / (long - short).as_secs_f64();
    eprintln!(
        "idle worker on {name}: {short_spent} transactions in {short:?}, {long_spent} in {long:?}: {per_second:.2}/s"
    );
    assert!(per_second <= 2.0, "an idle worker ran {per_second:.2} transactions per second");
    t.finish().await;
}
