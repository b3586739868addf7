//! [`Worker`]: claims jobs in batches, runs them with retries, leases and heartbeats, and
//! shuts down gracefully. The guide is `docs/jobs.md`.
//!
//! Inside, each part has a file: `fetcher` (one claim loop per queue), `slots` (a queue's
//! concurrency and prefetch), `executor` (one job),
//! `held` (the jobs this worker holds, whose leases it renews), `completer` (batched state
//! changes), `listener` (PostgreSQL LISTEN), `outage` (backoff and logging while the
//! database fails), `wakers` (per-queue wake-ups), `registry` (task types by name).
//!
//! The background duties run under one start/stop contract (`services`), each in its
//! file: `heartbeat` (leases, liveness, cancels), `ticker` (the tick that promotes due jobs
//! and rescues expired leases), `leader` (the election), and the leader's `periodic_jobs`
//! `pruner` and `vacuumer`.

mod completer;
mod drain;
mod executor;
mod fetcher;
mod heartbeat;
mod held;
mod history;
mod leader;
#[cfg(feature = "postgres")]
mod listener;
mod outage;
mod periodic_jobs;
mod pruner;
mod registry;
mod services;
mod slots;
mod ticker;
mod vacuumer;
mod wakers;

pub use drain::Drained;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::activity::ActivityCounter;
use crate::db::Db;
use crate::error::Result;
use crate::periodic::Periodic;
use crate::queries;
use crate::shutdown::Shutdown;
use crate::task::Task;

use held::{Held, Stop};
use leader::Leadership;
use outage::{Backoff, Outage};
use registry::Registry;
use services::Services;
use slots::Slots;
use wakers::Wakers;

/// How long finished jobs are kept before the leader prunes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs.
    pub completed: Duration,
    /// Failed and cancelled jobs (kept longer, for inspection).
    pub discarded: Duration,
}

impl Default for Retention {
    /// Completed jobs for a day, failed and cancelled ones for a week.
    fn default() -> Self {
        Retention { completed: Duration::from_secs(24 * 3600), discarded: Duration::from_secs(7 * 24 * 3600) }
    }
}

/// The timings and sizes of a worker.
#[derive(Debug, Clone)]
struct Config {
    /// How often to look for work when no wake-up came.
    poll_interval: Duration,
    /// How long a claimed job is ours without a heartbeat.
    lease: Duration,
    /// How often leases are renewed (well under `lease`).
    heartbeat_interval: Duration,
    /// Most jobs claimed in one statement.
    batch_size: usize,
    /// Jobs claimed beyond the concurrency, to wait in the worker; `None` to follow the
    /// run times.
    prefetch: Option<usize>,
    /// Longest wait for running jobs at shutdown before they are released.
    shutdown_timeout: Duration,
    /// Whether to LISTEN on PostgreSQL (off behind a transaction-mode pooler).
    listen: bool,
    retention: Retention,
    prune_interval: Duration,
    /// Longest wait for the answer to one of the worker's own statements; `None` for the
    /// lease.
    query_timeout: Option<Duration>,
}

impl Config {
    /// The bound on each of the worker's statements: a statement slower than the lease is
    /// worthless, since the lease runs out meanwhile.
    fn query_timeout(&self) -> Duration {
        self.query_timeout.unwrap_or(self.lease)
    }

    /// How long a connection of the worker's busy pool (claims, completions, lease
    /// renewals) may stay unused before it is closed: a worker that went quiet gives them
    /// back to the server's budget within about twice this.
    fn idle_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// How long a leadership lasts unless renewed; it is renewed every half of it, so an
    /// idle worker elects about once per 5 s, and a dead leader is replaced within 10 s.
    fn leader_ttl(&self) -> Duration {
        (self.poll_interval * 10).max(Duration::from_secs(10))
    }

