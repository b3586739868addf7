//! One queue's fetch loop: claims as many jobs as it has free slots, in one statement, and
//! waits for a wake-up (a commit in this process, a NOTIFY, a poll tick) when the queue is
//! empty.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Shared;
use super::executor;
use crate::job::Job;
use crate::metrics::METRICS;
use crate::queries;
use crate::shutdown::Shutdown;

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    slots: Arc<Semaphore>,
    concurrency: usize,
    mut shutdown: Shutdown,
) {
    let batch = shared.config.batch_size;
    // Under load, wait for a quarter of the slots (at most a batch) before claiming, so a
    // busy queue claims in batches instead of one job per round trip as each slot frees.
    let want = u32::try_from((batch.min(concurrency) / 4).max(1)).unwrap_or(1);
    let mut wake = shared.db.wake_receiver();
    loop {
        let mut permits = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            permits = slots.clone().acquire_many_owned(want) => match permits {
                Ok(permits) => permits,
                Err(_) => return,
            },
        };
        let extra = slots.available_permits().min(batch.saturating_sub(permits.num_permits()));
        if let Ok(more) = slots.clone().try_acquire_many_owned(u32::try_from(extra).unwrap_or(0)) {
            permits.merge(more);
        }
        // Seen before claiming, so a wake during the claim is not missed.
        wake.borrow_and_update();
        let limit = i64::try_from(permits.num_permits()).unwrap_or(1);
        let started = std::time::Instant::now();
        let claimed = queries::job_claim(&shared.db, &queue, limit, &shared.id, shared.config.lease).await;
        METRICS.claim.observe(started.elapsed());
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(queue, error = %err, "claiming jobs failed; retrying after the poll interval");
                drop(permits);
                if sleep_or_stop(&shared, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        if jobs.is_empty() {
            drop(permits);
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = wake.changed() => {}
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
            }
            continue;
        }
        METRICS.claimed.fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for job in jobs {
            let permit = permits.split(1).expect("no more jobs are claimed than slots are held");
            tokio::spawn(run_job(shared.clone(), job, permit));
        }
        // Slots held for jobs that were not there go back.
        drop(permits);
    }
}

async fn run_job(shared: Arc<Shared>, job: Job, permit: OwnedSemaphorePermit) {
    if let Some(change) = executor::execute(job, &shared.registry, &shared.db, &shared.running).await {
        // Sending waits when the completer is behind: back-pressure, not an unbounded buffer.
        shared.completions.send(change).await.ok();
    }
    // The shared state goes before the slot: once every slot is back, nothing holds it.
    drop(shared);
    drop(permit);
}

/// Sleeps one poll interval; returns true if the shutdown came first.
async fn sleep_or_stop(shared: &Shared, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = shutdown.wait() => true,
        _ = tokio::time::sleep(shared.config.poll_interval) => false,
    }
}
