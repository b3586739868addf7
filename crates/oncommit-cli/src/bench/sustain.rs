//! `oncommit bench --sustain SECS`: does pruning keep up? A worker process (`oncommit
//! worker`, completed jobs kept 10 s, pruned every 5 s) is kept busy for SECS seconds with
//! jobs topped up as fast as it drains them, while the jobs table's size and dead rows are
//! sampled every 10 s. The table should level off: its largest size after the first minute
//! within twice its size at the first minute.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use oncommit::Db;
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::backlog::{insert_noops, spawn_worker, stop_worker};
use super::{QUEUE, clear, jobs_table};
use crate::demo::print;

/// Jobs kept waiting for the worker: enough that it never runs dry between top-ups.
const BACKLOG: usize = 20_000;
/// How often the table is measured.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// One measurement of the table.
#[derive(Debug, Serialize)]
struct Sample {
    at_secs: u64,
    jobs_done: usize,
    table_bytes: i64,
    dead_rows: Option<i64>,
}

/// The figures, as `oncommit bench --sustain SECS --json` prints them.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    backend: oncommit::Backend,
    secs: u64,
    concurrency: usize,
    jobs_per_sec: f64,
    /// The table's size at the first sample at or after one minute.
    bytes_after_first_minute: Option<i64>,
    /// The largest size from then on, against it.
    largest_vs_first_minute: Option<f64>,
    samples: Vec<Sample>,
}

pub(crate) async fn run(db: &Db, url: &str, secs: u64, concurrency: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(secs > 0, "--sustain must be at least 1 second");
    clear(db).await?;
    let mut produced = 0;
    insert_noops(db, BACKLOG, None).await?;
    produced += BACKLOG;
    let extra = ["--retention-completed", "10", "--retention-discarded", "10", "--prune-interval-ms", "5000"];
    let mut worker = spawn_worker(url, concurrency, &extra)?;
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let outcome = async {
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::select! {
                status = worker.wait() => anyhow::bail!("the worker process exited: {}", status?),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let waiting = outstanding(db).await?;
            if waiting < BACKLOG {
                insert_noops(db, BACKLOG - waiting, None).await?;
                produced += BACKLOG - waiting;
            }
            if started.elapsed() >= next_sample {
                next_sample += SAMPLE_EVERY;
                let table = db.jobs().table_stats().await?;
                let done = produced - outstanding(db).await?;
                let at_secs = started.elapsed().as_secs();
                samples.push(Sample { at_secs, jobs_done: done, table_bytes: table.bytes, dead_rows: table.dead_rows });
                if terminal {
                    eprint!(
                        "\rsustain: {at_secs} of {secs} s, {done} jobs, table {:.1} MiB",
                        table.bytes as f64 / 1_048_576.0
                    );
                    std::io::stderr().flush().ok();
                }
            }
        }
        Ok(())
    }
    .await;
    if terminal {
        eprint!("\r{:70}\r", "");
    }
    let took = started.elapsed().as_secs_f64();
    let done = produced - outstanding(db).await?;
    stop_worker(worker).await;
    outcome?;
    clear(db).await?;
    let first_minute = samples.iter().find(|s| s.at_secs >= 60).map(|s| s.table_bytes);
    let largest = samples.iter().filter(|s| s.at_secs >= 60).map(|s| s.table_bytes).max();
    let report = Report {
        backend: db.backend(),
        secs,
        concurrency,
        jobs_per_sec: done as f64 / took,
        bytes_after_first_minute: first_minute,
        largest_vs_first_minute: first_minute.zip(largest).map(|(first, most)| most as f64 / first.max(1) as f64),
        samples,
    };
    print(json, &report, || {
        let mut text = format!(
            "{} s on {} with `oncommit worker --queues {QUEUE}:{}`, completed jobs pruned after 10 s: {:.0} jobs/s\n",
            report.secs, report.backend, report.concurrency, report.jobs_per_sec
        );
        for s in &report.samples {
            text.push_str(&format!(
                "  {:>5} s {:>10} jobs  table {:>8.1} MiB  dead rows {}\n",
                s.at_secs,
                s.jobs_done,
                s.table_bytes as f64 / 1_048_576.0,
                s.dead_rows.map_or("-".to_owned(), |n| n.to_string())
            ));
        }
        match report.largest_vs_first_minute {
            Some(ratio) => {
                text.push_str(&format!("largest size after the first minute: {ratio:.2}× the size at one minute"))
            }
            None => text.push_str("(shorter than a minute: no growth figure)"),
        }
        text
    })
}

/// Jobs of the bench queue waiting or running (index probes of the claim and running
/// indexes).
async fn outstanding(db: &Db) -> anyhow::Result<usize> {
    let table = jobs_table(db);
    let sql = format!(
        "SELECT (SELECT count(*) FROM {table} WHERE state = 'available' AND queue = $1) \
              + (SELECT count(*) FROM {table} WHERE state = 'running' AND queue = $1)"
    );
    let mut conn = db.acquire().await?;
    let n: i64 = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar(AssertSqlSafe(sql)).bind(QUEUE).fetch_one(&mut *c).await?
    });
    Ok(usize::try_from(n).unwrap_or(0))
}