    /// Server-side settings of the worker's own PostgreSQL sessions: a session that stops
    /// answering (a silent network partition) is ended by the server, releasing its row
    /// locks, instead of lingering for the OS's two-hour keepalive; and the planner keeps
    /// the worker's statements on their indexes (`queries::PLANNER_SETTINGS`).
    fn session_settings(&self) -> Vec<(&'static str, String)> {
        let ms = |d: Duration| u128::max(d.as_millis(), 1).to_string();
        let planner = queries::PLANNER_SETTINGS.iter().map(|(name, value)| (*name, (*value).to_owned()));
        planner
            .chain([
                ("statement_timeout", ms(self.query_timeout())),
                ("idle_in_transaction_session_timeout", ms(self.lease)),
                ("tcp_keepalives_idle", "5".into()),
                ("tcp_keepalives_interval", "2".into()),
                ("tcp_keepalives_count", "3".into()),
                ("tcp_user_timeout", ms(self.query_timeout())),
            ])
            .collect()
    }
}

/// What the worker's tasks share.
pub(crate) struct Shared {
    /// The application's pool: tasks run on it.
    db: Db,
    /// The worker's own small pool (claims, completions, heartbeats, maintenance, LISTEN):
    /// tasks cannot take its connections, so leases are renewed however busy they are.
    services: Db,
    /// A pool of one connection for the statements a worker sends when it has nothing to
    /// do (the tick, the election, its liveness row, the leader's periodic enqueues and
    /// pruning): they take turns on it, so an idle worker holds this connection and its
    /// LISTEN one, and the busy pool's connections close after their idle timeout.
    quiet: Db,
    registry: Registry,
    config: Config,
    /// This worker's lease-owner id: host, process, and a random part.
    id: String,
    hostname: String,
    pid: i32,
    /// The queues and their concurrency, as JSON for the workers table.
    queues_json: String,
    /// The jobs this worker holds: their leases are renewed, a cancel or the shutdown
    /// can stop them.
    held: Arc<Held>,
    /// Whether the database answers, for logging an outage once.
    outage: Arc<Outage>,
    /// Wakes each queue's claim loops.
    wakers: Wakers,
    /// The queues served, for the maintenance tick's question "which have work?".
    queue_names: Vec<String>,
    /// Finished attempts on their way to the completer, with their slots.
    completions: mpsc::Sender<completer::Finished>,
    /// Bumped by the completer after each batch it writes: running rows went away, so a
    /// queue at its concurrency limit may claim again.
    written: Arc<tokio::sync::watch::Sender<u64>>,
    periodic: Vec<Periodic>,
    /// What this worker's jobs did, per queue and minute, until the heartbeat writes it.
    activity: ActivityCounter,
    /// The queues this worker is recorded asleep on (`oncommit.sleepers`, PostgreSQL):
    /// enqueues from SQL NOTIFY only while some worker is.
    asleep: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Whether the database's schema suits this binary (`migrate::SchemaStatus`): checked
    /// at start and by the heartbeat, after an outage and every minute; the claim loops
    /// claim nothing while it does not (a contract migration, a failover to a server
    /// migrated differently).
    schema_usable: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    /// Whether this worker records its sleeps: it hears NOTIFY (PostgreSQL, listening).
    fn records_sleep(&self) -> bool {
        self.config.listen && on_backend!(self.db.backend(), const NOTIFIES)
    }

