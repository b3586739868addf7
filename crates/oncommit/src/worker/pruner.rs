//! The pruning duty, on the leader: every prune interval, deletes finished jobs past their
//! retention, tends the history of finished jobs (`history`), forgets dead workers, old rate windows and activity, and settles pending jobs
//! whose parents finished unnoticed (the space pruning frees is the vacuum duty's).
//! It runs beside the tick, never in its way.

use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use super::leader::Leadership;
use crate::queries;
use crate::shutdown::Shutdown;

pub(crate) async fn run(shared: Arc<Shared>, mut leadership: Leadership, mut shutdown: Shutdown) {
    loop {
        if !leadership.wait(&mut shutdown).await {
            return;
        }
        prune(&shared, &shutdown).await;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(shared.config.prune_interval) => {}
        }
    }
}

/// Rows each pruning statement deletes at most (of completed jobs, and as many of failed
/// and cancelled ones): short statements, so other writers get their turns between them.
const PRUNE_BATCH: i64 = 5_000;

/// Runs `batch`, a statement that acts on at most `limit` rows and says how many, until it
/// acts on fewer (none is left), the shutdown, or an error (logged, as `what` failing: the
/// next pass goes on); returns the rows acted on. Between batches, whoever waits for the
/// database goes first.
pub(super) async fn in_batches<F, Fut>(what: &str, limit: i64, shutdown: &Shutdown, mut batch: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = crate::Result<u64>>,
{
    let mut done = 0;
    loop {
        match batch().await {
            Ok(n) => {
                done += n;
                if n < u64::try_from(limit).unwrap_or(0) || shutdown.is_triggered() {
                    return done;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, done, "{what} failed; the next pass goes on");
                return done;
            }
        }
        tokio::task::yield_now().await;
    }
}

/// One pruning pass: deletes finished jobs past their retention, batch after batch, until
/// none is left (so pruning keeps up with any throughput, not a fixed number of rows per
/// interval), or the shutdown; then the upkeep that goes with it.
async fn prune(shared: &Shared, shutdown: &Shutdown) {
    let retention = shared.config.retention;
    let started = Instant::now();
    let pruned = in_batches("pruning jobs", PRUNE_BATCH, shutdown, || {
        queries::job_prune(&shared.quiet, retention.completed, retention.discarded, PRUNE_BATCH)
    })
    .await;
    if pruned > 0 {
        tracing::info!(pruned, took = ?started.elapsed(), "pruned finished jobs past their retention");
    }
    if shutdown.is_triggered() {
        return;
    }
    let started = Instant::now();
    let tended = super::history::tend(&shared.quiet, retention, shutdown).await;
    if tended != super::history::Tended::default() {
        tracing::info!(
            moved = tended.moved,
            created = tended.created,
            dropped = tended.dropped,
            counted = tended.counted,
            pruned = tended.pruned,
            took = ?started.elapsed(),
            "tended the history of finished jobs"
        );
    }
    if shutdown.is_triggered() {
        return;
    }
    queries::worker_prune(&shared.quiet, shared.config.lease * 4).await.ok();
    queries::rate_windows_prune(&shared.quiet).await.ok();
    crate::activity::prune(&shared.quiet).await.ok();
    // The net under the dependency trigger: nothing stays pending once its parents are done.
    match queries::job_sweep_pending(&shared.quiet).await {
        Ok(0) => {}
        Ok(settled) => tracing::warn!(settled, "settled pending jobs whose parents had finished unnoticed"),
        Err(err) => tracing::warn!(error = %err, "settling pending jobs failed; the next pass goes on"),
    }
}
