//! The worker's background duties under one start/stop contract (River's maintenance
//! services are the model). A duty is a task started with the worker that runs until its
//! group's shutdown fires, then returns between two statements (one in flight is bounded by
//! the query timeout). A group stops with one deadline: a duty still running then is
//! aborted, and named in the log.

use std::future::Future;

use tokio::task::JoinSet;

use crate::shutdown::{Shutdown, ShutdownTrigger};

/// A group of duties that stop together.
pub(crate) struct Services {
    /// The duties, each returning its name when it ends.
    running: JoinSet<&'static str>,
    /// The names of those started and not yet ended: what a stop past its deadline aborts.
    names: Vec<&'static str>,
    /// Fires `shutdown`.
    stop: ShutdownTrigger,
    /// What each duty watches to know when to end.
    shutdown: Shutdown,
}

impl Services {
    pub(crate) fn new() -> Services {
        let (stop, shutdown) = Shutdown::new();
        Services { running: JoinSet::new(), names: Vec::new(), stop, shutdown }
    }

    /// Starts the duty `name`: `duty(shutdown)` runs until that shutdown fires.
    pub(crate) fn start<F>(&mut self, name: &'static str, duty: impl FnOnce(Shutdown) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let run = duty(self.shutdown.clone());
        self.names.push(name);
        self.running.spawn(async move {
            run.await;
            name
        });
    }

    /// Stops every duty of the group: fires their shutdown and waits for them until
    /// `deadline`; those still running then are aborted.
    pub(crate) async fn stop(mut self, deadline: tokio::time::Instant) {
        self.stop.trigger();
        let names = &mut self.names;
        let running = &mut self.running;
        let all_ended = async {
            while let Some(ended) = running.join_next().await {
                if let Ok(name) = ended {
                    names.retain(|n| *n != name);
                }
            }
        };
        if tokio::time::timeout_at(deadline, all_ended).await.is_err() {
            tracing::warn!(duties = ?self.names, "the worker's duties did not stop in time; aborting them");
            self.running.abort_all();
        }
    }
}
