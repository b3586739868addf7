//! A job: one row of the queue, its id and its state. The state machine is drawn in
//! `docs/jobs.md`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The id of a job row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life (ordered by that life: pending first, cancelled last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for the jobs it depends on to finish; then it becomes `available` (or
    /// `scheduled`), in the transaction that finishes the last of them.
    Pending,
    /// Waiting for its `run_at`; then it becomes `available`.
    Scheduled,
    /// Ready for a worker to claim.
    Available,
    /// Claimed by a worker, whose lease must be renewed by heartbeats.
    Running,
    /// An attempt failed; it runs again at `run_at` (after a backoff).
    Retryable,
    /// Finished successfully. Pruned after the retention period.
    Completed,
    /// Out of attempts (or unrunnable: unknown task, undecodable payload).
    Failed,
    /// Cancelled before it finished, by a user or by the task itself.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the `state` column.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will not run again by itself.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state `{s}` (expected one of: pending, scheduled, available, running, retryable, completed, failed, cancelled)"))
    }
}

/// One failed attempt, as kept in the job's error history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Which attempt failed.
    pub attempt: i32,
    /// When, in milliseconds since the Unix epoch.
    pub at: i64,
    /// What went wrong.
    pub error: String,
    /// The worker that ran the attempt (absent from histories written before it was kept,
    /// and from jobs cancelled before they ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// When the attempt started, in milliseconds since the Unix epoch (absent as `worker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
}

impl AttemptError {
    /// When the attempt failed.
    pub fn at_time(&self) -> DateTime<Utc> {
        from_millis(self.at)
    }
}

/// A job row, as listed by `oncommit jobs` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// The queue it runs on.
    pub queue: String,
    /// The task name it runs.
    pub task: String,
    /// The task's arguments.
    pub args: serde_json::Value,
    /// Where it is in its life.
    pub state: JobState,
    /// Lower runs first.
    pub priority: i16,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// When it may run (next).
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it completed, failed for good or was cancelled.
    pub finished_at: Option<DateTime<Utc>>,
    /// While running, the worker holding its lease; once completed, the worker that ran
    /// it (a failed attempt's worker is in its entry of `errors`).
    pub lease_owner: Option<String>,
    /// When that lease runs out unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// One entry per failed attempt.
    pub errors: Vec<AttemptError>,
    /// Its unique key, if it has one.
    pub unique_key: Option<String>,
    /// The trace context of the code that enqueued the job (a JSON object of W3C
    /// `traceparent` / `tracestate`), continued by the worker's span; `None` when that code
    /// was not traced (see the `opentelemetry` feature).
    pub trace_context: Option<String>,
    /// What the task stored with its job when it completed ([`TaskContext::set_result`](crate::TaskContext::set_result)),
    /// for dependants, the CLI and the dashboard; pruned with the job.
    pub result: Option<serde_json::Value>,
    /// The workflow the job is a step of ([`Workflow`](crate::Workflow)), if any.
    pub workflow_id: Option<String>,
    /// Its concurrency key ([`EnqueueOptions::concurrency_key`](crate::EnqueueOptions::concurrency_key)), if any.
    pub concurrency_key: Option<String>,
    /// Its fairness key ([`EnqueueOptions::fair_key`](crate::EnqueueOptions::fair_key)), if any.
    pub fair_key: Option<String>,
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
