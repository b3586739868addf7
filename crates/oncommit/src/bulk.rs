//! Handling many jobs at once: retry, cancel or delete every job a [`JobSelection`] picks
//! (after an outage, say, every job that failed with "connection refused" last night).

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::queries::bulk::{self, Action, Filter};

/// Which jobs a bulk action touches: those in one of `states`, and matching every other
/// field that is set.
///
/// ```no_run
/// # use oncommit::{Db, JobSelection, JobState};
/// # async fn demo(db: Db) -> oncommit::Result<()> {
/// let selection = JobSelection::new([JobState::Failed])
///     .queue("mail")
///     .error_contains("connection refused")
///     .since(chrono::Utc::now() - chrono::Duration::hours(12));
/// println!("{} jobs to retry", db.count_jobs(&selection).await?);
/// let retried = db.retry_jobs(&selection).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobSelection {
    /// The states to select from; at least one (an empty list is refused, so that no
    /// action touches every job by omission).
    pub states: Vec<JobState>,
    /// Only jobs of this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// Only jobs of this task.
    #[serde(default)]
    pub task: Option<String>,
    /// Only jobs that finished at or after this time (unfinished ones: created at or after).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only jobs that finished before this time (unfinished ones: created before).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
    /// Only jobs with an attempt whose error contains this text (ignoring case).
    #[serde(default)]
    pub error_contains: Option<String>,
}

impl JobSelection {
    /// The jobs in any of `states`.
    pub fn new(states: impl IntoIterator<Item = JobState>) -> JobSelection {
        JobSelection { states: states.into_iter().collect(), ..JobSelection::default() }
    }

    /// … of `queue` only.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// … of `task` only.
    pub fn task(mut self, task: impl Into<String>) -> Self {
        self.task = Some(task.into());
        self
    }

    /// … finished (unfinished: created) at or after `at`.
    pub fn since(mut self, at: DateTime<Utc>) -> Self {
        self.since = Some(at);
        self
    }

    /// … finished (unfinished: created) before `at`.
    pub fn until(mut self, at: DateTime<Utc>) -> Self {
        self.until = Some(at);
        self
    }

    /// … with an attempt whose error contains `text`, ignoring case.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }

    /// The selection as the statements bind it; refuses one without a state.
    fn filter(&self) -> Result<Filter> {
        if self.states.is_empty() {
            return Err(Error::InvalidOption {
                option: "job selection",
                reason: "no state given: name the states to act on (failed, cancelled, …)".to_owned(),
            });
        }
        let mut states: Vec<&'static str> = self.states.iter().map(|s| s.as_str()).collect();
        states.sort_unstable();
        states.dedup();
        Ok(Filter {
            states,
            queue: self.queue.clone(),
            task: self.task.clone(),
            since_ms: self.since.map(|t| t.timestamp_millis()),
            until_ms: self.until.map(|t| t.timestamp_millis()),
            error: self.error_contains.clone().filter(|e| !e.is_empty()),
        })
    }
}

/// What [`Db::cancel_jobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkCancelled {
    /// Waiting jobs now `cancelled`.
    pub cancelled: u64,
    /// Running jobs whose workers were asked to stop them.
    pub requested: u64,
}

impl Db {
    /// How many jobs `selection` picks now: what a bulk action would touch.
    pub async fn count_jobs(&self, selection: &JobSelection) -> Result<i64> {
        bulk::job_count_selected(self, &selection.filter()?).await
    }

    /// Runs every selected job again now, as [`Db::retry_job`] does one (a running job is
    /// left alone). Returns how many were retried.
    pub async fn retry_jobs(&self, selection: &JobSelection) -> Result<u64> {
        let (done, wake) = bulk::job_act_on_selected(self, &selection.filter()?, Action::Retry).await?;
        if !wake.is_empty() {
            self.wake();
        }
        Ok(done.changed)
    }

    /// Cancels every selected job, as [`Db::cancel_job`] does one: a waiting one at once, a
    /// running one by asking its worker. Finished jobs are left alone.
    pub async fn cancel_jobs(&self, selection: &JobSelection) -> Result<BulkCancelled> {
        let (done, _) = bulk::job_act_on_selected(self, &selection.filter()?, Action::Cancel).await?;
        Ok(BulkCancelled { cancelled: done.changed, requested: done.requested })
    }

    /// Deletes every selected job that is not running. Returns how many were deleted.
    pub async fn delete_jobs(&self, selection: &JobSelection) -> Result<u64> {
        let (done, _) = bulk::job_act_on_selected(self, &selection.filter()?, Action::Delete).await?;
        Ok(done.changed)
    }
}
