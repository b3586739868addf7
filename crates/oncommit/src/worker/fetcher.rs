//! One queue's claim loop: claims as many jobs as it has free slots, in one statement, and
//! waits for a wake-up when the queue is empty: a commit in this process, a NOTIFY naming
//! the queue, or the maintenance tick seeing work there. It does not poll by itself: the
//! tick asks once for all queues, so an idle worker costs one statement per poll interval.
//!
//! A queue holds up to `concurrency + prefetch` jobs (claimed, waiting, running, or with
//! their outcome being written) and runs up to `concurrency` of them (`slots`). The
//! prefetched ones wait here, in claim order, with their leases renewed. Prefetch is for
//! backlogs: once a claim comes back short, the queue claims only into free slots until a
//! claim comes back full again, so a burst after a lull spreads over the fleet's free
//! slots instead of queueing in the first worker to wake (see `slots` for the other half).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::Shared;
use super::completer::Finished;
use super::executor;
use super::held::Stop;
use super::outage::Backoff;
use super::slots::Slots;
use crate::job::Job;
use crate::metrics;
use crate::queries::{self, Claim};
use crate::shutdown::Shutdown;

pub(crate) async fn run(
    shared: Arc<Shared>,
    queue: String,
    slots: Arc<Slots>,
    line: mpsc::UnboundedSender<Claimed>,
    mut shutdown: Shutdown,
) {
    let batch = shared.config.batch_size;
    let Some(mut queue_wake) = shared.wakers.receiver(&queue) else { return };
    let mut local_wake = shared.db.wake_receiver();
    let mut written = shared.written.subscribe();
    // Whether the queue is paused, limited or fair (then claimed under its row's lock);
    // kept up to date by each claim.
    let mut route = queries::Route::Fast;
    // Whether the last claim came back short: the queue holds less than this worker asked
    // for, so what comes next goes to free slots only, never to wait in this worker while
    // another one may have a slot free (a burst after a drain of short jobs, found by
    // every woken worker at once). A full claim says there is a backlog: prefetch again.
    let mut shallow = true;
    let mut backoff = Backoff::new(Duration::from_millis(100), shared.config.poll_interval.max(Duration::from_secs(5)));
    loop {
        // Under load, wait for several slots to be free before claiming, so a busy queue
        // claims in batches instead of one job per round trip as each slot frees: a quarter
        // of the target, or half the prefetch if more, at most a batch. Half the prefetch
        // still waits here when the claim is sent, enough for the slots to keep busy while
        // it is on its way. The permits above the target are waited for too, then given
        // back: the queue holds no more than the target.
        let target = slots.target();
        let want = (target / 4).max(slots.prefetch_of(target) / 2).min(batch).max(1);
        let reserve = slots.held_max - target;
        let mut permits = tokio::select! {
            biased;
            _ = shutdown.wait() => return,
            permits = slots.held.clone().acquire_many_owned(u32::try_from(want + reserve).unwrap_or(u32::MAX)) => match permits {
                Ok(permits) => permits,
                Err(_) => return,
            },
        };
        drop(permits.split(reserve));
        let extra = slots.held.available_permits().saturating_sub(reserve).min(batch.saturating_sub(want));
        if let Ok(more) = slots.held.clone().try_acquire_many_owned(u32::try_from(extra).unwrap_or(0)) {
            permits.merge(more);
        }
        // Permits freed by a shutdown's releases must not claim those jobs again.
        if shutdown.is_triggered() {
            return;
        }
        if shallow && slots.running.available_permits() == 0 {
            // Nothing to claim for until one of this worker's slots frees.
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                free = slots.running.acquire() => drop(free),
            }
        }
        if !*shared.schema_usable.borrow() {
            let mut usable = shared.schema_usable.subscribe();
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = usable.wait_for(|ok| *ok) => {}
            }
        }
        // Seen before claiming, so a wake during the claim is not missed.
        queue_wake.borrow_and_update();
        local_wake.borrow_and_update();
        written.borrow_and_update();
        let mut limit = i64::try_from(permits.num_permits()).unwrap_or(1);
        if route == (queries::Route::Turns { limited: true }) || shallow {
            // A limited queue's jobs go to free slots, not to wait here while the limit
            // keeps other workers from running them; so do a shallow queue's.
            limit = limit.min(i64::try_from(slots.running.available_permits()).unwrap_or(0).max(1));
        }
        let sent = Instant::now();
        let claimed =
            queries::job_claim(&shared.services, &queue, limit, &shared.id, shared.config.lease, &mut route).await;
        let took = sent.elapsed();
        let rows = match claimed {
            Ok(Claim::Claimed(rows)) => {
                shared.outage.ok();
                backoff.reset();
                shallow = (rows.len() as i64) < limit;
                slots.claimed(rows.iter().map(|row| row.job.task.as_str()));
                rows
            }
            Ok(held_back) => {
                // Paused, or at a limit: wait for what may change that, not for new jobs.
                shared.outage.ok();
                backoff.reset();
                metrics::claimed(0, took);
                drop(permits);
                let reopens = match held_back {
                    Claim::Full { retry_in } => retry_in,
                    _ => None,
                };
                let limited = matches!(held_back, Claim::Full { .. });
                // SQLite has no NOTIFY: a resume or a new limit in this process comes as a
                // local wake-up (as do its enqueues, so a held-back queue looks again then).
                let local = !on_backend!(shared.db.backend(), const NOTIFIES);
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return,
                    // A NOTIFY (resumed, limit changed) or the tick.
                    _ = queue_wake.changed() => {}
                    _ = local_wake.changed(), if local => {}
                    // This worker's running jobs of the queue were recorded as finished.
                    _ = written.changed(), if limited => {}
                    // The rate window reopens.
                    _ = tokio::time::sleep(reopens.unwrap_or_default()), if reopens.is_some() => {}
                }
                continue;
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
            metrics::claimed(0, took);
            drop(permits);
            // About to sleep: record it, so enqueues from SQL wake this worker, then claim
            // once more (what committed before the record is found by that claim).
            if shared.records_sleep() && !shared.asleep().contains(&queue) {
                match queries::sleepers::sleeper_record(&shared.services, &queue, &shared.id).await {
                    Ok(()) => {
                        shared.asleep().insert(queue.clone());
                        continue;
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, queue, "recording the sleep failed; the poll finds new jobs")
                    }
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.wait() => return,
                _ = queue_wake.changed() => {}
                _ = local_wake.changed() => {}
            }
            continue;
        }
        metrics::claimed(rows.len(), took);
        // Every slot asked for was filled: the queue has a backlog, this worker will claim
        // again as soon as it can, and enqueuers need not NOTIFY it.
        if rows.len() as i64 >= limit && shared.asleep().contains(&queue) {
            match queries::sleepers::sleeper_forget(&shared.services, &queue, &shared.id).await {
                Ok(()) => {
                    shared.asleep().remove(&queue);
                }
                Err(err) => tracing::debug!(error = %err, queue, "forgetting the sleep failed; enqueuers keep waking"),
            }
        }
        // The claim's reply comes in no particular order; jobs take their turns in the order
        // they go down the line, which must be the claim order.
        let mut rows = rows;
        rows.sort_by_key(|row| (row.job.priority, row.job.run_at, row.job.id.0));
        for row in rows {
            let permit = permits.split(1).expect("no more jobs are claimed than slots are held");
            let lease_lost = shared.held.claimed(row.job.id.0, row.job.attempt, sent, shared.config.lease);
            match row.problem {
                None => {
                    if let Err(back) = line.send(Claimed { job: row.job, lease_lost, slot: permit }) {
                        // The shutdown closed the line while this claim was in flight.
                        tokio::spawn(give_back(shared.clone(), back.0));
                    }
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

/// A claimed job on its way to a slot.
pub(crate) struct Claimed {
    job: Job,
    /// Turns true if the worker loses the job's lease.
    lease_lost: watch::Receiver<bool>,
    /// Its place among the jobs the queue holds: a `running` row.
    slot: OwnedSemaphorePermit,
}

/// Starts a queue's claimed jobs one by one in claim order (the order they come down
/// `line`), each when a slot frees: prefetched jobs wait here. At shutdown the jobs still
/// waiting go back to the queue at once, unused.
pub(crate) async fn start_in_turn(
    shared: Arc<Shared>,
    slots: Arc<Slots>,
    mut line: mpsc::UnboundedReceiver<Claimed>,
    mut shutdown: Shutdown,
) {
    loop {
        let claimed = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            claimed = line.recv() => match claimed {
                Some(claimed) => claimed,
                None => return,
            },
        };
        let turn = tokio::select! {
            biased;
            _ = shutdown.wait() => None,
            turn = slots.running.clone().acquire_owned() => turn.ok(),
        };
        match turn {
            Some(turn) => {
                tokio::spawn(run_job(shared.clone(), slots.clone(), claimed, turn));
            }
            None => {
                give_back(shared.clone(), claimed).await;
                break;
            }
        }
    }
    line.close();
    while let Some(claimed) = line.recv().await {
        give_back(shared.clone(), claimed).await;
    }
}

/// Runs a claimed job in its slot (`_turn`), unless it was cancelled or lost while it waited.
async fn run_job(shared: Arc<Shared>, slots: Arc<Slots>, claimed: Claimed, _turn: OwnedSemaphorePermit) {
    let id = claimed.job.id.0;
    if *claimed.lease_lost.borrow() || shared.held.stopped(id).is_some() {
        return give_back(shared, claimed).await;
    }
    let lease = (claimed.lease_lost, shared.config.lease);
    let task = claimed.job.task.clone();
    let started = Instant::now();
    let change =
        executor::execute(claimed.job, &shared.registry, &shared.db, &shared.held, lease, &shared.activity).await;
    slots.ran(&task, started.elapsed());
    match change {
        Some(change) => finish(shared, change, claimed.slot).await,
        // Completed in the task's own transaction.
        None => shared.held.release([id]),
    }
}

/// Ends a claimed job that never started: cancelled if a user asked, else back to the
/// queue without using up an attempt; left alone if its lease was lost (rescued meanwhile,
/// it is someone else's).
async fn give_back(shared: Arc<Shared>, claimed: Claimed) {
    let id = claimed.job.id.0;
    if *claimed.lease_lost.borrow() {
        shared.held.release([id]);
        return;
    }
    let why = shared.held.stopped(id).unwrap_or(Stop::Release);
    finish(shared, executor::unstarted(&claimed.job, why), claimed.slot).await;
}

/// Hands a job's outcome to the completer, with its slot: the slot comes back once the
/// outcome is written. Sending waits when the completer is behind: back-pressure, not an
/// unbounded buffer.
async fn finish(shared: Arc<Shared>, change: crate::queries::Transition, slot: OwnedSemaphorePermit) {
    // The shared state goes before the slot can come back: once every slot is back,
    // nothing holds it.
    let completions = shared.completions.clone();
    drop(shared);
    completions.send(Finished { change, slot }).await.ok();
}
