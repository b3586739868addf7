//! Enqueueing jobs: inside the caller's transaction (the job row commits or vanishes with
//! the data), or in autocommit outside any transaction.
//!
//! The transactional way is the obvious one: `tx.enqueue(task)`. Calling `db.enqueue`
//! while the same task runs a transaction closure on the same database — the race of
//! seed 000, where the worker can run before the data commits — is refused with
//! [`Error::EnqueueOutsideTransaction`].

use chrono::{DateTime, Utc};

use crate::conn::Conn;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::job::JobId;
use crate::queries::{self, NewJob};
use crate::task::{Task, TaskOptions};
use crate::transaction::{AfterCommit, Tx, in_scope_of};

/// Per-job choices that override the task's [`TaskOptions`]. One rule however a job is
/// enqueued: an option given here > what the task declares > the default. By task name
/// ([`Db::enqueue_raw`]), the declaration is the one the workers recorded in the database.
///
/// ```
/// use std::time::Duration;
/// use oncommit::EnqueueOptions;
/// let opts = EnqueueOptions::new().queue("emails").priority(1).delay(Duration::from_secs(60)).unique_key("welcome:42");
/// ```
///
/// Values are checked when the job is enqueued, and a bad one is refused with
/// [`Error::InvalidOption`] (nothing is enqueued): a queue name a worker could not serve, a
/// time out of the years 1..9999, a delay that overflows, fewer than one attempt.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct EnqueueOptions {
    queue: Option<String>,
    priority: Option<i16>,
    run_at: Option<DateTime<Utc>>,
    max_attempts: Option<i32>,
    unique_key: Option<String>,
    /// Uniqueness by content and dependencies: boxed, being rare, because every
    /// enqueue's future carries these options.
    rare: Option<Box<Rare>>,
    /// A value refused by a builder method that cannot fail, reported at enqueue.
    invalid: Option<(&'static str, String)>,
}

/// The options few jobs have.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rare {
    unique: Option<crate::Unique>,
    /// The jobs this one waits for.
    depends_on: Vec<JobId>,
    /// Run even after a parent failed or was cancelled.
    run_after_failed_parents: bool,
    /// Set by [`Workflow`](crate::Workflow) for its steps.
    workflow_id: Option<String>,
    /// Jobs sharing it run at most `key_limit` at a time.
    concurrency_key: Option<String>,
    key_limit: Option<u32>,
    /// The tenant whose turn the job waits for in a fair queue, and its share.
    fair_key: Option<String>,
    fair_weight: Option<u16>,
}

/// The longest queue name, in bytes: well within NOTIFY's payload, which carries it.
pub const MAX_QUEUE_NAME_BYTES: usize = 255;

/// Refuses a queue name a worker could not serve: empty, longer than
/// [`MAX_QUEUE_NAME_BYTES`], or containing `,` or `:` (the separators of `--queues a,b:4`).
pub(crate) fn check_queue_name(queue: &str) -> Result<()> {
    let reason = if queue.is_empty() {
        "it is empty".to_owned()
    } else if queue.len() > MAX_QUEUE_NAME_BYTES {
        format!("it is {} bytes long, more than {MAX_QUEUE_NAME_BYTES}", queue.len())
    } else if queue.contains([',', ':']) {
        format!("`{}` contains `,` or `:`, which separate queues in a worker's list", queue.escape_debug())
    } else if queue.chars().any(char::is_control) {
        format!("`{}` contains control characters", queue.escape_debug())
    } else {
        return Ok(());
    };
    Err(Error::InvalidOption { option: "queue name", reason })
}

/// The range of times a job may be scheduled at: what every client library can represent.
fn check_run_at(at: DateTime<Utc>) -> Result<i64> {
    let ms = at.timestamp_millis();
    // 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z.
    if (-62_135_596_800_000..253_402_300_800_000).contains(&ms) {
        Ok(ms)
    } else {
        Err(Error::InvalidOption { option: "run_at", reason: format!("{at} is outside the years 1 to 9999") })
    }
}

