//! `oncommit bench`: throughput and latency of the queue, each figure next to a raw-SQL
//! baseline measured in the same run on the same database. Uses its own queue (`bench`) and
//! deletes only that queue's jobs. `--backlog N` drains a large backlog instead
//! (`backlog`), `--sustain SECS` watches the table's size under load (`sustain`),
//! `--vacuum-pressure` the queue while long readers hold back vacuum (`vacuum`), `--fair`
//! one tenant's backlog against others' few jobs, and what fairness costs (`fair`),
//! `--history N` the queue beside a history of N finished jobs (`history`).

mod backlog;
mod bare;
mod breakdown;
mod enqueue;
mod fair;
mod history;
mod latency;
mod sustain;
mod vacuum;

pub(crate) use backlog::run as backlog;
pub(crate) use fair::run as fair;
pub(crate) use history::run as history;
pub(crate) use sustain::run as sustain;
pub(crate) use vacuum::run as vacuum_pressure;

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use oncommit::{Backend, Db, Shutdown, Task, TaskContext, TaskError, TaskOptions, Worker};
use serde::{Deserialize, Serialize};

use crate::progress::while_running;
use tokio::sync::mpsc;

use crate::demo::print;
use enqueue::{Single, enqueue_batched, enqueue_single};

const QUEUE: &str = "bench";
/// Concurrent clients of the baseline and of the single-job enqueue run.
const CLIENTS: usize = 8;
/// Jobs per transaction in the baseline.
const BATCH: i64 = 100;

/// Does nothing, on the bench queue, but count itself.
#[derive(Serialize, Deserialize)]
struct BenchNoop {}

