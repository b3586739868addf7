//! Handling many jobs at once: retry, cancel or delete every job a [`JobSelection`] picks
//! (after an outage, say, every job that failed with "connection refused" last night).

use chrono::{DateTime, Utc};

use super::Jobs;
use crate::driver::contract::Action;
use crate::driver::selection::Filter;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::queries::bulk;

/// Which jobs a listing shows ([`Jobs::list`]), a count counts ([`Jobs::count`]) or a bulk
/// action touches ([`Jobs::retry_all`], …): those in one of `states`, and matching every
/// other field that is set.
///
/// ```no_run
/// # use oncommit::admin::JobSelection;
/// # use oncommit::{Db, JobState};
/// # async fn demo(db: Db) -> oncommit::Result<()> {
/// let selection = JobSelection::new([JobState::Failed])
///     .queue("mail")
///     .error_contains("connection refused")
///     .since(chrono::Utc::now() - chrono::Duration::hours(12));
/// println!("{} jobs to retry", db.jobs().count(&selection).await?);
/// let retried = db.jobs().retry_all(&selection).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobSelection {
    /// The states to select from. A bulk action needs at least one, or `ids` (an empty
    /// list is refused there, so that no action touches every job by omission); a listing
    /// or a count takes an empty list as every state.
    #[serde(default)]
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
    /// Only jobs of this priority.
    #[serde(default)]
    pub priority: Option<i16>,
    /// Only jobs whose id is this text, or whose args or an attempt's error contain it
    /// (ignoring case): the dashboard's search box.
    #[serde(default)]
    pub search: Option<String>,
    /// Only these jobs (the rows ticked on the dashboard); `None` for any.
    #[serde(default)]
    pub ids: Option<Vec<i64>>,
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

    /// … of `priority` only.
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// … whose id is `text`, or whose args or an attempt's error contain it, ignoring case.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// … among these jobs only.
    pub fn ids(mut self, ids: impl IntoIterator<Item = crate::JobId>) -> Self {
        self.ids = Some(ids.into_iter().map(|id| id.0).collect());
        self
    }

    /// The selection as an action's statements bind it; refuses one that names neither a
    /// state nor ids.
    fn filter(&self) -> Result<Filter> {
        if self.states.is_empty() && self.ids.is_none() {
            return Err(Error::InvalidOption {
                option: "job selection",
                reason: "no state given: name the states to act on (failed, cancelled, …)".to_owned(),
            });
        }
        self.any_state_filter()
    }

    /// The selection as a listing's statements bind it: no state means every state.
    pub(crate) fn any_state_filter(&self) -> Result<Filter> {
        if self.ids.as_ref().is_some_and(|ids| ids.len() > MAX_IDS) {
            return Err(Error::InvalidOption {
                option: "job selection",
                reason: format!("more than {MAX_IDS} ids: select by a filter instead"),
            });
        }
        // PostgreSQL text cannot hold NUL: refused here with the filter's name, not by the
        // server as an encoding error.
        for (option, value) in
            [("queue", &self.queue), ("task", &self.task), ("error", &self.error_contains), ("search", &self.search)]
        {
            if value.as_deref().is_some_and(|v| v.contains('\0')) {
                return Err(Error::InvalidOption { option, reason: "it contains a NUL character".to_owned() });
            }
        }
        let chosen = if self.states.is_empty() { &JobState::ALL[..] } else { &self.states[..] };
        let mut states: Vec<&'static str> = chosen.iter().map(|s| s.as_str()).collect();
        states.sort_unstable();
        states.dedup();
        let text = |t: &Option<String>| t.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        Ok(Filter {
            states,
            queue: text(&self.queue),
            task: text(&self.task),
            since_ms: self.since.map(|t| t.timestamp_millis()),
            until_ms: self.until.map(|t| t.timestamp_millis()),
            error: text(&self.error_contains),
            priority: self.priority,
            search: text(&self.search),
            ids: self.ids.clone(),
        })
    }
}

/// The most ids one selection may name: a page's worth of ticked rows, many times over.
pub const MAX_IDS: usize = 10_000;

/// What [`Jobs::cancel_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BulkCancelled {
    /// Waiting jobs now `cancelled`.
    pub cancelled: u64,
    /// Running jobs whose workers were asked to stop them.
    pub requested: u64,
}

impl Jobs<'_> {
    /// How many jobs `selection` picks now (every state when it names none): what a
    /// listing would show page after page, or a bulk action would touch.
    pub async fn count(&self, selection: &JobSelection) -> Result<i64> {
        bulk::job_count_selected(self.db, &selection.any_state_filter()?).await
    }

    /// Runs every selected job again now, as [`Jobs::retry`] does one (a running job is
    /// left alone). Returns how many were retried.
    pub async fn retry_all(&self, selection: &JobSelection) -> Result<u64> {
        let (done, wake) = bulk::job_act_on_selected(self.db, &selection.filter()?, Action::Retry).await?;
        if !wake.is_empty() {
            self.db.wake();
        }
        Ok(done.changed)
    }

    /// Cancels every selected job, as [`Jobs::cancel`] does one: a waiting one at once, a
    /// running one by asking its worker. Finished jobs are left alone.
    pub async fn cancel_all(&self, selection: &JobSelection) -> Result<BulkCancelled> {
        let (done, _) = bulk::job_act_on_selected(self.db, &selection.filter()?, Action::Cancel).await?;
        Ok(BulkCancelled { cancelled: done.changed, requested: done.requested })
    }

    /// Deletes every selected job that is not running. Returns how many were deleted.
    pub async fn delete_all(&self, selection: &JobSelection) -> Result<u64> {
        let (done, _) = bulk::job_act_on_selected(self.db, &selection.filter()?, Action::Delete).await?;
        Ok(done.changed)
    }
}
