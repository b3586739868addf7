//! The worker's background services: the heartbeat (leases of the jobs held in memory,
//! liveness, cancellations), and the maintenance tick (promoting due jobs, waking queues
//! with work, rescuing expired leases, and — on the elected leader only — periodic jobs
//! and pruning).
//!
//! An idle worker costs about one transaction per poll interval (the tick), one per
//! 5 s (the leader election) and one per heartbeat interval (its liveness row).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::held::Stop;
use super::outage::Backoff;
use crate::periodic;
use crate::queries;
use crate::shutdown::Shutdown;

/// The name of the leadership that runs periodic jobs and pruning.
pub(crate) const LEADERSHIP: &str = "oncommit";

/// Renews the leases of the jobs this worker holds, records that it is alive, and stops
/// jobs whose cancel was asked. A failed renewal is retried soon (with backoff) rather than
/// a whole interval later, while the leases still run.
pub(crate) async fn heartbeat(shared: Arc<Shared>, mut stop: Shutdown) {
    let interval = shared.config.heartbeat_interval;
    let mut backoff = Backoff::new(Duration::from_millis(100), interval);
    let mut alive_at: Option<Instant> = None;
    loop {
        let mut failed = false;
        let ids = shared.held.to_renew();
        if !ids.is_empty() {
            let sent = Instant::now();
            match queries::job_heartbeat(&shared.services, &shared.id, &ids, shared.config.lease).await {
                Ok(rows) => {
                    shared.outage.ok();
                    for id in shared.held.renewed(&ids, &rows, sent, shared.config.lease) {
                        shared.held.stop(id, Stop::Cancel);
                    }
                }
                Err(err) => {
                    shared.outage.failed("renewing leases", &err);
                    failed = true;
                }
            }
        }
        shared.held.expire(Instant::now());
        if alive_at.is_none_or(|t| t.elapsed() >= interval) && !failed {
            let queues = shared.queues_json.as_str();
            match queries::worker_heartbeat(&shared.quiet, &shared.id, &shared.hostname, shared.pid, queues).await {
                Ok(()) => {
                    alive_at = Some(Instant::now());
                    if let Err(err) = shared.activity.flush(&shared.quiet).await {
                        tracing::debug!(error = %err, "recording queue activity failed; kept for the next heartbeat");
                    }
                }
                Err(err) => {
                    shared.outage.failed("recording the worker heartbeat", &err);
                    failed = true;
                }
            }
        }
        let wait = if failed {
            backoff.next_delay()
        } else {
            backoff.reset();
            interval
        };
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The maintenance tick, at least once per poll interval and when the next job falls due:
/// one statement promotes due jobs and says which queues have work (their claim loops are
/// woken) and whether a lease expired (then the rescue runs). The leadership is renewed on
/// its own cadence; the leader enqueues periodic jobs when due and prunes.
pub(crate) async fn maintain(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let config = &shared.config;
    // At most 5 s apart: after an outage, the worker finds its database again within seconds.
    let mut backoff = Backoff::new(Duration::from_millis(100), config.poll_interval.max(Duration::from_secs(5)));
    let mut last_prune: Option<Instant> = None;
    // The pruning pass in progress, if any: it runs beside the tick, not in its way.
    let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
    let mut leader_until: Option<Instant> = None;
    let mut next_election = Instant::now();
    let mut settled_periods = std::collections::HashMap::new();
    loop {
        let mut sleep = config.poll_interval;
        match queries::job_tick(&shared.quiet, &shared.queue_names).await {
            Ok(tick) => {
                shared.outage.ok();
                backoff.reset();
                for queue in &tick.wake {
                    shared.wakers.wake(queue);
                }
                if tick.expired_leases {
                    rescue(&shared).await;
                }
                if let Some(ms) = tick.next_due_ms {
                    sleep = sleep.min(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
                }
                // A full promotion batch: more may be due right now.
                if tick.promoted >= 1000 {
                    sleep = Duration::ZERO;
                }
            }
            Err(err) => {
                shared.outage.failed("looking for due jobs", &err);
                sleep = backoff.next_delay();
            }
        }
        if Instant::now() >= next_election {
            let ttl = config.leader_ttl();
            let asked = Instant::now();
            match queries::leader_attempt_elect(&shared.quiet, LEADERSHIP, &shared.id, ttl).await {
                Ok(leads) => {
                    leader_until = leads.then_some(asked + ttl);
                    next_election = asked + ttl / 2;
                }
                Err(err) => {
                    shared.outage.failed("electing a leader", &err);
                    next_election = Instant::now() + sleep.max(Duration::from_millis(100));
                }
            }
        }
        let leader = leader_until.is_some_and(|until| Instant::now() < until);
        if leader {
            if let Err(err) = periodic::enqueue_due(&shared.quiet, &shared.periodic, &mut settled_periods).await {
                tracing::warn!(error = %err, "enqueueing periodic jobs failed");
            }
            let idle = pruning.as_ref().is_none_or(tokio::task::JoinHandle::is_finished);
            if idle && last_prune.is_none_or(|t| t.elapsed() >= config.prune_interval) {
                last_prune = Some(Instant::now());
                pruning = Some(tokio::spawn(prune(shared.clone(), shutdown.clone())));
            }
            if !shared.periodic.is_empty() {
                sleep = sleep.min(periodic::next_in(&shared.periodic));
            }
        }
        sleep = sleep.min(next_election.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    // A pass stops between batches at the shutdown; a vacuum in progress is not waited
    // for beyond the query timeout (the server finishes or abandons it by itself).
    if let Some(mut pass) = pruning
        && tokio::time::timeout(config.query_timeout(), &mut pass).await.is_err()
    {
        pass.abort();
    }
}

async fn rescue(shared: &Shared) {
    match queries::job_rescue(&shared.quiet).await {
        Ok(queues) if !queues.is_empty() => {
            tracing::warn!(queues = ?queues, "rescued jobs whose worker stopped renewing its lease");
            for queue in &queues {
                shared.wakers.wake(queue);
            }
        }
        Ok(_) => {}
        Err(err) => shared.outage.failed("rescuing jobs", &err),
    }
}

/// Rows each pruning statement deletes at most (of completed jobs, and as many of failed
/// and cancelled ones): short statements, so other writers get their turns between them.
const PRUNE_BATCH: i64 = 5_000;

/// One pruning pass: deletes finished jobs past their retention, batch after batch, until
/// none is left (so pruning keeps up with any throughput, not a fixed number of rows per
/// interval), or the shutdown.
async fn prune(shared: Arc<Shared>, shutdown: Shutdown) {
    let retention = shared.config.retention;
    let started = Instant::now();
    let mut pruned = 0;
    loop {
        let n = match queries::job_prune(&shared.quiet, retention.completed, retention.discarded, PRUNE_BATCH).await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, pruned, "pruning jobs failed; the next pass goes on");
                break;
            }
        };
        pruned += n;
        // Fewer than a batch: nothing is left past its retention.
        if n < PRUNE_BATCH as u64 || shutdown.is_triggered() {
            break;
        }
        // Between batches, whoever waits for the database goes first.
        tokio::task::yield_now().await;
    }
    if pruned > 0 {
        tracing::info!(pruned, took = ?started.elapsed(), "pruned finished jobs past their retention");
    }
    // Pruning frees space only for a vacuum to hand back; if autovacuum is off or lags, the
    // leader does it (`table_vacuum_if_needed` says when), on the busy pool: a vacuum of a
    // large table takes as long as it takes, and the tick must not wait for it.
    let started = Instant::now();
    match queries::table_vacuum_if_needed(&shared.services, shared.config.prune_interval * 2).await {
        Ok(true) => tracing::info!(took = ?started.elapsed(), "vacuumed the jobs table (autovacuum had not)"),
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "vacuuming the jobs table failed; is autovacuum on?"),
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