/// Runs of `BenchNoop`: watched instead of the database, so measuring costs the database
/// nothing.
static NOOP_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Task for BenchNoop {
    const NAME: &'static str = "bench_noop";
    fn options() -> TaskOptions {
        TaskOptions::default().queue(QUEUE)
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        NOOP_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// Says when it started, for the commit-to-start latency.
#[derive(Serialize, Deserialize)]
struct BenchProbe {
    seq: u64,
}

/// Where probes report `(seq, started)`; set while the latency run lasts.
type ProbeSender = mpsc::UnboundedSender<(u64, Instant)>;
static PROBES: LazyLock<Mutex<Option<ProbeSender>>> = LazyLock::new(Default::default);

impl Task for BenchProbe {
    const NAME: &'static str = "bench_probe";
    fn options() -> TaskOptions {
        TaskOptions::default().queue(QUEUE)
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        let started = Instant::now();
        if let Some(tx) = PROBES.lock().expect("not poisoned").as_ref() {
            tx.send((self.seq, started)).ok();
        }
        Ok(())
    }
}

/// The figures, as `oncommit bench --json` prints them.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    backend: Backend,
    jobs: usize,
    /// Raw SQL on the bare table (`bare`, not oncommit's): claim and complete 100 jobs per
    /// transaction, 8 clients.
    baseline_claim_complete_jobs_per_sec: f64,
    /// oncommit's worker, enqueue excluded, until every job is completed.
    end_to_end_jobs_per_sec: f64,
    /// end_to_end / baseline.
    end_to_end_vs_baseline: f64,
    /// `enqueue_many`, 1000 jobs per statement.
    enqueue_batched_jobs_per_sec: f64,
    /// One job per transaction, 8 clients: `begin; tx.enqueue; commit`.
    enqueue_single_jobs_per_sec: f64,
    /// Its raw twin: `BEGIN; INSERT INTO oncommit_bench_bare …; COMMIT`, 8 clients.
    insert_single_raw_jobs_per_sec: f64,
    /// enqueue_single / insert_single_raw.
    enqueue_single_vs_raw: f64,
    /// `BEGIN; SELECT oncommit.enqueue(…); COMMIT`, 8 clients (PostgreSQL).
    enqueue_single_sql_jobs_per_sec: Option<f64>,
    /// enqueue_single_sql / insert_single_raw.
    enqueue_single_sql_vs_raw: Option<f64>,
    /// `SELECT oncommit.enqueue_many(task, array of args)`, `jobs` at once (PostgreSQL).
    enqueue_many_sql_jobs_per_sec: Option<f64>,
    /// Its raw twin: `INSERT INTO oncommit_bench_bare … SELECT … FROM generate_series(…)`.
    insert_select_raw_jobs_per_sec: Option<f64>,
    /// enqueue_many_sql / insert_select_raw.
    enqueue_many_sql_vs_raw: Option<f64>,
    /// From `commit()` returning to the task starting, over `latency_samples` jobs, with the
    /// worker in this process.
    commit_to_start_p50_ms: f64,
    commit_to_start_p99_ms: f64,
    /// With `oncommit worker` in another process, woken by NOTIFY (PostgreSQL): from
    /// `commit()` called (its flush included) until the job is claimed.
    commit_to_start_across_processes_p50_ms: Option<f64>,
    commit_to_start_across_processes_p99_ms: Option<f64>,
    /// The same, each job enqueued by `oncommit.enqueue` from SQL (its NOTIFY inside the
    /// transaction, the worker sleeping on the queue).
    commit_to_start_across_processes_sql_p50_ms: Option<f64>,
    commit_to_start_across_processes_sql_p99_ms: Option<f64>,
    latency_samples: usize,
}

/// Rounds of the one-job-per-transaction comparison.
const ROUNDS: usize = 8;

pub(crate) use breakdown::run as breakdown;

pub(crate) async fn run(db: &Db, url: &str, jobs: usize, json: bool) -> anyhow::Result<()> {
    // Every phase starts from a clean table (see `clear`).
    clear(db).await?;
    let batched = rate(jobs, while_running("bench: enqueue_many", enqueue_batched(db, jobs)).await?);
    bare::create(db).await?;
    bare::fill(db, jobs).await?;
    let baseline = rate(jobs, while_running("bench: raw claim + complete", baseline(db)).await?);
    bare::clear(db).await?;
    clear(db).await?;
    enqueue_batched(db, jobs).await?;
    let end_to_end = rate(jobs, while_running("bench: end to end", end_to_end(db, jobs)).await?);
    clear(db).await?;
    let postgres = db.backend() == Backend::Postgres;
    // One job per transaction, three ways, in alternating rounds: on a shared machine the
    // rate drifts by a fifth from one minute to the next, and a twin measured minutes
    // apart would compare the drift, not the code.
    let single = (jobs / 5).max(100);
    let mut kinds = vec![Single::RawInsert, Single::TxEnqueue];
    if postgres {
        kinds.push(Single::SqlFunction);
    }
    let mut took = [Duration::ZERO; 3];
    for round in 0..ROUNDS {
        let n = single / ROUNDS + usize::from(round < single % ROUNDS);
        for (i, how) in kinds.iter().enumerate() {
            took[i] += while_running(
                &format!("bench: one job per transaction, {how:?}, round {}", round + 1),
                enqueue_single(db, n, *how),
            )
            .await?;
            match how {
                Single::RawInsert => bare::clear(db).await?,
                _ => clear(db).await?,
            }
        }
    }
    let (insert_single_raw, tx_enqueue) = (rate(single, took[0]), rate(single, took[1]));
    let enqueue_single_sql = postgres.then(|| rate(single, took[2]));
    let mut bulk = None;
    if postgres {
        let sql = rate(jobs, while_running("bench: oncommit.enqueue_many", enqueue::enqueue_many_sql(db, jobs)).await?);
        clear(db).await?;
        let raw = rate(jobs, while_running("bench: raw INSERT … SELECT", enqueue::insert_select_raw(db, jobs)).await?);
        bare::clear(db).await?;
        bulk = Some((sql, raw));
    }
    let samples = 300;
    let (p50, p99) = while_running("bench: commit → start", latency(db, samples)).await?;
    clear(db).await?;
    let across = match postgres {
        true => Some(
            while_running("bench: commit → start across processes", latency::across_processes(db, url, samples))
                .await?,
        ),
        false => None,
    };
    bare::drop_table(db).await?;
    clear(db).await?;
    let report = Report {
        backend: db.backend(),
        jobs,
        baseline_claim_complete_jobs_per_sec: baseline,
        end_to_end_jobs_per_sec: end_to_end,
        end_to_end_vs_baseline: end_to_end / baseline,
        enqueue_batched_jobs_per_sec: batched,
        enqueue_single_jobs_per_sec: tx_enqueue,
        insert_single_raw_jobs_per_sec: insert_single_raw,
        enqueue_single_vs_raw: tx_enqueue / insert_single_raw,
        enqueue_single_sql_jobs_per_sec: enqueue_single_sql,
        enqueue_single_sql_vs_raw: enqueue_single_sql.map(|sql| sql / insert_single_raw),
        enqueue_many_sql_jobs_per_sec: bulk.map(|(sql, _)| sql),
        insert_select_raw_jobs_per_sec: bulk.map(|(_, raw)| raw),
        enqueue_many_sql_vs_raw: bulk.map(|(sql, raw)| sql / raw),
        commit_to_start_p50_ms: p50,
        commit_to_start_p99_ms: p99,
        commit_to_start_across_processes_p50_ms: across.map(|[(p50, _), _]| p50),
        commit_to_start_across_processes_p99_ms: across.map(|[(_, p99), _]| p99),
        commit_to_start_across_processes_sql_p50_ms: across.map(|[_, (p50, _)]| p50),
        commit_to_start_across_processes_sql_p99_ms: across.map(|[_, (_, p99)]| p99),
        latency_samples: samples,
    };
    print(json, &report, || {
        let mut text = format!(
            "bench on {} with {} jobs (raw twins on a bare table, {}):\n  baseline (raw SQL, claim 100, then complete, 8 clients): {:>9.0} jobs/s\n  \
             oncommit end to end:                                  {:>9.0} jobs/s ({:.0}% of baseline)\n  \
             enqueue, batched:                                     {:>9.0} jobs/s\n  \
             enqueue, one job per transaction, 8 clients:          {:>9.0} jobs/s ({:.0}% of raw {:.0})\n",
            report.backend,
            jobs,
            bare::TABLE,
            baseline,
            end_to_end,
            report.end_to_end_vs_baseline * 100.0,
            batched,
            tx_enqueue,
            report.enqueue_single_vs_raw * 100.0,
            insert_single_raw,
        );
        if let (Some(sql), Some(ratio)) = (report.enqueue_single_sql_jobs_per_sec, report.enqueue_single_sql_vs_raw) {
            text.push_str(&format!(
                "  oncommit.enqueue, one job per transaction, 8 clients: {sql:>8.0} jobs/s ({:.0}% of raw)\n",
                ratio * 100.0
            ));
        }
        if let (Some(sql), Some(raw), Some(ratio)) = (
            report.enqueue_many_sql_jobs_per_sec,
            report.insert_select_raw_jobs_per_sec,
            report.enqueue_many_sql_vs_raw,
        ) {
            text.push_str(&format!(
                "  oncommit.enqueue_many, {jobs} jobs in one call:  {sql:>14.0} jobs/s ({:.0}% of raw INSERT … SELECT {raw:.0})\n",
                ratio * 100.0
            ));
        }
        text.push_str(&format!(
            "  commit → task start, worker in this process: p50 {p50:.2} ms, p99 {p99:.2} ms ({samples} jobs)"
        ));
        if let Some([(p50, p99), (sql_p50, sql_p99)]) = across {
            text.push_str(&format!(
                "\n  commit() called → claimed, worker in another process: p50 {p50:.2} ms, p99 {p99:.2} ms \
                 (tx.enqueue); p50 {sql_p50:.2} ms, p99 {sql_p99:.2} ms (oncommit.enqueue)"
            ));
        }
        text
    })
}

/// oncommit's jobs table on `db`'s backend, for the bench's own statements.
pub(super) fn jobs_table(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Postgres => "oncommit.jobs",
        Backend::Sqlite => "oncommit_jobs",
    }
}

