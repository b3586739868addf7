//! Records finished attempts in batches: whatever finished while the previous batch was
//! being written goes out in the next single statement. Under load the batches grow by
//! themselves; when idle each completion is written at once.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::Db;
use crate::metrics::METRICS;
use crate::queries::{self, Transition};

/// The most state changes written in one statement.
const MAX_BATCH: usize = 1000;

/// Batches written at once: while one waits on its round trip the next is already going, so
/// the database is kept busy. Each job has one pending change, so their order is free.
const IN_FLIGHT: usize = 4;

/// Writes the transitions sent on `rx` until every sender is gone.
pub(crate) async fn run(db: Db, mut rx: mpsc::Receiver<Transition>) {
    let mut writes = tokio::task::JoinSet::new();
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        while writes.len() >= IN_FLIGHT {
            writes.join_next().await;
        }
        let db = db.clone();
        writes.spawn(async move { write(&db, &batch).await });
    }
    while writes.join_next().await.is_some() {}
}

/// Writes one batch, retrying through brief outages. A batch that still cannot be written
/// is dropped with an error: those jobs stay `running` until their leases expire, and then
/// run again, so nothing is lost (they may run twice, as at-least-once promises).
async fn write(db: &Db, batch: &[Transition]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=6 {
        let started = std::time::Instant::now();
        let written = queries::job_set_state_if_running_many(db, batch).await;
        METRICS.complete.observe(started.elapsed());
        match written {
            Ok(changed) => {
                if changed.len() < batch.len() {
                    tracing::warn!(
                        stale = batch.len() - changed.len(),
                        "some jobs were no longer held by this worker (lease expired); their results were not recorded"
                    );
                }
                return;
            }
            Err(err) if attempt < 6 => {
                tracing::warn!(error = %err, attempt, "recording finished jobs failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                tracing::error!(error = %err, jobs = batch.len(), "could not record finished jobs; their leases will expire and they will run again")
            }
        }
    }
}
