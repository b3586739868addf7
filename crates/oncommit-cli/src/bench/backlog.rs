//! `oncommit bench --backlog N`: a backlog of N jobs drained the way users run it, by
//! `oncommit worker` as a separate process, against the raw-SQL limit on the same table in
//! the same run; each reported overall and in 10 % slices, to show whether the rate holds
//! as the table fills with finished and dead rows.

use std::io::{IsTerminal as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use oncommit::{Conn, Db};
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::{QUEUE, bare, baseline, clear, jobs_table};
use crate::demo::print;

/// How often progress is sampled: each sample is one index probe.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One drain, raw or by oncommit.
#[derive(Debug, Serialize)]
pub(crate) struct Drain {
    pub(super) jobs_per_sec: f64,
    /// The rate over each tenth of the backlog, in order.
    slices_jobs_per_sec: Vec<f64>,
    /// The slowest tenth against the fastest.
    slowest_vs_fastest_slice: f64,
    /// The most jobs seen `running` at once (sampled once a second).
    peak_running: i64,
    /// The worker process's resident memory (MiB) as each tenth of the backlog was reached
    /// (Linux `/proc`; empty for the raw drain, or elsewhere): flat means the worker holds
    /// no more for a longer backlog.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    worker_rss_mib_by_tenth: Vec<f64>,
}

/// The figures, as `oncommit bench --backlog N --json` prints them.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    backend: oncommit::Backend,
    backlog: usize,
    /// Raw SQL on the bare table (see `bare`): 8 clients, each claiming 100 jobs in one
    /// transaction and completing them in another.
    raw: Drain,
    /// `oncommit worker --queues bench:CONCURRENCY` as a separate process.
    oncommit: Drain,
    concurrency: usize,
    /// oncommit's overall rate against raw's.
    oncommit_vs_raw: f64,
}

pub(crate) async fn run(db: &Db, url: &str, backlog: usize, concurrency: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(backlog > 0, "--backlog must be at least 1");
    bare::create(db).await?;
    let first = bare::fill(db, backlog).await?;
    let raw = watch(db, BARE, "raw SQL", (first, backlog), Ends::Itself, async { baseline(db).await.map(drop) }).await;
    bare::drop_table(db).await?;
    let raw = raw?;
    let oncommit = drain_by_worker(db, url, backlog, concurrency).await?;
    clear(db).await?;
    let report = Report {
        backend: db.backend(),
        backlog,
        oncommit_vs_raw: oncommit.jobs_per_sec / raw.jobs_per_sec,
        raw,
        oncommit,
        concurrency,
    };
    print(json, &report, || {
        let slices = |d: &Drain| d.slices_jobs_per_sec.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ");
        format!(
            "backlog of {} jobs on {}:\n  raw SQL (claim 100, then complete, 8 clients): {:>7.0} jobs/s, slowest tenth {:.0}% of fastest, peak running {}\n    tenths: {}\n  \
             oncommit worker --queues {QUEUE}:{} (separate process): {:>7.0} jobs/s ({:.0}% of raw), slowest tenth {:.0}% of fastest, peak running {}\n    tenths: {}\n    \
             worker memory at each tenth, MiB: {}",
            report.backlog,
            report.backend,
            report.raw.jobs_per_sec,
            report.raw.slowest_vs_fastest_slice * 100.0,
            report.raw.peak_running,
            slices(&report.raw),
            report.concurrency,
            report.oncommit.jobs_per_sec,
            report.oncommit_vs_raw * 100.0,
            report.oncommit.slowest_vs_fastest_slice * 100.0,
            report.oncommit.peak_running,
            slices(&report.oncommit),
            report.oncommit.worker_rss_mib_by_tenth.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(" "),
        )
    })
}

/// A backlog of `backlog` no-op jobs on a clean bench queue, drained by `oncommit worker
/// --queues bench:CONCURRENCY` as a separate process.
pub(super) async fn drain_by_worker(db: &Db, url: &str, backlog: usize, concurrency: usize) -> anyhow::Result<Drain> {
    let first = fill(db, backlog).await?;
    let mut worker = spawn_worker(url, concurrency, &[])?;
    let pid = worker.id();
    let exited = async {
        let status = worker.wait().await?;
        anyhow::bail!("the worker process exited before the backlog was drained: {status}")
    };
    let drained = watch(db, jobs(db), "oncommit worker", (first, backlog), Ends::AllRecorded(pid), exited).await;
    stop_worker(worker).await;
    drained
}