/// Every job on `db`'s backend, finished ones included (PostgreSQL moves those to the
/// history).
pub(super) fn all_jobs_table(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Postgres => "oncommit.all_jobs",
        Backend::Sqlite => "oncommit_jobs",
    }
}

pub(super) fn rate(jobs: usize, took: Duration) -> f64 {
    jobs as f64 / took.as_secs_f64()
}

/// Deletes the bench queue's jobs and, on PostgreSQL, vacuums the tables, so that no phase
/// pays for the dead rows of the one before (that alone moved figures by 40 % either way).
pub(super) async fn clear(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    match conn.conn() {
        oncommit::Conn::Postgres(c) => {
            sqlx::query("DELETE FROM oncommit.jobs WHERE queue = $1").bind(QUEUE).execute(&mut *c).await?;
            sqlx::query("DELETE FROM oncommit.job_history WHERE queue = $1").bind(QUEUE).execute(&mut *c).await?;
            sqlx::raw_sql("VACUUM oncommit.jobs, oncommit.job_history").execute(&mut *c).await?;
        }
        oncommit::Conn::Sqlite(c) => {
            sqlx::query("DELETE FROM oncommit_jobs WHERE queue = $1").bind(QUEUE).execute(&mut *c).await?;
        }
    }
    Ok(())
}

