//! Looking at and steering jobs: what the CLI and the dashboard call.

use crate::db::Db;
use crate::error::Result;
use crate::job::{Job, JobId, JobState};
use std::collections::BTreeMap;

use crate::queries::{self, StateCount, TableStats, TaskDeclaration, WorkerInfo};

/// Which jobs [`Db::jobs`] lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs on this queue.
    pub queue: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

impl Default for JobFilter {
    /// The 50 newest jobs.
    fn default() -> Self {
        JobFilter { state: None, queue: None, limit: 50 }
    }
}

/// Jobs per state, in all and per queue, with every state present (zero when none): what
/// `oncommit stats --json` and the dashboard show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStats {
    /// Counts over all queues, by state.
    pub total: BTreeMap<JobState, i64>,
    /// Counts per queue, by state.
    pub queues: BTreeMap<String, BTreeMap<JobState, i64>>,
}

/// The jobs a job waits for and the jobs that wait for it ([`EnqueueOptions::depends_on`](crate::EnqueueOptions::depends_on)),
/// in id order: what `oncommit job` and the dashboard's job detail show.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobDependencies {
    /// The jobs it depends on that still exist (a pruned parent counts as completed).
    pub parents: Vec<Job>,
    /// The jobs that depend on it.
    pub dependants: Vec<Job>,
}

impl JobStats {
    /// Counts per queue and state (as [`Db::job_counts`] or [`Db::job_gauges`] return
    /// them) arranged per state, in all and per queue, every state present.
    pub fn from_counts(counts: impl IntoIterator<Item = StateCount>) -> JobStats {
        let zero = || JobState::ALL.iter().map(|state| (*state, 0)).collect::<BTreeMap<_, _>>();
        let mut stats = JobStats { total: zero(), queues: BTreeMap::new() };
        for c in counts {
            *stats.total.entry(c.state).or_default() += c.count;
            *stats.queues.entry(c.queue).or_insert_with(zero).entry(c.state).or_default() += c.count;
        }
        stats
    }
}

/// What [`Db::cancel_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancelled {
    /// The job was waiting and is now `cancelled`.
    Cancelled,
    /// The job is running: its worker was asked to stop it, and will mark it `cancelled`.
    Requested,
    /// The job had already finished, or does not exist.
    NotCancellable,
}

/// How old the count of finished jobs in [`Db::job_gauges`] may be.
pub const FINISHED_COUNTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl Db {
    /// One job by id.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>> {
        queries::job_get(self, id).await
    }

    /// The jobs `id` depends on, and those that depend on it.
    pub async fn job_dependencies(&self, id: JobId) -> Result<JobDependencies> {
        Ok(JobDependencies {
            parents: queries::job_linked(self, id, queries::Link::Parents).await?,
            dependants: queries::job_linked(self, id, queries::Link::Dependants).await?,
        })
    }

    /// The newest jobs matching `filter`.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>> {
        let selection = crate::JobSelection {
            states: filter.state.into_iter().collect(),
            queue: filter.queue.clone(),
            ..Default::default()
        };
        // The listing's statement over every id: one statement, no page budget.
        queries::listing::job_window(self, &selection.any_state_filter()?, i64::MIN, i64::MAX, true, filter.limit).await
    }

    /// How many jobs are in each state, per queue.
    pub async fn job_counts(&self) -> Result<Vec<StateCount>> {
        queries::job_count_by_queue_and_state(self).await
    }

    /// [`Db::job_counts`] for a metrics scrape, which must stay cheap however many jobs the
    /// table keeps: the waiting and running jobs are counted exactly each time, through
    /// their partial indexes; the finished ones (completed, failed, cancelled: most of a
    /// table that keeps months of history) are counted at most once per
    /// [`FINISHED_COUNTS_MAX_AGE`], shared by every scrape of this `Db` and its clones.
    pub async fn job_gauges(&self) -> Result<Vec<StateCount>> {
        let mut counts = queries::job_count_split(self, false).await?;
        let mut cached = self.finished_counts().lock().await;
        let fresh = cached.as_ref().filter(|(at, _)| at.elapsed() < FINISHED_COUNTS_MAX_AGE);
        let finished = match fresh {
            Some((_, finished)) => finished.clone(),
            None => {
                let finished = queries::job_count_split(self, true).await?;
                *cached = Some((std::time::Instant::now(), finished.clone()));
                finished
            }
        };
        drop(cached);
        counts.extend(finished);
        counts.sort_by(|a, b| (&a.queue, a.state).cmp(&(&b.queue, b.state)));
        Ok(counts)
    }

    /// [`Db::job_counts`] arranged per state, in all and per queue.
    pub async fn job_stats(&self) -> Result<JobStats> {
        Ok(JobStats::from_counts(self.job_counts().await?))
    }

    /// The jobs table's size on disk and its dead rows: whether pruning and vacuum keep up.
    pub async fn table_stats(&self) -> Result<TableStats> {
        queries::table_stats(self).await
    }

    /// Cancels a job: a waiting one at once; a running one by asking its worker to stop it
    /// (at once on PostgreSQL through NOTIFY, else at its next heartbeat).
    pub async fn cancel_job(&self, id: JobId) -> Result<Cancelled> {
        Ok(match queries::job_cancel(self, id).await? {
            Some(JobState::Running) => Cancelled::Requested,
            Some(_) => Cancelled::Cancelled,
            None => Cancelled::NotCancellable,
        })
    }

    /// Runs a job again now (one that failed, was cancelled, completed, or waits for a
    /// retry or its schedule), granting one more attempt if it had none left. Returns
    /// false when there is no such job, or it is running.
    pub async fn retry_job(&self, id: JobId) -> Result<bool> {
        let retried = queries::job_retry(self, id).await?;
        if retried {
            self.wake();
        }
        Ok(retried)
    }

    /// Deletes a job that is not running. Returns whether one was deleted.
    pub async fn delete_job(&self, id: JobId) -> Result<bool> {
        queries::job_delete(self, id).await
    }

    /// Jobs completed per minute over the last `minutes`, oldest first, as
    /// `(minute since the Unix epoch, count)`; minutes without completions are left out.
    pub async fn throughput(&self, minutes: i64) -> Result<Vec<(i64, i64)>> {
        queries::job_throughput(self, minutes).await
    }

    /// What each task declares for its jobs, as recorded by the workers that register it:
    /// the queue, priority and attempts a job gets when it is enqueued without them.
    pub async fn task_declarations(&self) -> Result<Vec<TaskDeclaration>> {
        queries::task_list(self).await
    }

    /// The workers that reported recently.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        queries::worker_list(self).await
    }
}
