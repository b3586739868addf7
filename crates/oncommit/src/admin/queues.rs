//! The queues: what they hold and how they fare, and steering them whole (pause and resume,
//! a concurrency limit and a rate limit shared by every worker; the guide is
//! `docs/flow-control.md`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{JobStats, Jobs, QueueActivity, Queues};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::queries::{self, QueueInfo, RateLimit, Setting};

/// The queues and their jobs per state, as a dashboard or a metrics scrape refreshes them
/// ([`Queues::overview`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueuesOverview {
    /// Every queue [`Queues::list`] lists, and those whose only jobs are finished, by name.
    pub queues: Vec<QueueInfo>,
    /// Jobs per state, in all and per queue; the finished ones counted at most a minute ago
    /// ([`limits::FINISHED_COUNTS_MAX_AGE`](crate::limits::FINISHED_COUNTS_MAX_AGE)).
    pub stats: JobStats,
}

impl RateLimit {
    /// At most `max_starts` job starts per `period`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let limit = oncommit::admin::RateLimit::new(100, Duration::from_secs(60));
    /// assert_eq!(limit.max_starts, 100);
    /// ```
    pub fn new(max_starts: u32, period: std::time::Duration) -> RateLimit {
        RateLimit { max_starts, period, per_key: false }
    }

    /// The same limit for each concurrency key of the queue's jobs on its own (jobs without
    /// a key share one window): at most 10 calls per second per customer, say.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let per_customer = oncommit::admin::RateLimit::new(10, Duration::from_secs(1)).per_key();
    /// assert!(per_customer.per_key);
    /// ```
    pub fn per_key(mut self) -> RateLimit {
        self.per_key = true;
        self
    }

    /// Refuses a limit no window could honour: no starts at all, or a period under a
    /// millisecond (the database counts windows in whole milliseconds), or past what it
    /// stores.
    pub(crate) fn check(&self) -> Result<()> {
        let period_ms = self.period.as_millis();
        if self.max_starts == 0 || self.max_starts > i32::MAX as u32 {
            return Err(Error::InvalidOption {
                option: "rate limit",
                reason: format!("{} starts per period: it must be 1 to {}", self.max_starts, i32::MAX),
            });
        }
        if period_ms == 0 || period_ms > i64::MAX as u128 {
            return Err(Error::InvalidOption {
                option: "rate limit",
                reason: format!("a period of {:?}: it must be at least a millisecond", self.period),
            });
        }
        Ok(())
    }
}

impl Setting {
    /// Refuses a value the database could not store or no worker could honour.
    pub(crate) fn check(&self) -> Result<()> {
        match self {
            Setting::Paused(_) => Ok(()),
            Setting::ConcurrencyLimit(limit) => check_concurrency_limit(*limit),
            Setting::RateLimit(limit) => limit.as_ref().map_or(Ok(()), RateLimit::check),
        }
    }
}

/// A concurrency limit the database can store: 1 to `i32::MAX` jobs.
fn check_concurrency_limit(limit: Option<u32>) -> Result<()> {
    match limit {
        Some(0) => Err(Error::InvalidOption {
            option: "concurrency limit",
            reason: "0 jobs: pause the queue instead, or give at least 1".to_owned(),
        }),
        Some(n) if n > i32::MAX as u32 => Err(Error::InvalidOption {
            option: "concurrency limit",
            reason: format!("{n} jobs: at most {} (or none, for no limit)", i32::MAX),
        }),
        _ => Ok(()),
    }
}

