//! [`Task`]: a typed unit of background work with a serde payload, and what it can say
//! about how it ended ([`TaskError`]).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::db::Db;
use crate::error::{BoxError, Error, Result};
use crate::job::{Job, JobId, JobState};
use crate::queries::{self, Transition};
use crate::retry_policy::RetryPolicy;
use crate::transaction::Tx;

/// A kind of background work. Its value is the payload, stored as JSON in the job row.
///
/// ```
/// use oncommit::{Task, TaskContext, TaskError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendWelcome { user_id: i64 }
///
/// impl Task for SendWelcome {
///     const NAME: &'static str = "send_welcome";
///
///     async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
///         println!("welcoming user {} (attempt {})", self.user_id, cx.attempt());
///         Ok(())
///     }
/// }
/// ```
pub trait Task: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name stored in each job row; renaming it orphans queued jobs.
    const NAME: &'static str;

    /// Defaults for jobs of this task (each enqueue may override them).
    fn options() -> TaskOptions {
        TaskOptions::default()
    }

    /// Does the work. Return `Ok` to complete the job, or a [`TaskError`] to say how it
    /// should go on. A panic fails the attempt; the worker lives on.
    fn run(self, cx: &mut TaskContext) -> impl Future<Output = Result<(), TaskError>> + Send;
}

/// Defaults for the jobs of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOptions {
    /// The queue its jobs go to.
    pub queue: String,
    /// Lower runs first.
    pub priority: i16,
    /// Attempts before the job is `failed`.
    pub max_attempts: i32,
    /// Longest run of one attempt; `None` for no limit (the lease still needs heartbeats).
    pub timeout: Option<Duration>,
    /// How long to wait before the next attempt after a failure.
    pub retry: RetryPolicy,
    /// Unique by content: what makes two of its jobs the same (see [`Unique`](crate::Unique)).
    /// Applies to jobs enqueued by type from Rust (`tx.enqueue(task)`); a per-job
    /// `EnqueueOptions::unique` or `unique_key` takes its place.
    pub unique: Option<crate::Unique>,
}

impl Default for TaskOptions {
    /// Queue `default`, priority 0, 25 attempts, no timeout, exponential backoff.
    fn default() -> Self {
        TaskOptions {
            queue: crate::defaults::QUEUE.to_owned(),
            priority: crate::defaults::PRIORITY,
            max_attempts: crate::defaults::MAX_ATTEMPTS,
            timeout: None,
            retry: RetryPolicy::default(),
            unique: None,
        }
    }
}

impl TaskOptions {
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Makes its jobs unique by content (see [`Unique`](crate::Unique)).
    pub fn unique(mut self, unique: crate::Unique) -> Self {
        self.unique = Some(unique);
        self
    }

    /// Sets the priority (lower runs first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the number of attempts (at least 1: fewer is refused when a job is enqueued).
    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the longest run of one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the backoff between attempts.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// How a task run ended, when not with success. Any error converts into
/// [`TaskError::Failed`] with `?`.
#[derive(Debug)]
pub enum TaskError {
    /// The attempt failed: the job runs again after the task's backoff while attempts
    /// remain, and is `failed` after the last one. The message goes into its error history.
    Failed(BoxError),
    /// The attempt failed and the job should run again after exactly this delay.
    RetryAfter {
        /// How long to wait.
        delay: Duration,
        /// Why, for the error history.
        reason: String,
    },
    /// Not now: run again after this delay, without using up an attempt.
    Snooze(Duration),
    /// Give up for good: the job is `cancelled`, with this reason in its history.
    Cancel(String),
}

impl TaskError {
    /// A failed attempt with this message.
    pub fn fail(message: impl Into<String>) -> TaskError {
        TaskError::Failed(message.into().into())
    }

    /// A failed attempt to retry after `delay`.
    pub fn retry_after(delay: Duration, reason: impl Into<String>) -> TaskError {
        TaskError::RetryAfter { delay, reason: reason.into() }
    }

    /// Run again after `delay` without using an attempt.
    pub fn snooze(delay: Duration) -> TaskError {
        TaskError::Snooze(delay)
    }

    /// Cancel the job for good.
    pub fn cancel(reason: impl Into<String>) -> TaskError {
        TaskError::Cancel(reason.into())
    }
}

impl<E: Into<BoxError>> From<E> for TaskError {
    fn from(err: E) -> Self {
        TaskError::Failed(err.into())
    }
}

/// What a running task knows about its job, and the door to transactional completion.
pub struct TaskContext {
    job: Job,
    db: Db,
    /// Turns true when the worker no longer holds the job (see [`TaskContext::is_lease_lost`]).
    lease_lost: tokio::sync::watch::Receiver<bool>,
    /// The worker's lease: the longest a completing transaction may sit idle on the server.
    lease: std::time::Duration,
    /// Set once [`TaskContext::complete_in_tx`] committed: the worker must not complete
    /// the job again.
    completed: bool,
    /// What to store with the job when it completes (JSON text), set by the task.
    result: Option<String>,
}

impl TaskContext {
    pub(crate) fn new(
        job: Job,
        db: Db,
        lease_lost: tokio::sync::watch::Receiver<bool>,
        lease: std::time::Duration,
    ) -> TaskContext {
        TaskContext { job, db, lease_lost, lease, completed: false, result: None }
    }