impl EnqueueOptions {
    /// No overrides.
    pub fn new() -> Self {
        EnqueueOptions::default()
    }

    /// The queue to put the job on.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The priority (lower runs first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Run no earlier than `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Run no earlier than `delay` from now. A delay past the year 9999 is refused at
    /// enqueue.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        match chrono::Duration::from_std(delay).ok().and_then(|d| Utc::now().checked_add_signed(d)) {
            Some(at) => self.run_at(at),
            None => {
                self.invalid = Some(("delay", format!("{delay:?} from now is past any representable time")));
                self
            }
        }
    }

    /// The number of attempts (at least 1; fewer is refused at enqueue).
    pub fn max_attempts(mut self, attempts: i32) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// While a job with this key is unfinished, enqueueing another returns the existing
    /// job's id instead of adding one.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Unique by content: while a job that is the same (see [`Unique`](crate::Unique)) is
    /// in one of the chosen states, enqueueing this one returns that job's id instead of
    /// adding one, or updates that job (`Unique::replace`). Not with [`unique_key`](Self::unique_key)
    /// (use [`Unique::by_key`](crate::Unique::by_key)).
    ///
    /// ```no_run
    /// # use oncommit::{Db, EnqueueOptions, Unique};
    /// # async fn demo(db: Db) -> oncommit::Result<()> {
    /// let opts = EnqueueOptions::new().unique(Unique::by_args());
    /// let first = db.enqueue_raw("refresh", &serde_json::json!({ "page": 3 }), opts.clone()).await?;
    /// let again = db.enqueue_raw("refresh", &serde_json::json!({ "page": 3 }), opts).await?;
    /// assert_eq!(first, again);
    /// # Ok(()) }
    /// ```
    pub fn unique(mut self, unique: crate::Unique) -> Self {
        self.rare().unique = Some(unique);
        self
    }

    /// Waits for these jobs, its parents: the job is `pending` until every one has
    /// completed, then becomes `available` (or `scheduled`, by its run time) in the
    /// transaction that completes the last of them. If a parent fails for good or is
    /// cancelled, the job is cancelled, naming that parent (unless
    /// [`run_after_failed_parents`](Self::run_after_failed_parents)). The parents must exist
    /// (enqueued earlier in the same transaction, or committed); not with `unique_key` or
    /// `unique`. Guide: `docs/workflows.md`.
    ///
    /// ```no_run
    /// # use oncommit::{Db, EnqueueOptions};
    /// # async fn demo(db: Db) -> oncommit::Result<()> {
    /// let mut tx = db.begin().await?;
    /// let export = tx.enqueue_raw("export", &serde_json::json!({ "day": "2026-11-23" }), EnqueueOptions::new()).await?;
    /// let notify = EnqueueOptions::new().depends_on([export]);
    /// tx.enqueue_raw("notify_finance", &serde_json::json!({}), notify).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn depends_on(mut self, parents: impl IntoIterator<Item = JobId>) -> Self {
        self.rare().depends_on.extend(parents);
        self
    }

    /// Jobs sharing `key` run one at a time (or [`concurrency_key_limit`](Self::concurrency_key_limit)
    /// at a time), admitted in enqueue order, across all workers on all machines: all the
    /// jobs of one customer, say, while other customers' keep flowing. A job enqueued while
    /// its key's slots are taken waits in `pending`, and is admitted in the transaction that
    /// finishes one of them. Not with `depends_on`, `unique` or `unique_key`. Guide:
    /// `docs/flow-control.md`.
    ///
    /// ```no_run
    /// # use oncommit::{Db, EnqueueOptions};
    /// # async fn demo(db: Db) -> oncommit::Result<()> {
    /// let opts = EnqueueOptions::new().concurrency_key("customer:42");
    /// db.enqueue_raw("sync_ledger", &serde_json::json!({ "customer": 42 }), opts).await?;
    /// # Ok(()) }
    /// ```
    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.rare().concurrency_key = Some(key.into());
        self
    }

    /// How many jobs of its [`concurrency_key`](Self::concurrency_key) may run at once (at
    /// least 1; default 1). The oldest waiting job's limit is the one applied.
    pub fn concurrency_key_limit(mut self, limit: u32) -> Self {
        self.rare().key_limit = Some(limit);
        self
    }

    /// The fairness key of the job: the tenant, customer or account it is for. Its queue
    /// becomes fair: workers claim its jobs round robin across the keys that have jobs
    /// available (priority first, then by enqueue order within a key), across all workers,
    /// so one key's backlog of 100,000 jobs does not hold up another key's 10. No slot
    /// stays idle while any key has an available job. Jobs without a key in a fair queue
    /// run when no keyed job is available: give every job of a fair queue a key. Guide:
    /// `docs/fairness.md`.
    ///
    /// ```no_run
    /// # use oncommit::{Db, EnqueueOptions};
    /// # async fn demo(db: Db) -> oncommit::Result<()> {
    /// let opts = EnqueueOptions::new().queue("exports").fair_key("customer:42");
    /// db.enqueue_raw("export_report", &serde_json::json!({ "report": 7 }), opts).await?;
    /// # Ok(()) }
    /// ```
    pub fn fair_key(mut self, key: impl Into<String>) -> Self {
        self.rare().fair_key = Some(key.into());
        self
    }

    /// The share of its [`fair_key`](Self::fair_key): the jobs the key gets per round (1
    /// to 1,000; default 1). The oldest available job's weight is its key's.
    pub fn fair_weight(mut self, weight: u16) -> Self {
        self.rare().fair_weight = Some(weight);
        self
    }

    /// Runs the job once every parent has finished, whether it completed, failed or was
    /// cancelled (a clean-up step), instead of being cancelled by a parent's failure.
    pub fn run_after_failed_parents(mut self) -> Self {
        self.rare().run_after_failed_parents = true;
        self
    }

    /// The rare options, made on first use.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Marks the job as a step of workflow `id`.
    pub(crate) fn in_workflow(mut self, id: String) -> Self {
        self.rare().workflow_id = Some(id);
        self
    }

    /// The job to insert: these options over `declared` (the task's own, when the caller
    /// knows its type), each checked. What neither gives is left to the database, which
    /// applies the task's recorded declaration, else the defaults.
    pub(crate) fn build(&self, task: &str, args: String, declared: Option<&TaskOptions>) -> Result<NewJob> {
        if let Some((option, reason)) = &self.invalid {
            return Err(Error::InvalidOption { option, reason: reason.clone() });
        }
        let queue = self.queue.clone().or_else(|| declared.map(|d| d.queue.clone()));
        if let Some(queue) = &queue {
            check_queue_name(queue)?;
        }
        let max_attempts = self.max_attempts.or(declared.map(|d| d.max_attempts));
        if let Some(n) = max_attempts {
            check_max_attempts(n)?;
        }
        // The task's own uniqueness, unless this job says otherwise.
        let declared_unique = declared.and_then(|d| d.unique.as_ref()).filter(|_| self.unique_key.is_none());
        let rare = self.rare.as_deref();
        let own_unique = rare.and_then(|r| r.unique.as_ref());
        let unique = match (own_unique.or(declared_unique), &self.unique_key) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidOption {
                    option: "unique",
                    reason:
                        "both unique_key and unique were given: use Unique::by_key for a key with periods or states"
                            .to_owned(),
                });
            }
            (Some(unique), None) => {
                Some(unique.identity(task, &args, queue.as_deref(), Utc::now().timestamp_millis())?)
            }
            (None, _) => None,
        };
        let mut depends_on: Vec<i64> = rare.map(|r| r.depends_on.iter().map(|id| id.0).collect()).unwrap_or_default();
        depends_on.sort_unstable();
        depends_on.dedup();
        if !depends_on.is_empty() && (unique.is_some() || self.unique_key.is_some()) {
            return Err(Error::InvalidOption {
                option: "depends_on",
                reason: "a job with parents cannot also be unique (unique_key or unique)".to_owned(),
            });
        }
        let concurrency_key = rare.and_then(|r| r.concurrency_key.clone());
        let key_limit = rare.and_then(|r| r.key_limit);
        if let Some(key) = &concurrency_key {
            check_concurrency_key(
                key,
                key_limit,
                !depends_on.is_empty(),
                unique.is_some() || self.unique_key.is_some(),
            )?;
        } else if key_limit.is_some() {
            return Err(Error::InvalidOption {
                option: "concurrency_key_limit",
                reason: "a limit without a concurrency_key limits nothing".to_owned(),
            });
        }
        let fair_key = rare.and_then(|r| r.fair_key.clone());
        let fair_weight = rare.and_then(|r| r.fair_weight);
        check_fair_key(fair_key.as_deref(), fair_weight)?;
        Ok(NewJob {
            task: task.to_owned(),
            args,
            queue,
            priority: self.priority.or(declared.map(|d| d.priority)),
            run_at_ms: self.run_at.map(check_run_at).transpose()?,
            max_attempts,
            unique_key: self.unique_key.clone(),
            unique,
            depends_on,
            on_parent_failure: rare.is_some_and(|r| r.run_after_failed_parents).then_some("run"),
            workflow_id: rare.and_then(|r| r.workflow_id.clone()),
            key_limit: key_limit.map_or(1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            concurrency_key,
            fair_key,
            fair_weight: fair_weight.map(|w| w as i16),
            trace_context: crate::trace::current_context(),
        })
    }
}