impl Queues<'_> {
    /// Pauses `queue`: no worker claims its jobs until it is resumed; jobs already running
    /// finish. The pause is in the database, so it holds for every worker, including those
    /// started later. Pausing a paused queue does nothing.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.queues().pause("emails").await?;
    /// // … a provider outage later:
    /// db.queues().resume("emails").await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(&self, queue: &str) -> Result<()> {
        self.set(queue, Setting::Paused(true)).await
    }

    /// Resumes a paused `queue`: its workers claim again at once.
    pub async fn resume(&self, queue: &str) -> Result<()> {
        self.set(queue, Setting::Paused(false)).await
    }

    /// At most `limit` jobs of `queue` run at once, counted over all workers on all
    /// machines (a job prefetched by a worker counts as running); `None` removes the
    /// limit. Takes effect at the next claim of every worker, without a restart; jobs
    /// already running above a lowered limit finish.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// // The partner's API allows five concurrent calls, whatever our worker count.
    /// db.queues().set_concurrency_limit("partner_api", Some(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_concurrency_limit(&self, queue: &str, limit: Option<u32>) -> Result<()> {
        self.set(queue, Setting::ConcurrencyLimit(limit)).await
    }

    /// At most `limit.max_starts` jobs of `queue` start per `limit.period`, over all
    /// workers; `None` removes the limit. Jobs over it stay `available` and start when the
    /// next window opens.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use oncommit::admin::RateLimit;
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.queues().set_rate_limit("sms", Some(RateLimit::new(10, Duration::from_secs(1)))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_rate_limit(&self, queue: &str, limit: Option<RateLimit>) -> Result<()> {
        self.set(queue, Setting::RateLimit(limit)).await
    }

    /// Every queue that a setting names, a job waits or runs in, a task declares or a
    /// worker serves, by name: its settings, its waiting and running jobs, its workers, its
    /// lag.
    pub async fn list(&self) -> Result<Vec<QueueInfo>> {
        let mut queues = queries::queue_list(self.db, true).await?;
        let lag = queries::queue_lag(self.db).await?;
        for q in &mut queues {
            q.lag = lag.get(&q.name).copied().unwrap_or_default();
        }
        self.top_keys(&mut queues).await?;
        Ok(queues)
    }

    /// One queue as [`Queues::list`] lists it; a queue nothing names has no settings, jobs
    /// or workers.
    pub async fn get(&self, queue: &str) -> Result<QueueInfo> {
        let found = self.list().await?.into_iter().find(|q| q.name == queue);
        Ok(found.unwrap_or_else(|| idle_queue(queue)))
    }

    /// How long the oldest available job of each queue that has one has waited for a
    /// worker (since its run time), by queue: the lag operators alert on. A few index probes
    /// per queue, never a count of the backlog, so it is cheap to scrape.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// for (queue, lag) in db.queues().lag().await? {
    ///     if lag > std::time::Duration::from_secs(60) {
    ///         println!("{queue} is {lag:?} behind");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn lag(&self) -> Result<BTreeMap<String, Duration>> {
        queries::queue_lag(self.db).await
    }

    /// Every queue's activity over the last `window` (rounded to whole minutes): attempts
    /// by outcome, completions per minute, waits from `run_at` to start. In queue order;
    /// queues with none are left out.
    pub async fn activity(&self, window: Duration) -> Result<Vec<QueueActivity>> {
        crate::activity::queue_activity(self.db, window).await
    }

    /// [`Queues::list`] and the jobs per queue and state, for a dashboard's refresh or a
    /// metrics scrape, which must stay cheap however many jobs the table keeps: the waiting
    /// and running jobs are counted once for both, exactly, through their partial indexes;
    /// the finished ones (completed, failed, cancelled: most of a table that keeps months
    /// of history) at most once a minute, shared by every caller on this `Db` and its
    /// clones. Queues whose only jobs are finished are listed too. For exact counts of
    /// finished jobs, [`Jobs::stats`] or [`Jobs::count`].
    pub async fn overview(&self) -> Result<QueuesOverview> {
        let counts = Jobs { db: self.db }.gauges().await?;
        let mut queues: BTreeMap<String, QueueInfo> =
            queries::queue_list(self.db, false).await?.into_iter().map(|q| (q.name.clone(), q)).collect();
        for c in &counts {
            let q = queues.entry(c.queue.clone()).or_insert_with(|| idle_queue(&c.queue));
            match c.state {
                JobState::Available => q.available += c.count,
                JobState::Running => q.running += c.count,
                JobState::Pending | JobState::Scheduled | JobState::Retryable => q.waiting += c.count,
                JobState::Completed | JobState::Failed | JobState::Cancelled => {}
            }
        }
        for (queue, lag) in queries::queue_lag(self.db).await? {
            queues.entry(queue.clone()).or_insert_with(|| idle_queue(&queue)).lag = lag;
        }
        let mut queues: Vec<QueueInfo> = queues.into_values().collect();
        self.top_keys(&mut queues).await?;
        Ok(QueuesOverview { queues, stats: JobStats::from_counts(counts) })
    }

    /// Fills in the keys with the most available jobs of each fair queue that has any.
    async fn top_keys(&self, queues: &mut [QueueInfo]) -> Result<()> {
        for q in queues.iter_mut().filter(|q| q.fair && q.available > 0) {
            q.top_keys = queries::fair_backlog(self.db, &q.name).await?;
        }
        Ok(())
    }

    async fn set(&self, queue: &str, setting: Setting) -> Result<()> {
        crate::enqueue::check_queue_name(queue)?;
        setting.check()?;
        queries::queue_set(self.db, queue, setting).await?;
        // This process's workers (SQLite has no NOTIFY; on PostgreSQL the function's
        // NOTIFY reaches the others).
        self.db.wake();
        Ok(())
    }
}

/// A queue nothing sets, declares, serves or fills.
fn idle_queue(name: &str) -> QueueInfo {
    QueueInfo {
        name: name.to_owned(),
        paused: false,
        concurrency_limit: None,
        rate_limit: None,
        available: 0,
        running: 0,
        waiting: 0,
        workers: 0,
        lag: std::time::Duration::ZERO,
        fair: false,
        top_keys: Vec::new(),
    }
}
