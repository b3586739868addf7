//! Records finished attempts in batches: whatever finished while the previous batches were
//! being written goes out in the next single statement. Under load the batches grow by
//! themselves (a small one waits for a write in flight to land, so a busy worker commits a
//! few large batches rather than many small ones); when idle each completion is written at
//! once.
//!
//! A finished job keeps its place (a `held` permit of its queue) until its outcome is
//! written: a place is a `running` row, so claims never race ahead of completions, and the
//! rows a worker has `running` never exceed its slots plus its prefetch. (Freeing the slot
//! when the outcome was merely queued let a busy worker claim thousands of jobs more than
//! it had slots while its completions queued.)
//!
//! A batch that cannot be written is kept and retried with backoff, not dropped: its jobs
//! stay in `held`, so their leases are renewed while the database refuses only writes, and
//! the outcome lands as soon as it accepts them. Meanwhile their slots stay taken: the
//! worker stops claiming (back-pressure). Only at shutdown, after the query timeout, are
//! unwritten batches given up; those jobs are rescued when their leases run out, and run
//! again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::held::Held;
use super::outage::{Backoff, Outage};
use crate::db::Db;
use crate::metrics;
use crate::queries::{self, Transition};
use crate::shutdown::Shutdown;

/// The most state changes written in one statement.
pub(crate) const MAX_BATCH: usize = 1000;

/// A batch this large goes out without waiting for the writes in flight.
const GROUP: usize = 250;

/// Batches written at once: while one waits on its round trip the next is already going, so
/// the database is kept busy. Each job has one pending change, so their order is free.
pub(crate) const IN_FLIGHT: usize = 2;

/// A finished attempt's outcome, with the slot it keeps until the outcome is written.
pub(crate) struct Finished {
    pub(crate) change: Transition,
    pub(crate) slot: OwnedSemaphorePermit,
}

/// Writes the outcomes sent on `rx` until every sender is gone, or `give_up` fires. Each
/// batch written bumps `written`: a queue at its concurrency limit claims again then.
pub(crate) async fn run(
    db: Db,
    mut rx: mpsc::Receiver<Finished>,
    held: Arc<Held>,
    outage: Arc<Outage>,
    written: Arc<watch::Sender<u64>>,
    mut give_up: Shutdown,
) {
    let mut writes = tokio::task::JoinSet::new();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let received = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = give_up.wait() => 0,
        };
        if received == 0 {
            break;
        }
        // While other batches are being written, a small one waits to grow until one of
        // them lands: under load, fewer and larger statements (each one commit); when idle,
        // nothing is in flight and an outcome goes out at once.
        while !writes.is_empty() && batch.len() < GROUP {
            let room = MAX_BATCH - batch.len();
            tokio::select! {
                biased;
                _ = give_up.wait() => break,
                _ = writes.join_next() => break,
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
            }
        }
        while writes.len() >= IN_FLIGHT {
            writes.join_next().await;
        }
        let (db, held, outage, written, give_up) =
            (db.clone(), held.clone(), outage.clone(), written.clone(), give_up.clone());
        writes.spawn(async move {
            write(&db, batch, &held, &outage, give_up).await;
            written.send_modify(|n| *n = n.wrapping_add(1));
        });
    }
    while writes.join_next().await.is_some() {}
}

/// Writes one batch, retrying with backoff until it lands or `give_up` fires; then its slots
/// go back.
async fn write(db: &Db, finished: Vec<Finished>, held: &Held, outage: &Outage, mut give_up: Shutdown) {
    // In id order: the rows are locked in that order, as a dependant's enqueue locks its
    // parents, so the two cannot deadlock.
    let mut finished = finished;
    finished.sort_unstable_by_key(|f| f.change.id);
    let (batch, _slots): (Vec<Transition>, Vec<OwnedSemaphorePermit>) =
        finished.into_iter().map(|f| (f.change, f.slot)).unzip();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        let started = std::time::Instant::now();
        let written = queries::job_set_state_if_running_many(db, &batch).await;
        metrics::completed_batch(started.elapsed());
        match written {
            Ok(changed) => {
                outage.ok();
                if changed.iter().any(|(_, has_dependants)| *has_dependants) {
                    // Their dependants may have become available in that statement: this
                    // process's claim loops look (PostgreSQL's trigger NOTIFYs the others).
                    db.wake();
                }
                if changed.len() < batch.len() {
                    tracing::warn!(
                        stale = batch.len() - changed.len(),
                        "some jobs were no longer held by this worker (lease expired); their results were not recorded"
                    );
                }
                held.release(batch.iter().map(|t| t.id));
                return;
            }
            Err(err) => outage.failed("recording finished jobs", &err),
        }
        tokio::select! {
            _ = give_up.wait() => {
                tracing::error!(jobs = batch.len(), "shutting down with finished jobs not recorded; they will run again once their leases expire");
                return;
            }
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