/// Refuses a concurrency key no one could read back, a limit of 0, and the combinations
/// not supported.
fn check_concurrency_key(key: &str, limit: Option<u32>, has_parents: bool, unique: bool) -> Result<()> {
    let refuse = |option, reason: String| Err(Error::InvalidOption { option, reason });
    if key.is_empty() || key.len() > 1024 || key.chars().any(char::is_control) {
        return refuse("concurrency_key", "it must be 1 to 1024 bytes, without control characters".to_owned());
    }
    if limit.is_some_and(|n| n == 0 || n > i32::MAX as u32) {
        return refuse("concurrency_key_limit", format!("{}: it must be 1 to {}", limit.unwrap_or(0), i32::MAX));
    }
    if has_parents || unique {
        return refuse(
            "concurrency_key",
            "a job with a concurrency key cannot also have parents or be unique (not supported yet)".to_owned(),
        );
    }
    Ok(())
}

/// The most a fairness key may weigh: its share against a key of weight 1.
pub(crate) const MAX_FAIR_WEIGHT: u16 = 1_000;

/// Refuses a fairness key no one could read back, and a weight out of 1..=1000 or without
/// a key.
pub(crate) fn check_fair_key(key: Option<&str>, weight: Option<u16>) -> Result<()> {
    let refuse = |option, reason: String| Err(Error::InvalidOption { option, reason });
    match (key, weight) {
        (Some(key), _) if key.is_empty() || key.len() > 255 || key.chars().any(char::is_control) => {
            refuse("fair_key", "it must be 1 to 255 bytes, without control characters".to_owned())
        }
        (_, Some(w)) if w == 0 || w > MAX_FAIR_WEIGHT => {
            refuse("fair_weight", format!("{w}: it must be 1 to {MAX_FAIR_WEIGHT}"))
        }
        (None, Some(_)) => refuse("fair_weight", "a weight without a fair_key weighs nothing".to_owned()),
        _ => Ok(()),
    }
}