/// The raw-SQL limit, on the bare table (`bare`): each client claims 100 available jobs in
/// one transaction and completes them in another, until none are left.
pub(super) async fn baseline(db: &Db) -> anyhow::Result<Duration> {
    let turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    // Each client claims until none is left.
    enqueue::spread(db, CLIENTS, move |db| {
        let turn = turn.clone();
        async move {
            while bare::claim_complete(&db, &turn).await? > 0 {}
            Ok(())
        }
    })
    .await
}

fn bench_worker(db: &Db) -> Worker {
    Worker::new(db.clone())
        .register::<BenchNoop>()
        .register::<BenchProbe>()
        .queue(QUEUE, 256)
        .poll_interval(Duration::from_millis(100))
}

/// Runs a worker until every job of the bench queue is completed.
async fn end_to_end(db: &Db, jobs: usize) -> anyhow::Result<Duration> {
    use std::sync::atomic::Ordering;
    NOOP_RUNS.store(0, Ordering::Relaxed);
    let (stop, shutdown) = Shutdown::new();
    let started = Instant::now();
    let worker = tokio::spawn(bench_worker(db).run(shutdown));
    while NOOP_RUNS.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Every task ran; the time stops when the last completion is recorded.
    while completed(db).await? < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    stop.trigger();
    worker.await??;
    Ok(took)
}

async fn completed(db: &Db) -> anyhow::Result<usize> {
    let done = oncommit::admin::JobSelection::new([oncommit::JobState::Completed]).queue(QUEUE);
    Ok(usize::try_from(db.jobs().count(&done).await?).unwrap_or(0))
}

/// Commits one probe job at a time and measures until its task starts.
async fn latency(db: &Db, samples: usize) -> anyhow::Result<(f64, f64)> {
    let (sender, mut started) = mpsc::unbounded_channel();
    *PROBES.lock().expect("not poisoned") = Some(sender);
    let (stop, shutdown) = Shutdown::new();
    let worker = tokio::spawn(bench_worker(db).poll_interval(Duration::from_secs(10)).run(shutdown));
    // Let the worker reach its first wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::with_capacity(samples);
    for seq in 0..samples as u64 {
        let mut tx = db.begin().await?;
        tx.enqueue(BenchProbe { seq }).await?;
        tx.commit().await?;
        let committed = Instant::now();
        let (got, at) = started.recv().await.ok_or_else(|| anyhow::anyhow!("probe channel closed"))?;
        anyhow::ensure!(got == seq, "probe {got} arrived instead of {seq}");
        latencies.push(at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    stop.trigger();
    worker.await??;
    *PROBES.lock().expect("not poisoned") = None;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok((pct(0.50), pct(0.99)))
}