    /// Stores `result` with the job when it completes: its dependants read it
    /// ([`TaskContext::parents`]), and so do `oncommit job` and the dashboard. It is kept
    /// as long as the job (the completed-jobs retention). Call it before returning `Ok`, or
    /// before [`TaskContext::complete_in_tx`], which stores it in its transaction. A job
    /// that does not complete stores nothing.
    ///
    /// ```no_run
    /// # use oncommit::{TaskContext, TaskError};
    /// # async fn run(cx: &mut TaskContext) -> Result<(), TaskError> {
    /// cx.set_result(&serde_json::json!({ "rows": 1204, "file": "s3://exports/1204.csv" }))?;
    /// Ok(())
    /// # }
    /// ```
    pub fn set_result<R: serde::Serialize + ?Sized>(&mut self, result: &R) -> Result<()> {
        self.result = Some(serde_json::to_string(result).map_err(Error::app)?);
        Ok(())
    }

    /// The result set so far, JSON text.
    pub(crate) fn take_result(&mut self) -> Option<String> {
        self.result.take()
    }

    /// The jobs this one depends on, with their states and results, by id.
    ///
    /// ```no_run
    /// # use oncommit::{TaskContext, TaskError};
    /// # async fn run(cx: &mut TaskContext) -> Result<(), TaskError> {
    /// let rows: i64 = cx.parents().await?.iter()
    ///     .filter(|p| p.task == "export_part")
    ///     .filter_map(|p| p.result.as_ref()?.get("rows")?.as_i64())
    ///     .sum();
    /// # Ok(()) }
    /// ```
    pub async fn parents(&self) -> Result<Vec<crate::Parent>> {
        crate::queries::job_parents(&self.db, self.job.id).await
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> i32 {
        self.job.attempt
    }

    /// How many attempts the job has in all.
    pub fn max_attempts(&self) -> i32 {
        self.job.max_attempts
    }

    /// The job row as claimed.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The database, for the task's own queries.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Whether this worker has lost the job's lease: the database no longer gives the job to
    /// it (its lease ran out and it was rescued, or a user deleted it), or renewals failed
    /// until the lease ran out. The job will run again elsewhere, and this attempt's outcome
    /// will not be recorded; a long task should stop. [`TaskContext::complete_in_tx`]
    /// refuses to commit for such an attempt.
    pub fn is_lease_lost(&self) -> bool {
        *self.lease_lost.borrow()
    }

    /// Resolves when the lease is lost (see [`TaskContext::is_lease_lost`]); never, while
    /// the worker holds it. For `tokio::select!` against the task's work:
    ///
    /// ```no_run
    /// # use oncommit::{TaskContext, TaskError};
    /// # async fn long_work() {}
    /// # async fn run(cx: &mut TaskContext) -> Result<(), TaskError> {
    /// tokio::select! {
    ///     () = long_work() => Ok(()),
    ///     () = cx.lease_lost() => Err(TaskError::fail("lease lost: stopped early")),
    /// }
    /// # }
    /// ```
    pub async fn lease_lost(&self) {
        let mut lost = self.lease_lost.clone();
        if lost.wait_for(|lost| *lost).await.is_err() {
            // The worker forgot the job without losing the lease: it never will.
            std::future::pending::<()>().await;
        }
    }

    pub(crate) fn completed(&self) -> bool {
        self.completed
    }

    /// Runs `f` in a transaction that also marks this job completed, so the task's
    /// database effects and its completion commit together: exactly once, even if the
    /// worker crashes right after. If this worker no longer holds the job (its lease
    /// expired and it was handed to another worker), nothing is committed and
    /// [`Error::LeaseLost`] is returned.
    ///
    /// ```no_run
    /// # use oncommit::{TaskContext, TaskError};
    /// # async fn run(cx: &mut TaskContext) -> Result<(), TaskError> {
    /// let job_id = cx.id().0;
    /// cx.complete_in_tx(async move |tx| {
    ///     sqlx::query("INSERT INTO ledger (job_id) VALUES ($1)").bind(job_id).execute(tx.postgres()?).await?;
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn complete_in_tx<T, F>(&mut self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut Tx<'_>) -> Result<T>,
    {
        let change = Transition {
            id: self.job.id.0,
            attempt: self.job.attempt,
            state: JobState::Completed,
            delay_ms: None,
            error: None,
            extra: 0,
            result: self.result.clone(),
        };
        let mut tx = self.db.begin().await?;
        // This transaction will hold the job's row lock. Should the worker vanish behind a
        // silent network partition before its COMMIT arrives, the server ends the session once
        // it has sat idle for a lease, so the job can be rescued, instead of keeping the lock
        // for as long as the OS takes to notice (two hours).
        on_driver!(tx.conn(), transaction_idle_limit(self.lease))?;
        let value = match f(&mut tx).await {
            Ok(value) => value,
            Err(err) => {
                tx.rollback().await.ok();
                return Err(err);
            }
        };
        match queries::job_set_state_if_running(tx.conn(), &change).await? {
            None => {
                tx.rollback().await.ok();
                return Err(Error::LeaseLost { job: self.job.id, attempt: self.job.attempt });
            }
            // Its dependants may have become available in this transaction: this process's
            // workers look at the commit (PostgreSQL's trigger NOTIFYs the others).
            Some(true) => {
                tx.after_commit(crate::enqueue::WakeWorkers::default);
            }
            Some(false) => {}
        }
        tx.commit().await?;
        self.completed = true;
        Ok(value)
    }
}