/// Refuses fewer than one attempt.
pub(crate) fn check_max_attempts(attempts: i32) -> Result<()> {
    if attempts < 1 {
        return Err(Error::InvalidOption {
            option: "max_attempts",
            reason: format!("{attempts}: a job needs at least one attempt"),
        });
    }
    Ok(())
}

fn new_job<T: Task>(task: &T, opts: &EnqueueOptions) -> Result<NewJob> {
    let args = serde_json::to_string(task)
        .map_err(|e| Error::InvalidArgs { task: T::NAME.to_owned(), reason: e.to_string() })?;
    opts.build(T::NAME, args, Some(&T::options()))
}

fn new_raw_job(task: &str, args: &serde_json::Value, opts: &EnqueueOptions) -> Result<NewJob> {
    if !args.is_object() && !args.is_array() {
        return Err(Error::InvalidArgs { task: task.to_owned(), reason: "args must be a JSON object or array".into() });
    }
    opts.build(task, args.to_string(), None)
}

impl Tx<'_> {
    /// Enqueues `task` in this transaction: the job exists if and only if the transaction
    /// commits, and workers are woken at the commit.
    pub async fn enqueue<T: Task>(&mut self, task: T) -> Result<JobId> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// [`Tx::enqueue`] with per-job options.
    pub async fn enqueue_with<T: Task>(&mut self, task: T, opts: EnqueueOptions) -> Result<JobId> {
        let job = new_job(&task, &opts)?;
        self.insert(std::slice::from_ref(&job)).await.map(|ids| ids[0])
    }

    /// Enqueues many jobs of one task in one statement.
    pub async fn enqueue_many<T: Task>(&mut self, tasks: impl IntoIterator<Item = T>) -> Result<Vec<JobId>> {
        let opts = EnqueueOptions::new();
        let jobs = tasks.into_iter().map(|t| new_job(&t, &opts)).collect::<Result<Vec<_>>>()?;
        self.insert(&jobs).await
    }

    /// Enqueues a job by task name and JSON arguments (for tools and other languages'
    /// tasks); the worker checks that it knows the task when it claims the job. Options
    /// left out come from what the task declares, as its workers recorded it (see
    /// [`Workers::tasks`](crate::admin::Workers::tasks)), else the defaults.
    pub async fn enqueue_raw(&mut self, task: &str, args: &serde_json::Value, opts: EnqueueOptions) -> Result<JobId> {
        let job = new_raw_job(task, args, &opts)?;
        self.insert(std::slice::from_ref(&job)).await.map(|ids| ids[0])
    }

    pub(crate) async fn insert(&mut self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        // Boxed: the insert's future is large (every kind of insert, both backends), and it
        // would otherwise be part of every future that enqueues.
        let inserted = match Box::pin(queries::job_insert(self.own_conn(), jobs)).await {
            Ok(inserted) => inserted,
            Err(err) => {
                self.own_statement_failed();
                return Err(err);
            }
        };
        self.after_commit(WakeWorkers::default).queues.extend(inserted.wake);
        Ok(inserted.ids)
    }
}

