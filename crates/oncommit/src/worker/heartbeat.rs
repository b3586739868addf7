//! The heartbeat duty: renews the leases of the jobs this worker holds, records that it is
//! alive (its row in the workers table, and the queue activity it counted), and stops jobs
//! whose cancel was asked. It outlives the claim loops: running jobs keep their leases
//! while they drain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::held::Stop;
use super::outage::Backoff;
use crate::queries;
use crate::shutdown::Shutdown;

/// Beats every heartbeat interval; a failed renewal is retried soon (with backoff) rather
/// than a whole interval later, while the leases still run.
pub(crate) async fn run(shared: Arc<Shared>, mut stop: Shutdown) {
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
                    // Checked at start (`wait_for_database`), then after each beat that
                    // records the worker alive: one small read, so a contract migration or
                    // a failover to a server migrated differently stops the claims within
                    // a beat.
                    check_schema(&shared).await;
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

/// Reads the schema's status and lets the claim loops claim or not (when it cannot be
/// read, the next beat tries again).
async fn check_schema(shared: &Shared) {
    let status = match shared.quiet.schema_status().await {
        Ok(status) => status,
        Err(err) => {
            tracing::debug!(error = %err, "reading the schema's version failed; checked again at the next beat");
            return;
        }
    };
    let usable = status.check().is_ok();
    let was = shared.schema_usable.send_replace(usable);
    if usable && !was {
        tracing::info!(%status, "the schema suits this worker again; claiming");
    } else if !usable && was {
        tracing::warn!(%status, "the worker claims nothing until the schema suits it");
    }
}