    fn asleep(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<String>> {
        self.asleep.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs jobs. Build it, register task types, choose queues, then [`Worker::run`].
///
/// ```no_run
/// # use oncommit::{Db, Shutdown, Task, TaskContext, TaskError, Worker};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct DoStuff { pk: i64 }
/// # impl Task for DoStuff { const NAME: &'static str = "do_stuff";
/// #   async fn run(self, _: &mut TaskContext) -> Result<(), TaskError> { Ok(()) } }
/// # async fn demo(db: Db) -> oncommit::Result<()> {
/// Worker::new(db)
///     .register::<DoStuff>()
///     .queue("default", 8)
///     .run(Shutdown::on_signal())
///     .await
/// # }
/// ```
pub struct Worker {
    db: Db,
    registry: Registry,
    queues: Vec<(String, usize)>,
    /// Queue-wide limits to record when the worker starts.
    limits: Vec<(String, queries::Setting)>,
    config: Config,
    periodic: Vec<Periodic>,
}

impl Worker {
    /// A worker on `db` with no tasks and no queues yet (queue `default` with 10 slots if
    /// none is added).
    pub fn new(db: Db) -> Worker {
        Worker {
            db,
            registry: Registry::default(),
            queues: Vec::new(),
            limits: Vec::new(),
            config: Config {
                poll_interval: Duration::from_secs(1),
                lease: Duration::from_secs(30),
                heartbeat_interval: Duration::from_secs(10),
                batch_size: 250,
                prefetch: None,
                shutdown_timeout: Duration::from_secs(30),
                listen: true,
                retention: Retention::default(),
                prune_interval: Duration::from_secs(60),
                query_timeout: None,
            },
            periodic: Vec::new(),
        }
    }

    /// Lets this worker run jobs of task `T`.
    pub fn register<T: Task>(mut self) -> Self {
        self.registry.register::<T>();
        self
    }

    /// Serves `queue` with up to `concurrency` jobs at once.
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency.max(1)));
        self
    }

    /// At most `limit` jobs of `queue` run at once across all workers, recorded in the
    /// database when this worker starts (as [`Queues::set_concurrency_limit`](crate::admin::Queues::set_concurrency_limit) does at
    /// any time). Like a task's declaration, the last worker started wins: a limit changed
    /// at runtime (CLI, dashboard, SQL) holds until a worker that sets one in code starts.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// oncommit::Worker::new(db)
    ///     .queue("partner_api", 10)
    ///     .queue_limit("partner_api", 5)
    ///     .run(oncommit::Shutdown::on_signal())
    ///     .await
    /// # }
    /// ```
    pub fn queue_limit(mut self, queue: impl Into<String>, limit: u32) -> Self {
        self.limits.push((queue.into(), queries::Setting::ConcurrencyLimit(Some(limit))));
        self
    }

    /// At most `limit.max_starts` starts of `queue`'s jobs per `limit.period` across all
    /// workers, recorded when this worker starts (see [`Worker::queue_limit`]).
    pub fn queue_rate_limit(mut self, queue: impl Into<String>, limit: crate::admin::RateLimit) -> Self {
        self.limits.push((queue.into(), queries::Setting::RateLimit(Some(limit))));
        self
    }