/// Wakes the workers once the transaction that enqueued jobs commits: this process's at
/// once, and other processes' serving `queues` (those that got available jobs) by NOTIFY,
/// sent by the notifier off the committing task. One per transaction, however many jobs.
#[derive(Default)]
pub(crate) struct WakeWorkers {
    pub(crate) queues: std::collections::BTreeSet<String>,
}

impl AfterCommit for WakeWorkers {
    fn committed(self: Box<Self>, db: &Db) {
        db.wake();
        db.wake_other_processes(self.queues.into_iter().collect());
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Db {
    /// Enqueues `task` in autocommit: the job is committed when this returns. Inside a
    /// transaction closure on this database this is refused
    /// ([`Error::EnqueueOutsideTransaction`]): use `tx.enqueue` there.
    pub async fn enqueue<T: Task>(&self, task: T) -> Result<JobId> {
        self.enqueue_with(task, EnqueueOptions::new()).await
    }

    /// [`Db::enqueue`] with per-job options.
    pub async fn enqueue_with<T: Task>(&self, task: T, opts: EnqueueOptions) -> Result<JobId> {
        let job = new_job(&task, &opts)?;
        self.insert(std::slice::from_ref(&job)).await.map(|ids| ids[0])
    }

    /// Enqueues many jobs of one task in one statement, in autocommit.
    pub async fn enqueue_many<T: Task>(&self, tasks: impl IntoIterator<Item = T>) -> Result<Vec<JobId>> {
        let opts = EnqueueOptions::new();
        let jobs = tasks.into_iter().map(|t| new_job(&t, &opts)).collect::<Result<Vec<_>>>()?;
        self.insert(&jobs).await
    }

    /// Enqueues a job by task name and JSON arguments, in autocommit.
    pub async fn enqueue_raw(&self, task: &str, args: &serde_json::Value, opts: EnqueueOptions) -> Result<JobId> {
        let job = new_raw_job(task, args, &opts)?;
        self.insert(std::slice::from_ref(&job)).await.map(|ids| ids[0])
    }

    /// Enqueues `task` on a connection you manage with sqlx: your own transaction
    /// (`&mut *tx` of a `sqlx::Transaction<'_, Postgres>` or `<'_, Sqlite>`) or a bare
    /// `&mut PgConnection` / `&mut SqliteConnection` (River's `InsertTx`). The job commits or
    /// vanishes with that transaction, with the same options, declarations and uniqueness as
    /// [`Tx::enqueue`].
    ///
    /// Wake-ups: oncommit cannot see your commit, so on PostgreSQL the job's `NOTIFY` goes
    /// inside your transaction (the server delivers it at the commit, and never on a
    /// rollback; such commits queue behind each other's WAL flush, which `tx.enqueue`
    /// avoids); on SQLite this process's workers are woken at once, and their claim waits for
    /// your write lock. Either way a worker's poll is the backstop.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db, pool: sqlx::PgPool) -> oncommit::Result<()> {
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct SendWelcome { user: i64 }
    /// # impl oncommit::Task for SendWelcome {
    /// #     const NAME: &'static str = "send_welcome";
    /// #     async fn run(self, _: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> { Ok(()) }
    /// # }
    /// let mut tx = pool.begin().await?;
    /// let user: i64 = sqlx::query_scalar("INSERT INTO users (name) VALUES ('ada') RETURNING id")
    ///     .fetch_one(&mut *tx)
    ///     .await?;
    /// db.enqueue_in(&mut *tx, SendWelcome { user }).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_in<'c, T: Task>(&self, conn: impl Into<Conn<'c>>, task: T) -> Result<JobId> {
        self.enqueue_in_with(conn, task, EnqueueOptions::new()).await
    }

    /// [`Db::enqueue_in`] with per-job options.
    pub async fn enqueue_in_with<'c, T: Task>(
        &self,
        conn: impl Into<Conn<'c>>,
        task: T,
        opts: EnqueueOptions,
    ) -> Result<JobId> {
        let job = new_job(&task, &opts)?;
        let mut conn = conn.into();
        if conn.backend() != self.backend() {
            return Err(Error::Unsupported {
                feature: "enqueueing on a connection of the other backend",
                backend: self.backend(),
            });
        }
        let inserted = queries::job_insert(conn.reborrow(), std::slice::from_ref(&job)).await?;
        on_driver!(conn, sleepers_wake(&inserted.wake))?;
        if !on_backend!(self.backend(), const NOTIFIES) {
            self.wake();
        }
        Ok(inserted.ids[0])
    }

    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        if in_scope_of(self) {
            return Err(Error::EnqueueOutsideTransaction);
        }
        let _turn = self.writing().await?;
        let mut conn = self.acquire().await?;
        // Autocommit: the insert has committed when it returns (behind a transaction
        // pooler, in a transaction of its own).
        let opened = conn.open_pooled(self.pooled_begin()).await?;
        let inserted = queries::job_insert(conn.conn(), jobs).await;
        conn.close_pooled(opened, inserted.is_ok()).await?;
        let inserted = inserted?;
        drop(conn);
        self.wake();
        self.wake_other_processes(inserted.wake);
        Ok(inserted.ids)
    }
}
