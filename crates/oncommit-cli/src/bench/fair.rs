//! `oncommit bench --fair`: fair queuing across tenants, drained by `oncommit worker` as a
//! separate process (docs/fairness.md).
//!
//! - **Order**: tenant A enqueues N jobs, then tenants B…K 100 each; how many of A's jobs
//!   start before the last of the others' does (first come, first served: all N).
//! - **Cost**: N jobs of one key drained against the same N jobs without a key, in the same
//!   run: what the fair claim (a turn on the queue's row, a probe per key) costs.

use std::time::{Duration, Instant};

use oncommit::Db;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::backlog::{analyze, insert_noops, spawn_worker, stop_worker};
use super::{QUEUE, all_jobs_table, clear, jobs_table};
use crate::demo::print;

/// The tenants that come after A, 100 jobs each.
const OTHERS: [&str; 10] = ["B", "C", "D", "E", "F", "G", "H", "I", "J", "K"];
const EACH: usize = 100;

/// The figures, as `oncommit bench --fair --json` prints them.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    backend: oncommit::Backend,
    /// Tenant A's backlog, and the size of each cost drain.
    jobs: usize,
    concurrency: usize,
    /// Of A's jobs, how many started no later than the last of B…K's 1,000 did.
    a_started_before_the_others_last: i64,
    /// N jobs of one key: jobs per second from the worker's start until all are done.
    one_key_jobs_per_sec: f64,
    /// The same N jobs without a key.
    no_key_jobs_per_sec: f64,
    /// One key's rate against no key's: the cost of fairness when nobody competes.
    one_key_vs_no_key: f64,
}

pub(crate) async fn run(db: &Db, url: &str, jobs: usize, concurrency: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(jobs > 0, "--backlog must be at least 1");
    // Order.
    reset(db).await?;
    insert(db, jobs, Some("A")).await?;
    for tenant in OTHERS {
        insert(db, EACH, Some(tenant)).await?;
    }
    drain(db, url, concurrency).await?;
    let a_before = a_before_the_others(db).await?;
    // Cost: no key first, then one key, each on a fresh queue.
    reset(db).await?;
    insert(db, jobs, None).await?;
    let no_key = jobs as f64 / drain(db, url, concurrency).await?.as_secs_f64();
    reset(db).await?;
    insert(db, jobs, Some("A")).await?;
    let one_key = jobs as f64 / drain(db, url, concurrency).await?.as_secs_f64();
    reset(db).await?;
    let report = Report {
        backend: db.backend(),
        jobs,
        concurrency,
        a_started_before_the_others_last: a_before,
        one_key_jobs_per_sec: one_key,
        no_key_jobs_per_sec: no_key,
        one_key_vs_no_key: one_key / no_key,
    };
    print(json, &report, || {
        format!(
            "fair queuing on {} (oncommit worker --queues {QUEUE}:{}, separate process):\n  \
             tenant A enqueued {} jobs, then B…K {EACH} each: {} of A's jobs started before the others' last\n  \
             a drain of {} jobs: one key {:.0} jobs/s, no key {:.0} jobs/s ({:.0}%)",
            report.backend,
            report.concurrency,
            report.jobs,
            report.a_started_before_the_others_last,
            report.jobs,
            report.one_key_jobs_per_sec,
            report.no_key_jobs_per_sec,
            report.one_key_vs_no_key * 100.0,
        )
    })
}

/// An empty bench queue that is not fair (the first keyed job makes it fair again).
async fn reset(db: &Db) -> anyhow::Result<()> {
    clear(db).await?;
    let table = match db.backend() {
        oncommit::Backend::Postgres => "oncommit.queues",
        oncommit::Backend::Sqlite => "oncommit_queues",
    };
    let mut conn = db.acquire().await?;
    let sql = format!("DELETE FROM {table} WHERE name = $1");
    oncommit::with_conn!(conn.conn(), c => { sqlx::query(AssertSqlSafe(sql)).bind(QUEUE).execute(&mut *c).await?.rows_affected() });
    Ok(())
}

/// Inserts `n` available no-op jobs of fairness key `key` in one statement, then freshens
/// the statistics.
async fn insert(db: &Db, n: usize, key: Option<&str>) -> anyhow::Result<()> {
    insert_noops(db, n, key).await?;
    analyze(db).await
}

/// Runs a worker process until the bench queue has no available or running job; returns
/// how long from its start.
async fn drain(db: &Db, url: &str, concurrency: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut worker = spawn_worker(url, concurrency, &[])?;
    let table = jobs_table(db);
    let waiting = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE state = 'available' AND queue = $1) \
             OR EXISTS (SELECT 1 FROM {table} WHERE state = 'running' AND queue = $1)"
    );
    let took = {
        let drained = async {
            loop {
                let mut conn = db.acquire().await?;
                let busy: bool = oncommit::with_conn!(conn.conn(), c => {
                    sqlx::query_scalar(AssertSqlSafe(waiting.clone())).bind(QUEUE).fetch_one(&mut *c).await?
                });
                if !busy {
                    return anyhow::Ok(started.elapsed());
                }
                drop(conn);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let exited = async {
            let status = worker.wait().await?;
            anyhow::bail!("the worker process exited before the queue was drained: {status}")
        };
        tokio::select! {
            took = drained => took,
            failed = exited => failed,
        }
    };
    stop_worker(worker).await;
    took
}

/// How many of A's jobs started no later than the last of the other tenants' did.
async fn a_before_the_others(db: &Db) -> anyhow::Result<i64> {
    let table = all_jobs_table(db);
    let sql = format!(
        "SELECT count(*) FROM {table} WHERE queue = $1 AND fair_key = 'A' AND attempted_at <= \
           (SELECT max(attempted_at) FROM {table} WHERE queue = $1 AND fair_key <> 'A')"
    );
    let mut conn = db.acquire().await?;
    Ok(oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(QUEUE).fetch_one(&mut *c).await?
    }))
}