    /// How often to look for work without a wake-up (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// How long a claimed job stays this worker's without a heartbeat (default 30 s); the
    /// heartbeat renews it every third of that.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self.config.heartbeat_interval = lease / 3;
        self
    }

    /// How often leases are renewed (default a third of the lease).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self
    }

    /// Most jobs claimed in one statement (default 250). A queue with a backlog claims in
    /// batches of up to this many, two claims at once when it has 8 slots or more; larger
    /// batches mean fewer statements, each holding its rows' locks a little longer.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.config.batch_size = size.max(1);
        self
    }

    /// Jobs each queue claims beyond its concurrency, to wait in this worker until a slot
    /// frees. By default it follows the queue's recent run times: as many jobs as its slots
    /// get through in about 50 ms, at most 1,000 (one completion batch) or the concurrency,
    /// whichever is larger (as many as the slots until the first jobs end).
    ///
    /// Short jobs need it: a job keeps its place from its claim until its outcome is
    /// written, both round trips of milliseconds under load, so without prefetch a queue
    /// with 10 slots claims a few jobs per round trip, and the round trips, not the jobs,
    /// set the pace. The price: a prefetched job waits for this worker's slots while
    /// another worker may be idle; the default keeps that wait short, `prefetch(0)`
    /// removes it. A prefetched job holds a lease like a running one (renewed, rescued if
    /// this worker dies), a cancel stops it before it starts, and at shutdown it goes back
    /// to the queue at once without using an attempt.
    /// A queue holds at most `concurrency + prefetch` jobs `running` in the database.
    pub fn prefetch(mut self, jobs: usize) -> Self {
        self.config.prefetch = Some(jobs);
        self
    }

    /// Longest wait for running jobs at shutdown (default 30 s); the rest are released to
    /// the queue without using up an attempt.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Polls only: no PostgreSQL LISTEN (for transaction-mode connection poolers).
    pub fn poll_only(mut self) -> Self {
        self.config.listen = false;
        self
    }

    /// How long finished jobs are kept.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// How often the leader prunes finished jobs past their retention (default 1 min).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config.prune_interval = interval;
        self
    }

    /// Longest wait for the answer to one of the worker's own statements (claims,
    /// completions, heartbeats; default: the lease, since a statement slower than the lease
    /// is worthless, while cancelling slow but progressing ones under load only makes them
    /// run again). A statement past it is abandoned and its connection closed, so a
    /// database that stops answering cannot wedge the worker.
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.config.query_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// Adds a periodic job, enqueued once per period by the elected leader.
    pub fn periodic(mut self, periodic: Periodic) -> Self {
        self.periodic.push(periodic);
        self
    }

    /// Runs until `shutdown` fires: then stops claiming, lets running jobs finish within
    /// the shutdown timeout, releases the rest to the queue, and returns. Every step of the
    /// shutdown is bounded, so it returns within the shutdown timeout plus about twice the
    /// query timeout even when the database does not answer.
    ///
    /// A worker started while its database is down waits for it, retrying with backoff
    /// (logged), until it answers or `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<()> {
        let queues = if self.queues.is_empty() { vec![(crate::defaults::QUEUE.to_owned(), 10)] } else { self.queues };
        for (queue, _) in &queues {
            crate::enqueue::check_queue_name(queue)?;
        }
        for (queue, setting) in &self.limits {
            crate::enqueue::check_queue_name(queue)?;
            setting.check()?;
        }
        let declarations = self.registry.declarations()?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let id = format!("{hostname}-{pid}-{:04x}", fastrand::u16(..));
        let queues_json = serde_json::to_string(&queues.iter().cloned().collect::<std::collections::BTreeMap<_, _>>())
            .map_err(crate::Error::app)?;
        let claim_loops: Vec<(String, usize, usize)> =
            queues.iter().map(|(q, n)| (q.clone(), *n, if *n >= 8 { 2 } else { 1 })).collect();
        // Lease renewals, a rescue or vacuum, each claim loop, each completion batch in flight.
        let pool_size = 2 + claim_loops.iter().map(|(_, _, loops)| loops).sum::<usize>() + completer::IN_FLIGHT;
        let config = self.config;
        let services = self.db.own_pool(
            u32::try_from(pool_size).unwrap_or(u32::MAX),
            config.query_timeout(),
            config.idle_timeout(),
            &config.session_settings(),
        );
        // One connection for what a worker does when it has nothing to do: an idle worker
        // holds it and its LISTEN connection, nothing more.
        let quiet = self.db.own_pool(1, config.query_timeout(), Duration::from_secs(600), &config.session_settings());
        let outage = Arc::new(Outage::default());
        // The first heartbeat, and the tasks' declarations, which jobs enqueued without
        // options (SQL, the CLI) take theirs from.
        let registration = Registration {
            id: &id,
            hostname: &hostname,
            pid,
            queues: &queues_json,
            declarations: &declarations,
            limits: &self.limits,
        };
        match wait_for_database(&services, &outage, &mut shutdown, &registration).await {
            Ok(true) => {}
            Ok(false) => {
                services.close().await;
                quiet.close().await;
                return Ok(());
            }
            Err(err) => {
                services.close().await;
                quiet.close().await;
                return Err(err);
            }
        }

        let held = Arc::new(Held::default());
        let (completions, finished) = mpsc::channel(10_000);
        let (stop_completer, completer_stop) = Shutdown::new();
        let written = Arc::new(tokio::sync::watch::channel(0).0);
        let completer = tokio::spawn(completer::run(
            services.clone(),
            finished,
            held.clone(),
            outage.clone(),
            written.clone(),
            completer_stop,
        ));
        let queue_names: Vec<String> = queues.iter().map(|(q, _)| q.clone()).collect();
        let shared = Arc::new(Shared {
            db: self.db.clone(),
            services: services.clone(),
            quiet: quiet.clone(),
            registry: self.registry,
            config,
            id,
            hostname,
            pid,
            queues_json,
            held,
            outage,
            wakers: Wakers::new(&queue_names),
            queue_names,
            completions,
            written,
            periodic: self.periodic,
            activity: ActivityCounter::default(),
            asleep: std::sync::Mutex::default(),
            schema_usable: tokio::sync::watch::Sender::new(true),
        });
        tracing::info!(worker = shared.id, queues = shared.queues_json, tasks = ?shared.registry.names(), "worker started");

        // Heartbeats and cancel notifications outlive the claim loops: running jobs keep
        // their leases while they drain.
        let mut background = Services::new();
        background.start("heartbeat", |stop| heartbeat::run(shared.clone(), stop));
        #[cfg(feature = "postgres")]
        if shared.config.listen && on_backend!(shared.db.backend(), const NOTIFIES) {
            background.start("listener", |stop| listener::listen(shared.clone(), stop));
        }
        // The maintenance duties stop with the claim loops.
        let mut duties = Services::new();
        let (until, leadership) = Leadership::new();
        duties.start("tick", |stop| ticker::run(shared.clone(), stop));
        duties.start("election", |stop| leader::elect(shared.clone(), until, stop));
        duties.start("periodic jobs", |stop| periodic_jobs::run(shared.clone(), leadership.clone(), stop));
        duties.start("pruning", |stop| pruner::run(shared.clone(), leadership.clone(), stop));
        duties.start("vacuum", |stop| vacuumer::run(shared.clone(), leadership, stop));
        let mut claimers = JoinSet::new();
        let mut all_slots = Vec::new();
        for (queue, concurrency, loops) in claim_loops {
            let slots = Arc::new(Slots::new(concurrency, shared.config.prefetch));
            all_slots.push(slots.clone());
            // Two claim loops on a queue with real concurrency: one claims while the other's
            // round trip is in flight. They share the queue's slots, so concurrency stays exact.
            // Unbounded, but never longer than the queue's held slots.
            let (line, waiting) = mpsc::unbounded_channel();
            claimers.spawn(fetcher::start_in_turn(shared.clone(), slots.clone(), waiting, shutdown.clone()));
            for _ in 0..loops {
                claimers.spawn(fetcher::run(
                    shared.clone(),
                    queue.clone(),
                    slots.clone(),
                    line.clone(),
                    shutdown.clone(),
                ));
            }
        }

        shutdown.wait().await;
        tracing::info!(worker = shared.id, "shutting down: no new jobs; waiting for running ones");
        // The whole shutdown is bounded: the running jobs get the shutdown timeout, and the
        // rest (claims and ticks in flight, the last completions, the farewell) two query
        // timeouts, however long a database that stopped answering keeps them waiting.
        let query_timeout = shared.config.query_timeout();
        let deadline = tokio::time::Instant::now() + shared.config.shutdown_timeout + query_timeout * 2;
        let left = move || deadline.saturating_duration_since(tokio::time::Instant::now());
        // A pruning pass stops between batches; a vacuum in progress is not waited for
        // beyond the query timeout (the server finishes or abandons it by itself).
        duties.stop(deadline.min(tokio::time::Instant::now() + query_timeout)).await;
        if tokio::time::timeout(left(), async { while claimers.join_next().await.is_some() {} }).await.is_err() {
            // A claim stopped mid-flight is rolled back with its connection.
            claimers.abort_all();
        }
        let all_back = || async {
            for slots in &all_slots {
                slots.held.acquire_many(u32::try_from(slots.held_max).unwrap_or(u32::MAX)).await.map(drop).ok();
            }
        };
        if tokio::time::timeout(shared.config.shutdown_timeout.min(left()), all_back()).await.is_err() {
            tracing::warn!(worker = shared.id, "shutdown timeout: releasing the jobs still running");
            shared.held.stop_all(Stop::Release);
            // Aborted tasks end at once; their outcomes may wait for a completer that cannot
            // write, and the shutdown does not wait for that beyond its deadline.
            tokio::time::timeout(left(), all_back()).await.ok();
        }
        background.stop(deadline).await;
        let id = shared.id.clone();
        tokio::time::timeout(left(), shared.activity.flush(&services)).await.ok();
        drop(shared);
        // The completer writes what is left; while the database does not answer, it is
        // given what is left of the deadline, then gives up (those jobs are rescued when
        // their leases run out, and run again).
        let mut completer = completer;
        if tokio::time::timeout(left(), &mut completer).await.is_err() {
            stop_completer.trigger();
            if tokio::time::timeout(Duration::from_millis(100), &mut completer).await.is_err() {
                completer.abort();
            }
        }
        // The farewell; when the database did not take the first, it would not take the
        // second (the leadership runs out by itself, and the leader prunes dead workers).
        if matches!(tokio::time::timeout(left(), queries::worker_delete(&services, &id)).await, Ok(Ok(_))) {
            tokio::time::timeout(left(), queries::leader_resign(&services, leader::LEADERSHIP, &id)).await.ok();
        }
        let grace = left().max(Duration::from_millis(100));
        let _closed =
            tokio::join!(tokio::time::timeout(grace, services.close()), tokio::time::timeout(grace, quiet.close()));
        tracing::info!(worker = id, "worker stopped");
        Ok(())
    }
}

