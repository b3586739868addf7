//! Commit → start latency across processes (PostgreSQL): a producer (this process) commits
//! one job at a time, and `oncommit worker` in another process, which polls only every 10 s,
//! must be woken by the commit's NOTIFY: sent after the commit by `tx.enqueue`'s notifier,
//! or inside the transaction by `oncommit.enqueue` from SQL (the worker sleeps on the
//! queue between jobs). Measured from the moment `commit()` is called (so
//! the commit's own flush counts) to the claim's time as the database recorded it
//! (`attempted_at`); both clocks are this machine's.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oncommit::{Db, EnqueueOptions, JobId};

use super::QUEUE;
use super::backlog::{spawn_worker, stop_worker};

/// Probes sent first and not counted: the worker's LISTEN may start after its first claim.
const WARM_UP: usize = 5;

/// p50 and p99 in milliseconds over `samples` jobs, enqueued with `tx.enqueue`, then with
/// `oncommit.enqueue`.
pub(super) async fn across_processes(db: &Db, url: &str, samples: usize) -> anyhow::Result<[(f64, f64); 2]> {
    let worker = spawn_worker(url, 8, &["--poll-ms", "10000"])?;
    let rust = measure(db, samples, false).await;
    let sql = measure(db, samples, true).await;
    stop_worker(worker).await;
    Ok([percentiles(rust?), percentiles(sql?)])
}

fn percentiles(mut latencies: Vec<f64>) -> (f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (pct(0.50), pct(0.99))
}

async fn measure(db: &Db, samples: usize, sql: bool) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..WARM_UP + samples {
        let mut tx = db.begin().await?;
        let id = match sql {
            false => tx.enqueue_raw("noop", &serde_json::json!({}), EnqueueOptions::new().queue(QUEUE)).await?,
            true => {
                let oncommit::Conn::Postgres(c) = tx.conn() else { anyhow::bail!("PostgreSQL only") };
                let id: i64 = sqlx::query_scalar("SELECT oncommit.enqueue('noop', queue => $1)")
                    .bind(QUEUE)
                    .fetch_one(&mut *c)
                    .await?;
                JobId(id)
            }
        };
        let committed = Utc::now();
        tx.commit().await?;
        let started = started_at(db, id).await?;
        if n >= WARM_UP {
            latencies.push((started - committed).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
        }
    }
    Ok(latencies)
}

/// Waits (up to 30 s: three of the worker's polls) until job `id` was claimed; returns when.
async fn started_at(db: &Db, id: JobId) -> anyhow::Result<DateTime<Utc>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(at) = db.jobs().get(id).await?.and_then(|job| job.attempted_at) {
            return Ok(at);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "job {id} was not started within 30 s");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