/// A clean bench queue with `n` available no-op jobs, inserted in one statement, claimed in
/// id order; returns the first id.
async fn fill(db: &Db, n: usize) -> anyhow::Result<i64> {
    clear(db).await?;
    let first = insert_noops(db, n, None).await?;
    analyze(db).await?;
    Ok(first)
}

/// Vacuums and analyzes the jobs table (PostgreSQL), so that a drain starts from fresh
/// statistics and no dead rows left by an earlier phase.
pub(super) async fn analyze(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    if let Conn::Postgres(c) = conn.conn() {
        sqlx::raw_sql("VACUUM ANALYZE oncommit.jobs").execute(&mut *c).await?;
    }
    Ok(())
}

/// Inserts `n` available no-op jobs on the bench queue in one statement (`noop` is a task
/// of `oncommit worker`), of fairness key `fair_key` if any; returns the first id.
pub(super) async fn insert_noops(db: &Db, n: usize, fair_key: Option<&str>) -> anyhow::Result<i64> {
    let n = i64::try_from(n)?;
    let mut conn = db.acquire().await?;
    let first = match conn.conn() {
        Conn::Postgres(c) => {
            sqlx::query_scalar(
                "WITH new AS (INSERT INTO oncommit.jobs (task, args, queue, priority, max_attempts, fair_key) \
                   SELECT 'noop', '{}', $1, 0, 25, $3 FROM generate_series(1, $2) RETURNING id) \
                 SELECT min(id) FROM new",
            )
            .bind(QUEUE)
            .bind(n)
            .bind(fair_key)
            .fetch_one(&mut *c)
            .await?
        }
        Conn::Sqlite(c) => {
            let first: i64 = sqlx::query_scalar(
                "SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'oncommit_jobs'",
            )
            .fetch_one(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO oncommit_jobs (task, args, queue, priority, max_attempts, fair_key) \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
                 SELECT 'noop', '{}', $1, 0, 25, $3 FROM n",
            )
            .bind(QUEUE)
            .bind(n)
            .bind(fair_key)
            .execute(&mut *c)
            .await?;
            first
        }
    };
    Ok(first)
}

/// Starts `oncommit worker` on the bench queue as a child process, with `extra` options.
pub(super) fn spawn_worker(url: &str, concurrency: usize, extra: &[&str]) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe().context("find the oncommit binary")?;
    tokio::process::Command::new(exe)
        .args(["--database-url", url, "worker", "--queues", &format!("{QUEUE}:{concurrency}")])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("start `oncommit worker`")
}

/// Stops the worker: SIGTERM, then SIGKILL if it has not exited within 10 s.
pub(super) async fn stop_worker(mut worker: tokio::process::Child) {
    if let Some(pid) = worker.id() {
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().ok();
    }
    if tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.is_err() {
        worker.kill().await.ok();
    }
}

/// A table drained, and the order its claims follow.
#[derive(Clone, Copy)]
struct Drained {
    table: &'static str,
    order: &'static str,
}

/// The raw drain's bare table (see `bare`), claimed in id order.
const BARE: Drained = Drained { table: bare::TABLE, order: "id" };

/// oncommit's jobs table, claimed by priority, run time and id.
fn jobs(db: &Db) -> Drained {
    Drained { table: jobs_table(db), order: "priority, run_at, id" }
}

/// Jobs claimed so far: the claim order is the id order, so the next available id tells
/// (one probe of the claim index).
async fn claimed(db: &Db, drained: Drained, first: i64, backlog: usize) -> anyhow::Result<usize> {
    let sql = format!(
        "SELECT id FROM {} WHERE state = 'available' AND queue = $1 ORDER BY {} LIMIT 1",
        drained.table, drained.order
    );
    let mut conn = db.acquire().await?;
    let next: Option<i64> = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(QUEUE).fetch_optional(&mut *c).await?
    });
    Ok(next.map_or(backlog, |id| usize::try_from(id - first).unwrap_or(0).min(backlog)))
}

/// The bench queue's jobs running: a walk of the running index, dead entries included, so
/// sampled seldom. Other queues' running jobs (on a shared database) do not count.
async fn running(db: &Db, drained: Drained) -> anyhow::Result<i64> {
    let sql = format!("SELECT count(*) FROM {} WHERE state = 'running' AND queue = $1", drained.table);
    let mut conn = db.acquire().await?;
    Ok(oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(QUEUE).fetch_one(&mut *c).await?
    }))
}