/// What a starting worker records about itself.
struct Registration<'a> {
    id: &'a str,
    hostname: &'a str,
    pid: i32,
    /// The queues it serves with their concurrency, as JSON.
    queues: &'a str,
    /// What its tasks declare for their jobs.
    declarations: &'a [queries::Declaration],
    /// The queue-wide limits set in code.
    limits: &'a [(String, queries::Setting)],
}

/// Records the worker's first heartbeat and its tasks' declarations, retrying with backoff
/// while the database does not answer. Returns false if `shutdown` came first, and an
/// error for a problem waiting cannot mend (a transaction pooler the URL does not name).
async fn wait_for_database(
    services: &Db,
    outage: &Outage,
    shutdown: &mut Shutdown,
    me: &Registration<'_>,
) -> Result<bool> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let mut refused_logged: Option<std::time::Instant> = None;
    loop {
        let registered = async {
            services.schema_status().await?.check()?;
            queries::worker_heartbeat(services, me.id, me.hostname, me.pid, me.queues).await?;
            for (queue, setting) in me.limits {
                queries::queue_set(services, queue, *setting).await?;
            }
            queries::task_declare(services, me.id, me.declarations).await
        };
        // A shutdown while an attempt waits on a server that does not answer ends it at
        // once: nothing is held yet.
        let attempt = tokio::select! {
            _ = shutdown.wait() => return Ok(false),
            attempt = registered => attempt,
        };
        match attempt {
            Ok(()) => {
                outage.ok();
                return Ok(true);
            }
            // A configuration problem: waiting would not mend it.
            Err(err @ crate::Error::TransactionPooler { .. }) => return Err(err),
            // Waiting for `oncommit migrate` (or a newer binary), said once a minute.
            Err(err @ crate::Error::SchemaVersion { .. }) => {
                outage.ok();
                if refused_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!(error = %err, "the worker waits for a schema it can use; it claims nothing meanwhile");
                    refused_logged = Some(std::time::Instant::now());
                }
            }
            Err(err) => outage.failed("registering the worker", &err),
        }
        tokio::select! {
            _ = shutdown.wait() => return Ok(false),
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}
