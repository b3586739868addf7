//! One job at a time, and the figures of all of them.

use std::collections::BTreeMap;

use super::Jobs;
use crate::error::Result;
use crate::job::{Job, JobId, JobState};
use crate::queries::{self, StateCount, TableStats};
use crate::workflow::WorkflowJob;

/// Jobs per state, in all and per queue, with every state present (zero when none): what
/// `oncommit stats --json` and the dashboard show ([`Jobs::stats`], [`Queues::overview`](super::Queues::overview)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobStats {
    /// Counts over all queues, by state.
    pub total: BTreeMap<JobState, i64>,
    /// Counts per queue, by state.
    pub queues: BTreeMap<String, BTreeMap<JobState, i64>>,
}

/// The jobs a job waits for and the jobs that wait for it ([`EnqueueOptions::depends_on`](crate::EnqueueOptions::depends_on)),
/// in id order ([`Jobs::dependencies`]): what `oncommit job` and the dashboard's job detail show.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobDependencies {
    /// The jobs it depends on that still exist (a pruned parent counts as completed).
    pub parents: Vec<Job>,
    /// The jobs that depend on it.
    pub dependants: Vec<Job>,
}

impl JobStats {
    /// Counts per queue and state arranged per state, in all and per queue, every state
    /// present.
    pub(crate) fn from_counts(counts: impl IntoIterator<Item = StateCount>) -> JobStats {
        let zero = || JobState::ALL.iter().map(|state| (*state, 0)).collect::<BTreeMap<_, _>>();
        let mut stats = JobStats { total: zero(), queues: BTreeMap::new() };
        for c in counts {
            *stats.total.entry(c.state).or_default() += c.count;
            *stats.queues.entry(c.queue).or_insert_with(zero).entry(c.state).or_default() += c.count;
        }
        stats
    }
}

/// What [`Jobs::cancel`] did.
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

/// How old the count of finished jobs in [`Queues::overview`](super::Queues::overview) may be.
pub const FINISHED_COUNTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl Jobs<'_> {
    /// One job by id.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>> {
        queries::job_get(self.db, id).await
    }

    /// The jobs `id` depends on, and those that depend on it.
    pub async fn dependencies(&self, id: JobId) -> Result<JobDependencies> {
        Ok(JobDependencies {
            parents: queries::job_linked(self.db, id, queries::Link::Parents).await?,
            dependants: queries::job_linked(self.db, id, queries::Link::Dependants).await?,
        })
    }

    /// The jobs of the workflow `id` ([`Workflow`](crate::Workflow)) as long as they are
    /// kept, in id order, each with its parents; empty when there is no such workflow: what
    /// `oncommit workflow` and the dashboard draw.
    pub async fn workflow(&self, id: &str) -> Result<Vec<WorkflowJob>> {
        let jobs = queries::workflow_jobs(self.db, id).await?;
        Ok(jobs.into_iter().map(|(job, parents)| WorkflowJob { job, parents }).collect())
    }

    /// How many jobs there are in each state, in all and per queue, counted now. Counting
    /// the finished jobs reads their whole index: a metrics scrape or a dashboard calls
    /// [`Queues::overview`](super::Queues::overview) instead, which counts them at most once
    /// a minute.
    pub async fn stats(&self) -> Result<JobStats> {
        Ok(JobStats::from_counts(queries::job_count_by_queue_and_state(self.db).await?))
    }

    /// The job counts of [`Jobs::stats`] for a scrape, which must stay cheap however many
    /// jobs the table keeps: the waiting and running jobs are counted exactly each time,
    /// through their partial indexes; the finished ones (completed, failed, cancelled: most
    /// of a table that keeps months of history) are counted at most once per
    /// [`FINISHED_COUNTS_MAX_AGE`], shared by every caller on this `Db` and its clones.
    pub(crate) async fn gauges(&self) -> Result<Vec<StateCount>> {
        let mut counts = queries::job_count_split(self.db, false).await?;
        let mut cached = self.db.finished_counts().lock().await;
        let fresh = cached.as_ref().filter(|(at, _)| at.elapsed() < FINISHED_COUNTS_MAX_AGE);
        let finished = match fresh {
            Some((_, finished)) => finished.clone(),
            None => {
                let finished = queries::job_count_split(self.db, true).await?;
                *cached = Some((std::time::Instant::now(), finished.clone()));
                finished
            }
        };
        drop(cached);
        counts.extend(finished);
        counts.sort_by(|a, b| (&a.queue, a.state).cmp(&(&b.queue, b.state)));
        Ok(counts)
    }

    /// The jobs table's size on disk and its dead rows: whether pruning and vacuum keep up.
    pub async fn table_stats(&self) -> Result<TableStats> {
        queries::table_stats(self.db).await
    }

    /// Cancels a job: a waiting one at once; a running one by asking its worker to stop it
    /// (at once on PostgreSQL through NOTIFY, else at its next heartbeat).
    pub async fn cancel(&self, id: JobId) -> Result<Cancelled> {
        Ok(match queries::job_cancel(self.db, id).await? {
            Some(JobState::Running) => Cancelled::Requested,
            Some(_) => Cancelled::Cancelled,
            None => Cancelled::NotCancellable,
        })
    }

    /// Runs a job again now (one that failed, was cancelled, completed, or waits for a
    /// retry or its schedule), granting one more attempt if it had none left. Returns
    /// false when there is no such job, or it is running.
    pub async fn retry(&self, id: JobId) -> Result<bool> {
        let retried = queries::job_retry(self.db, id).await?;
        if retried {
            self.db.wake();
        }
        Ok(retried)
    }

    /// Deletes a job that is not running. Returns whether one was deleted.
    pub async fn delete(&self, id: JobId) -> Result<bool> {
        queries::job_delete(self.db, id).await
    }

    /// Jobs completed per minute over the last `minutes`, oldest first, as
    /// `(minute since the Unix epoch, count)`; minutes without completions are left out.
    pub async fn throughput(&self, minutes: i64) -> Result<Vec<(i64, i64)>> {
        queries::job_throughput(self.db, minutes).await
    }
}
