//! Runs one claimed job and decides what becomes of it: completed, retried after a backoff,
//! failed, snoozed, cancelled or released. A panicking or overrunning task fails its
//! attempt; the worker itself never goes down with it.

use std::any::Any;
use std::time::Duration;

use chrono::Utc;

use super::held::{Held, Stop};
use super::registry::Registry;
use crate::activity::ActivityCounter;
use crate::db::Db;
use crate::job::{Job, JobState};
use crate::metrics;
use crate::queries::Transition;
use crate::retry_policy::RetryPolicy;
use crate::task::{TaskContext, TaskError};
use crate::trace;
use tracing::Instrument;

/// Runs `job`; returns the state change to record, or `None` when the task completed the
/// job itself (transactional completion).
/// `lease_lost` tells the task when the worker no longer holds the job; `lease` bounds how
/// long its completing transaction may sit idle on the server.
pub(crate) async fn execute(
    job: Job,
    registry: &Registry,
    db: &Db,
    held: &Held,
    lease: (tokio::sync::watch::Receiver<bool>, Duration),
    activity: &ActivityCounter,
) -> Option<Transition> {
    let span = trace::job_span(&job);
    let started = std::time::Instant::now();
    let waited = (Utc::now() - job.run_at).to_std().unwrap_or_default();
    let change = attempt(&job, registry, db, held, lease, &span).await;
    let took = started.elapsed();
    let label = change.as_ref().map_or("completed", Transition::outcome);
    metrics::job_ran(&job.queue, &job.task, label, took, waited);
    activity.record(&job.queue, label, waited);
    trace::job_ended(&span, label, took, change.as_ref().and_then(Transition::error_message).as_deref());
    change
}

/// Runs the task in its own tokio task inside `span`; see [`execute`].
async fn attempt(
    job: &Job,
    registry: &Registry,
    db: &Db,
    held: &Held,
    (lease_lost, lease): (tokio::sync::watch::Receiver<bool>, Duration),
    span: &tracing::Span,
) -> Option<Transition> {
    let outcome = Outcome::of(job);
    let Some(entry) = registry.get(&job.task) else {
        let known = registry.names().join(", ");
        return Some(outcome.failed_for_good(format!("unknown task `{}`: this worker runs {known}", job.task)));
    };
    let timeout = entry.options.timeout;
    let retry = entry.options.retry;
    let run = match entry.start(job, TaskContext::new(job.clone(), db.clone(), lease_lost, lease)) {
        Ok(run) => run,
        Err(why) => return Some(outcome.failed_for_good(format!("cannot decode the args of `{}`: {why}", job.task))),
    };
    let child = tokio::spawn(
        async move {
            match timeout {
                Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| limit),
                None => Ok(run.await),
            }
        }
        .instrument(span.clone()),
    );
    held.started(outcome.id, child.abort_handle());
    let joined = child.await;
    let stop = held.ended(outcome.id);
    decide(job, &outcome, retry, joined, stop)
}

/// How a task's run ended, or the time limit it overran.
type Ended = Result<super::registry::Ran, Duration>;

/// What becomes of the job, from how its task's run ended.
fn decide(
    job: &Job,
    outcome: &Outcome,
    retry: RetryPolicy,
    joined: Result<Ended, tokio::task::JoinError>,
    stop: Option<Stop>,
) -> Option<Transition> {
    Some(match joined {
        Ok(Ok(ran)) => match ran.outcome {
            Ok(()) if ran.completed_in_tx => return None,
            Ok(()) => Transition { result: ran.result, ..outcome.to(JobState::Completed, None, None, 0) },
            Err(err) => outcome.after_task_error(err, retry),
        },
        Ok(Err(limit)) => outcome.retry_or_fail(format!("timed out after {limit:?}"), retry.delay(job.attempt)),
        Err(err) if err.is_panic() => {
            let message = panic_message(err.into_panic());
            outcome.retry_or_fail(format!("task panicked: {message}"), retry.delay(job.attempt))
        }
        Err(_) => match stop {
            Some(Stop::Release) => outcome.to(
                JobState::Available,
                Some(Duration::ZERO),
                Some("released: the worker shut down before the job finished".into()),
                1,
            ),
            _ => outcome.to(JobState::Cancelled, None, Some("cancelled while running".into()), 0),
        },
    })
}

/// The change that fails a claimed job that cannot run at all (its row could not be
/// decoded): no retry, the reason in its history.
pub(crate) fn unrunnable(job: &Job, why: String) -> Transition {
    Outcome::of(job).failed_for_good(format!("cannot run this job: {why}"))
}

/// The change for a claimed job stopped before it started: back to the queue without using
/// up an attempt (the worker is shutting down), or cancelled (a user asked).
pub(crate) fn unstarted(job: &Job, why: Stop) -> Transition {
    let outcome = Outcome::of(job);
    match why {
        Stop::Release => outcome.to(JobState::Available, Some(Duration::ZERO), None, 1),
        Stop::Cancel => outcome.to(JobState::Cancelled, None, Some("cancelled before it started".into()), 0),
    }
}

/// Builds the state changes of one attempt.
struct Outcome {
    id: i64,
    attempt: i32,
    max_attempts: i32,
    /// Who ran the attempt and when it started, for the attempt's entry in the history.
    worker: Option<String>,
    started: Option<i64>,
}

impl Outcome {
    fn of(job: &Job) -> Outcome {
        Outcome {
            id: job.id.0,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            worker: job.lease_owner.clone(),
            started: job.attempted_at.map(|t| t.timestamp_millis()),
        }
    }

    fn to(&self, state: JobState, delay: Option<Duration>, error: Option<String>, extra: i32) -> Transition {
        let error = error.map(|message| {
            serde_json::json!({
                "attempt": self.attempt,
                "at": Utc::now().timestamp_millis(),
                "error": message,
                "worker": self.worker,
                "started": self.started,
            })
            .to_string()
        });
        Transition {
            id: self.id,
            attempt: self.attempt,
            state,
            delay_ms: delay.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            error,
            extra,
            result: None,
        }
    }

    fn retry_or_fail(&self, error: String, delay: Duration) -> Transition {
        if self.attempt >= self.max_attempts {
            self.to(JobState::Failed, None, Some(error), 0)
        } else {
            self.to(JobState::Retryable, Some(delay), Some(error), 0)
        }
    }

    fn failed_for_good(&self, error: String) -> Transition {
        self.to(JobState::Failed, None, Some(error), 0)
    }

    fn after_task_error(&self, err: TaskError, retry: RetryPolicy) -> Transition {
        match err {
            TaskError::Failed(e) => self.retry_or_fail(e.to_string(), retry.delay(self.attempt)),
            TaskError::RetryAfter { delay, reason } => self.retry_or_fail(reason, delay),
            TaskError::Snooze(delay) => self.to(JobState::Scheduled, Some(delay), None, 1),
            TaskError::Cancel(reason) => self.to(JobState::Cancelled, None, Some(reason), 0),
        }
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}
