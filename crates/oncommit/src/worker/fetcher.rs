//! One queue's claim loop: claims as many jobs as it has free slots, in one statement, and
//! waits for a wake-up when the queue is empty: a commit in this process, a NOTIFY naming
//! the queue, or the maintenance tick seeing work there. It does not poll by itself: the
//! tick asks once for all queues, so an idle worker costs one statement per poll interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Shared;
use super::executor;
use super::outage::Backoff;
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
    let Some(mut queue_wake) = shared.wakers.receiver(&queue) else { return };
    let mut local_wake = shared.db.wake_receiver();
    let mut backoff = Backoff::new(Duration::from_millis(100), shared.config.poll_interval.max(Duration::from_secs(5)));
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
        queue_wake.borrow_and_update();
        local_wake.borrow_and_update();
        let limit = i64::try_from(permits.num_permits()).unwrap_or(1);
        let sent = Instant::now();
        let claimed = queries::job_claim(&shared.services, &queue, limit, &shared.id, shared.config.lease).await;
        METRICS.claim.observe(sent.elapsed());
        let rows = match claimed {
            Ok(rows) => {
                shared.outage.ok();
                backoff.reset();
                rows
            }
            Err(err) => {
                // The claim may have committed with its reply lost: those jobs are not in
                // `held`, so their leases are not renewed, and they are rescued.
                shared.outage.failed("claiming jobs", &err);
                drop(permits);
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        if rows.is_empty() {
            drop(permits);
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = queue_wake.changed() => {}
                _ = local_wake.changed() => {}
            }
            continue;
        }
        METRICS.claimed.fetch_add(rows.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for row in rows {
            let permit = permits.split(1).expect("no more jobs are claimed than slots are held");
            let lease_lost = shared.held.claimed(row.job.id.0, row.job.attempt, sent, shared.config.lease);
            match row.problem {
                None => {
                    tokio::spawn(run_job(shared.clone(), row.job, lease_lost, permit));
                }
                Some(problem) => {
                    tracing::error!(job = row.job.id.0, problem, "a claimed job's row cannot be decoded; failing it");
                    let change = executor::unrunnable(&row.job, problem);
                    tokio::spawn(finish(shared.clone(), change, permit));
                }
            }
        }
        // Slots held for jobs that were not there go back.
        drop(permits);
    }
}

async fn run_job(
    shared: Arc<Shared>,
    job: Job,
    lease_lost: tokio::sync::watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let id = job.id.0;
    let lease = (lease_lost, shared.config.lease);
    match executor::execute(job, &shared.registry, &shared.db, &shared.held, lease).await {
        Some(change) => finish(shared, change, permit).await,
        // Completed in the task's own transaction.
        None => shared.held.release([id]),
    }
}

/// Hands a job's outcome to the completer. Sending waits when the completer is behind:
/// back-pressure (the slot stays taken), not an unbounded buffer.
async fn finish(shared: Arc<Shared>, change: crate::queries::Transition, permit: OwnedSemaphorePermit) {
    shared.completions.send(change).await.ok();
    // The shared state goes before the slot: once every slot is back, nothing holds it.
    drop(shared);
    drop(permit);
}