/// How a drain ends.
#[derive(Clone, Copy, PartialEq)]
enum Ends {
    /// When its future returns: raw SQL clients, which must not be cut off inside a
    /// transaction (a SQLite one would keep the write lock).
    Itself,
    /// When every job is claimed and none runs any more: a worker (this process id), which
    /// never ends by itself (its future returning is an error).
    AllRecorded(Option<u32>),
}

/// A process's resident memory in MiB, from `/proc/PID/status` (`None` elsewhere).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Samples the drain that `drain` performs until it ends; `drain` must not fail.
async fn watch(
    db: &Db,
    drained: Drained,
    phase: &str,
    (first, backlog): (i64, usize),
    ends: Ends,
    drain: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Drain> {
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut samples = vec![(0.0, 0)];
    let mut peak_running = 0;
    let worker = match ends {
        Ends::AllRecorded(pid) => pid,
        Ends::Itself => None,
    };
    let mut rss = Vec::new();
    let mut drain = std::pin::pin!(drain);
    let mut draining = true;
    loop {
        tokio::select! {
            done = &mut drain, if draining => {
                done?;
                draining = false;
            }
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
        let claimed = claimed(db, drained, first, backlog).await?;
        let at = started.elapsed().as_secs_f64();
        // The worker's memory as each tenth is reached.
        if let Some(pid) = worker {
            while rss.len() < 10 && claimed * 10 >= backlog * (rss.len() + 1) {
                let Some(mib) = rss_mib(pid) else { break };
                rss.push(mib);
            }
        }
        samples.push((at, claimed));
        // Once a second, and at each look for the end.
        let running = if samples.len() % 10 == 0 || claimed == backlog { running(db, drained).await? } else { -1 };
        peak_running = peak_running.max(running);
        if terminal {
            eprint!("\r{phase}: {:>3}% of {backlog} jobs, {at:.1} s", claimed * 100 / backlog);
            std::io::stderr().flush().ok();
        }
        let recorded = claimed == backlog && running == 0;
        if (ends == Ends::Itself && !draining) || (matches!(ends, Ends::AllRecorded(_)) && recorded) {
            break;
        }
    }
    if terminal {
        eprint!("\r{:60}\r", "");
    }
    let took = started.elapsed().as_secs_f64();
    let slices = tenths(&samples, backlog);
    let fastest = slices.iter().copied().fold(0.0, f64::max);
    let slowest = slices.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Drain {
        jobs_per_sec: backlog as f64 / took,
        slowest_vs_fastest_slice: if fastest > 0.0 { slowest / fastest } else { 0.0 },
        slices_jobs_per_sec: slices,
        peak_running,
        worker_rss_mib_by_tenth: rss,
    })
}

/// The rate over each tenth of the backlog, from `(seconds, jobs claimed)` samples: the
/// moment each tenth was reached is interpolated between the samples around it.
fn tenths(samples: &[(f64, usize)], backlog: usize) -> Vec<f64> {
    let reached = |goal: f64| {
        let after = samples.iter().position(|&(_, n)| n as f64 >= goal).unwrap_or(samples.len() - 1);
        if after == 0 {
            return samples[0].0;
        }
        let ((t0, n0), (t1, n1)) = (samples[after - 1], samples[after]);
        let share = if n1 > n0 { (goal - n0 as f64) / (n1 - n0) as f64 } else { 1.0 };
        t0 + (t1 - t0) * share
    };
    let tenth = backlog as f64 / 10.0;
    (1..=10)
        .map(|k| {
            let took = reached(tenth * k as f64) - reached(tenth * (k - 1) as f64);
            if took > 0.0 { tenth / took } else { f64::INFINITY }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tenths;

    #[test]
    fn tenths_interpolate_between_samples() {
        // 1000 jobs: 500 in the first second, 500 in the next four.
        let samples = [(0.0, 0), (1.0, 500), (3.0, 750), (5.0, 1000)];
        let rates: Vec<u64> = tenths(&samples, 1000).iter().map(|r| r.round() as u64).collect();
        assert_eq!(rates, [500, 500, 500, 500, 500, 125, 125, 125, 125, 125]);
    }
}
