//! Steering whole queues: pause and resume, a concurrency limit and a rate limit shared by
//! every worker. The guide is `docs/flow-control.md`.

use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::queries::{self, QueueInfo, RateLimit, Setting};

impl RateLimit {
    /// At most `max_starts` job starts per `period`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let limit = oncommit::RateLimit::new(100, Duration::from_secs(60));
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
    /// let per_customer = oncommit::RateLimit::new(10, Duration::from_secs(1)).per_key();
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

impl Db {
    /// Pauses `queue`: no worker claims its jobs until it is resumed; jobs already running
    /// finish. The pause is in the database, so it holds for every worker, including those
    /// started later. Pausing a paused queue does nothing.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.pause_queue("emails").await?;
    /// // … a provider outage later:
    /// db.resume_queue("emails").await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause_queue(&self, queue: &str) -> Result<()> {
        self.set_queue(queue, Setting::Paused(true)).await
    }

    /// Resumes a paused `queue`: its workers claim again at once.
    pub async fn resume_queue(&self, queue: &str) -> Result<()> {
        self.set_queue(queue, Setting::Paused(false)).await
    }

    /// At most `limit` jobs of `queue` run at once, counted over all workers on all
    /// machines (a job prefetched by a worker counts as running); `None` removes the
    /// limit. Takes effect at the next claim of every worker, without a restart; jobs
    /// already running above a lowered limit finish.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// // The partner's API allows five concurrent calls, whatever our worker count.
    /// db.set_queue_concurrency_limit("partner_api", Some(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_queue_concurrency_limit(&self, queue: &str, limit: Option<u32>) -> Result<()> {
        self.set_queue(queue, Setting::ConcurrencyLimit(limit)).await
    }

    /// At most `limit.max_starts` jobs of `queue` start per `limit.period`, over all
    /// workers; `None` removes the limit. Jobs over it stay `available` and start when the
    /// next window opens.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.set_queue_rate_limit("sms", Some(oncommit::RateLimit::new(10, Duration::from_secs(1)))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_queue_rate_limit(&self, queue: &str, limit: Option<RateLimit>) -> Result<()> {
        self.set_queue(queue, Setting::RateLimit(limit)).await
    }

    /// Every queue that a setting names, a job waits or runs in, a task declares or a
    /// worker serves, by name: its settings, its waiting and running jobs, its workers.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let mut queues = queries::queue_list(self, true).await?;
        let lag = queries::queue_lag(self).await?;
        for q in &mut queues {
            q.lag = lag.get(&q.name).copied().unwrap_or_default();
        }
        Ok(queues)
    }

    /// How long the oldest available job of each queue that has one has waited for a
    /// worker (since its run time), by queue: the lag operators alert on. A few index probes
    /// per queue, never a count of the backlog, so it is cheap to scrape.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// for (queue, lag) in db.queue_lag().await? {
    ///     if lag > std::time::Duration::from_secs(60) {
    ///         println!("{queue} is {lag:?} behind");
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn queue_lag(&self) -> Result<std::collections::BTreeMap<String, std::time::Duration>> {
        queries::queue_lag(self).await
    }

    /// [`Db::queues`] and [`Db::job_gauges`] together, counting the waiting and running jobs
    /// once for both: what a dashboard refreshes. Queues whose only jobs are finished are
    /// listed too.
    pub async fn queues_and_counts(&self) -> Result<(Vec<QueueInfo>, Vec<crate::StateCount>)> {
        let counts = self.job_gauges().await?;
        let mut queues: std::collections::BTreeMap<String, QueueInfo> =
            queries::queue_list(self, false).await?.into_iter().map(|q| (q.name.clone(), q)).collect();
        for c in &counts {
            let q = queues.entry(c.queue.clone()).or_insert_with(|| idle_queue(&c.queue));
            match c.state {
                JobState::Available => q.available += c.count,
                JobState::Running => q.running += c.count,
                JobState::Pending | JobState::Scheduled | JobState::Retryable => q.waiting += c.count,
                JobState::Completed | JobState::Failed | JobState::Cancelled => {}
            }
        }
        for (queue, lag) in queries::queue_lag(self).await? {
            queues.entry(queue.clone()).or_insert_with(|| idle_queue(&queue)).lag = lag;
        }
        Ok((queues.into_values().collect(), counts))
    }

    /// One queue as [`Db::queues`] lists it; a queue nothing names has no settings, jobs or
    /// workers.
    pub async fn queue_info(&self, queue: &str) -> Result<QueueInfo> {
        let found = self.queues().await?.into_iter().find(|q| q.name == queue);
        Ok(found.unwrap_or_else(|| idle_queue(queue)))
    }

    async fn set_queue(&self, queue: &str, setting: Setting) -> Result<()> {
        crate::enqueue::check_queue_name(queue)?;
        setting.check()?;
        queries::queue_set(self, queue, setting).await?;
        // This process's workers (SQLite has no NOTIFY; on PostgreSQL the function's
        // NOTIFY reaches the others).
        self.wake();
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
    }
}
