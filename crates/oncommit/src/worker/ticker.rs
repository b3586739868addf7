//! The tick duty, on every worker: at least once per poll interval and when the next job
//! falls due, one statement promotes due jobs, says which queues have work (their claim
//! loops are woken) and whether a lease expired (then the rescue runs). An idle worker
//! costs one transaction per poll interval here.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::outage::Backoff;
use crate::queries;
use crate::shutdown::Shutdown;

/// Promotions per tick at most (`job_tick`): a full batch means more may be due now.
const PROMOTE_BATCH: usize = 1000;

pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: Shutdown) {
    let config = &shared.config;
    // At most 5 s apart: after an outage, the worker finds its database again within seconds.
    let mut backoff = Backoff::new(Duration::from_millis(100), config.poll_interval.max(Duration::from_secs(5)));
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
                if tick.promoted >= PROMOTE_BATCH {
                    sleep = Duration::ZERO;
                }
            }
            Err(err) => {
                shared.outage.failed("looking for due jobs", &err);
                sleep = backoff.next_delay();
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Returns the jobs whose worker stopped renewing their leases to their queues, and wakes
/// those queues' claim loops.
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
