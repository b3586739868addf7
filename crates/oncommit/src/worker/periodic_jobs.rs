//! The periodic-jobs duty, on the leader: enqueues each periodic job when its period or
//! cron occurrence comes (`periodic::enqueue_due`: the claim of the period and the job
//! commit together, so even two leaders at once enqueue it once).

use std::collections::HashMap;
use std::sync::Arc;

use super::Shared;
use super::leader::Leadership;
use crate::periodic;
use crate::shutdown::Shutdown;

pub(crate) async fn run(shared: Arc<Shared>, mut leadership: Leadership, mut shutdown: Shutdown) {
    if shared.periodic.is_empty() {
        return;
    }
    // The latest period known claimed, per name: a period costs one transaction.
    let mut settled = HashMap::new();
    loop {
        if !leadership.wait(&mut shutdown).await {
            return;
        }
        if let Err(err) = periodic::enqueue_due(&shared.quiet, &shared.periodic, &mut settled).await {
            tracing::warn!(error = %err, "enqueueing periodic jobs failed");
        }
        // At the next period; a failure is tried again at least every poll interval.
        let sleep = periodic::next_in(&shared.periodic).min(shared.config.poll_interval);
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}
