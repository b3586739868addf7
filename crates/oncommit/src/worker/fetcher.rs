//! One queue's fetch loop: claims as many jobs as it has free slots, in one statement, and
//! waits for a wake-up (a commit in this process, a NOTIFY, a poll tick) when the queue is
//! empty.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Shared;
use super::executor;
use crate::job::Job;
use crate::queries;
use crate::shutdown::Shutdown;

pub(crate) async fn run(shared: Arc<Shared>, queue: String, slots: Arc<Semaphore>, mut shutdown: Shutdown) {
    let mut wake = shared.db.wake_receiver();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        // Seen before claiming, so a wake during the claim is not missed.
        wake.borrow_and_update();
        let limit = (1 + slots.available_permits()).min(shared.config.batch_size);
        let claimed = queries::job_claim(&shared.db, &queue, limit as i64, &shared.id, shared.config.lease).await;
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(queue, error = %err, "claiming jobs failed; retrying after the poll interval");
                drop(permit);
                if sleep_or_stop(&shared, &mut shutdown).await {
                    return;
                }
                continue;
            }
        };
        if jobs.is_empty() {
            drop(permit);
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = wake.changed() => {}
                _ = tokio::time::sleep(shared.config.poll_interval) => {}
            }
            continue;
        }
        let mut first = Some(permit);
        for job in jobs {
            let permit = match first.take() {
                Some(permit) => permit,
                None => match slots.clone().try_acquire_owned() {
                    Ok(permit) => permit,
                    // Unreachable: only this loop takes slots, and it claimed no more than were free.
                    Err(_) => slots.clone().acquire_owned().await.expect("the queue's semaphore is never closed"),
                },
            };
            tokio::spawn(run_job(shared.clone(), job, permit));
        }
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
