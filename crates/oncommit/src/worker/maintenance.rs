//! The worker's background services: heartbeats (leases, liveness, cancellations), and
//! maintenance (promoting due jobs, rescuing expired leases, and — on the elected leader
//! only — periodic jobs and pruning).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::executor::Stop;
use crate::periodic;
use crate::queries;
use crate::shutdown::Shutdown;

/// The name of the leadership that runs periodic jobs and pruning.
const LEADERSHIP: &str = "oncommit";

/// Renews this worker's leases and its liveness row, and stops jobs whose cancel was asked.
pub(crate) async fn heartbeat(shared: Arc<Shared>, mut stop: Shutdown) {
    loop {
        match queries::job_heartbeat(&shared.db, &shared.id, shared.config.lease).await {
            Ok(cancelled) => {
                for id in cancelled {
                    shared.running.stop(id, Stop::Cancel);
                }
            }
            Err(err) => tracing::warn!(error = %err, "renewing leases failed"),
        }
        let queues = shared.queues_json.as_str();
        if let Err(err) = queries::worker_heartbeat(&shared.db, &shared.id, &shared.hostname, shared.pid, queues).await
        {
            tracing::warn!(error = %err, "recording the worker heartbeat failed");
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(shared.config.heartbeat_interval) => {}
        }
    }
}

/// Promotes due jobs and rescues expired leases; as leader, enqueues periodic jobs and
/// prunes old ones. Sleeps until the next job falls due or the poll interval passes.
pub(crate) async fn maintain(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let config = &shared.config;
    let mut last_prune: Option<Instant> = None;
    let mut wake = shared.db.wake_receiver();
    loop {
        wake.borrow_and_update();
        let promoted = queries::job_promote(&shared.db).await;
        let rescued = queries::job_rescue(&shared.db).await;
        match (&promoted, &rescued) {
            (Ok(p), Ok(r)) if !p.is_empty() || !r.is_empty() => shared.db.wake(),
            (Err(err), _) | (_, Err(err)) => tracing::warn!(error = %err, "promoting or rescuing jobs failed"),
            _ => {}
        }
        if let Ok(n) = &rescued {
            if !n.is_empty() {
                tracing::warn!(queues = ?n, "rescued jobs whose worker stopped renewing its lease");
            }
        }
        let leader = queries::leader_attempt_elect(&shared.db, LEADERSHIP, &shared.id, config.leader_ttl())
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "leader election failed");
                false
            });
        if leader {
            if let Err(err) = periodic::enqueue_due(&shared.db, &shared.periodic).await {
                tracing::warn!(error = %err, "enqueueing periodic jobs failed");
            }
            if last_prune.is_none_or(|t| t.elapsed() >= config.prune_interval) {
                last_prune = Some(Instant::now());
                let pruned =
                    queries::job_prune(&shared.db, config.retention.completed, config.retention.discarded, 10_000);
                match pruned.await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(pruned = n, "pruned finished jobs past their retention"),
                    Err(err) => tracing::warn!(error = %err, "pruning jobs failed"),
                }
                queries::worker_prune(&shared.db, config.lease * 4).await.ok();
            }
        }
        let next_due = queries::job_next_due_in(&shared.db).await.ok().flatten();
        let mut sleep = next_due.map_or(config.poll_interval, |d| d.min(config.poll_interval));
        if leader && !shared.periodic.is_empty() {
            sleep = sleep.min(periodic::next_in(&shared.periodic));
        }
        // A floor, so a due job another worker is promoting right now does not spin us.
        let sleep = sleep.max(Duration::from_millis(10));
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = wake.changed() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
