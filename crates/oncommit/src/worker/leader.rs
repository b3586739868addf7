//! The leadership: one worker of the fleet at a time runs the duties that must not run on
//! every worker (periodic jobs, pruning). The election duty takes or renews it every half
//! of its time to live, on every worker, and publishes it; the leader's duties wait for it
//! and look at it again before each action.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Shared;
use super::outage::Backoff;
use crate::queries;
use crate::shutdown::Shutdown;

/// The name of the leadership that runs periodic jobs and pruning.
pub(crate) const LEADERSHIP: &str = "oncommit";

/// Whether this worker leads, as the election duty last learnt it: until when.
#[derive(Clone)]
pub(crate) struct Leadership(watch::Receiver<Option<Instant>>);

impl Leadership {
    /// The leadership the election duty publishes through `until` (none at first).
    pub(crate) fn new() -> (watch::Sender<Option<Instant>>, Leadership) {
        let (until, leadership) = watch::channel(None);
        (until, Leadership(leadership))
    }

    /// Whether this worker leads now.
    pub(crate) fn leading(&self) -> bool {
        self.0.borrow().is_some_and(|until| Instant::now() < until)
    }

    /// Waits until this worker leads; false when `shutdown` fires first.
    pub(crate) async fn wait(&mut self, shutdown: &mut Shutdown) -> bool {
        while !self.leading() {
            tokio::select! {
                _ = shutdown.wait() => return false,
                changed = self.0.changed() => {
                    if changed.is_err() {
                        // The election ended: only the shutdown ends that.
                        shutdown.wait().await;
                        return false;
                    }
                }
            }
        }
        !shutdown.is_triggered()
    }
}

/// The election duty: takes or keeps the leadership for its time to live, every half of
/// it (sooner, with backoff, after a failure), and publishes the outcome through `until`.
pub(crate) async fn elect(shared: Arc<Shared>, until: watch::Sender<Option<Instant>>, mut shutdown: Shutdown) {
    let ttl = shared.config.leader_ttl();
    let mut backoff = Backoff::new(Duration::from_millis(100), shared.config.poll_interval.max(Duration::from_secs(5)));
    loop {
        let asked = Instant::now();
        let next = match queries::leader_attempt_elect(&shared.quiet, LEADERSHIP, &shared.id, ttl).await {
            Ok(leads) => {
                backoff.reset();
                until.send_replace(leads.then_some(asked + ttl));
                asked + ttl / 2
            }
            Err(err) => {
                shared.outage.failed("electing a leader", &err);
                Instant::now() + backoff.next_delay()
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
}
