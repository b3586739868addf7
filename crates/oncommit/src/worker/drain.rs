//! [`Worker::drain`]: the worker's queues run to empty in the caller's task, one job at a
//! time, for tests (Oban's `drain_queue`, `rivertest`'s worker). The same claim, execution
//! and completion as a running worker, so what a test sees is what production does.

use std::time::Instant;

use super::Worker;
use super::executor;
use super::held::Held;
use crate::admin::JobSelection;
use crate::error::Result;
use crate::job::JobState;
use crate::queries;

/// What [`Worker::drain`] ran, by the state each attempt left its job in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drained {
    /// Attempts run.
    pub ran: usize,
    /// Attempts that completed their job.
    pub completed: usize,
    /// Attempts that failed and left their job to be retried later (not run by this drain).
    pub retryable: usize,
    /// Attempts that failed their job for good.
    pub failed: usize,
    /// Attempts that cancelled their job.
    pub cancelled: usize,
    /// Attempts that snoozed their job (scheduled again, not run by this drain).
    pub snoozed: usize,
    /// Whether the drain stopped at its limit with jobs still available.
    pub limit_reached: bool,
}

impl Worker {
    /// Runs the jobs available now on this worker's queues, one at a time in claim order
    /// (priority, then due time), until none is left or `limit` attempts ran; jobs that
    /// those jobs enqueue are run too. Jobs scheduled for later (a retry's backoff, a
    /// snooze, a delay) are not waited for. For tests: no background tasks, no leases to
    /// renew (each job's lease is the worker's), and the outcome is written before the next
    /// job is claimed.
    ///
    /// ```no_run
    /// # use oncommit::{Task, TaskContext, TaskError, Worker};
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct SendWelcome { user: i64 }
    /// # impl Task for SendWelcome { const NAME: &'static str = "send_welcome";
    /// #   async fn run(self, _: &mut TaskContext) -> Result<(), TaskError> { Ok(()) } }
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.enqueue(SendWelcome { user: 1 }).await?;
    /// let drained = Worker::new(db.clone()).register::<SendWelcome>().drain(100).await?;
    /// assert_eq!((drained.ran, drained.completed), (1, 1));
    /// # Ok(()) }
    /// ```
    pub async fn drain(self, limit: usize) -> Result<Drained> {
        let activity = crate::activity::ActivityCounter::default();
        let drained = self.drain_counting(limit, &activity).await;
        // What ran is counted whether or not the drain ended well.
        activity.flush(&self.db).await?;
        drained
    }

    async fn drain_counting(&self, limit: usize, activity: &crate::activity::ActivityCounter) -> Result<Drained> {
        let queues: Vec<String> = if self.queues.is_empty() {
            vec![crate::defaults::QUEUE.to_owned()]
        } else {
            self.queues.iter().map(|(q, _)| q.clone()).collect()
        };
        for queue in &queues {
            crate::enqueue::check_queue_name(queue)?;
        }
        let lease = self.config.lease;
        let worker_id = format!("drain-{}-{:04x}", std::process::id(), fastrand::u16(..));
        let held = Held::default();
        let mut drained = Drained::default();
        'drain: while drained.ran < limit {
            for queue in &queues {
                let sent = Instant::now();
                // A paused or limited queue gives what its controls allow (perhaps nothing).
                let mut route = queries::Route::Fast;
                let mut claimed = match queries::job_claim(&self.db, queue, 1, &worker_id, lease, &mut route).await? {
                    queries::Claim::Claimed(rows) => rows,
                    queries::Claim::Paused | queries::Claim::Full { .. } => Vec::new(),
                };
                crate::metrics::claimed(claimed.len(), sent.elapsed());
                let Some(row) = claimed.pop() else {
                    continue;
                };
                let lease_lost = held.claimed(row.job.id.0, row.job.attempt, sent, lease);
                let change = match row.problem {
                    Some(problem) => Some(executor::unrunnable(&row.job, problem)),
                    None => {
                        executor::execute(row.job, &self.registry, &self.db, &held, (lease_lost, lease), activity).await
                    }
                };
                drained.ran += 1;
                match &change {
                    // Completed in the task's own transaction.
                    None => drained.completed += 1,
                    Some(change) => {
                        queries::job_set_state_if_running_many(&self.db, std::slice::from_ref(change)).await?;
                        held.release([change.id]);
                        match change.state {
                            JobState::Completed => drained.completed += 1,
                            JobState::Retryable => drained.retryable += 1,
                            JobState::Failed => drained.failed += 1,
                            JobState::Cancelled => drained.cancelled += 1,
                            _ => drained.snoozed += 1,
                        }
                    }
                }
                // Back to the first queue: a job may have enqueued work ahead of the rest.
                continue 'drain;
            }
            return Ok(drained); // every queue is empty
        }
        drained.limit_reached = self.any_available(&queues).await?;
        Ok(drained)
    }

    /// Whether a job of `queues` is available (without claiming it).
    async fn any_available(&self, queues: &[String]) -> Result<bool> {
        for queue in queues {
            // One statement over every id (the state's partial index serves it), not a
            // listing's windows.
            let available = JobSelection::new([JobState::Available]).queue(queue.clone()).any_state_filter()?;
            if !queries::listing::job_window(&self.db, &available, i64::MIN, i64::MAX, true, 1).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
