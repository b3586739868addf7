//! [`Worker`]: claims jobs in batches, runs them with retries, leases and heartbeats, and
//! shuts down gracefully. The guide is `docs/jobs.md`.
//!
//! Inside, each part has a file: `fetcher` (one claim loop per queue), `executor` (one job),
//! `completer` (batched state changes), `maintenance` (heartbeats, promotion, rescue,
//! leader duties), `listener` (PostgreSQL LISTEN), `registry` (task types by name).

mod completer;
mod executor;
mod fetcher;
mod listener;
mod maintenance;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::db::{Backend, Db};
use crate::error::Result;
use crate::periodic::Periodic;
use crate::queries::{self, Transition};
use crate::shutdown::Shutdown;
use crate::task::Task;

use executor::{Running, Stop};
use registry::Registry;

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
    /// Longest wait for running jobs at shutdown before they are released.
    shutdown_timeout: Duration,
    /// Whether to LISTEN on PostgreSQL (off behind a transaction-mode pooler).
    listen: bool,
    retention: Retention,
    prune_interval: Duration,
}

impl Config {
    fn leader_ttl(&self) -> Duration {
        (self.poll_interval * 5).max(Duration::from_secs(5))
    }
}

/// What the worker's tasks share.
pub(crate) struct Shared {
    db: Db,
    registry: Registry,
    config: Config,
    /// This worker's lease-owner id: host, process, and a random part.
    id: String,
    hostname: String,
    pid: i32,
    /// The queues and their concurrency, as JSON for the workers table.
    queues_json: String,
    /// The jobs running now, so a cancel or the shutdown can stop them.
    running: Running,
    /// Finished attempts on their way to the completer.
    completions: mpsc::Sender<Transition>,
    periodic: Vec<Periodic>,
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
            config: Config {
                poll_interval: Duration::from_secs(1),
                lease: Duration::from_secs(30),
                heartbeat_interval: Duration::from_secs(10),
                batch_size: 100,
                shutdown_timeout: Duration::from_secs(30),
                listen: true,
                retention: Retention::default(),
                prune_interval: Duration::from_secs(60),
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

    /// Most jobs claimed in one statement (default 100).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.config.batch_size = size.max(1);
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

    /// Adds a periodic job, enqueued once per period by the elected leader.
    pub fn periodic(mut self, periodic: Periodic) -> Self {
        self.periodic.push(periodic);
        self
    }

    /// Runs until `shutdown` fires: then stops claiming, lets running jobs finish within
    /// the shutdown timeout, releases the rest to the queue, and returns.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<()> {
        let queues = if self.queues.is_empty() { vec![("default".to_owned(), 10)] } else { self.queues };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let id = format!("{hostname}-{pid}-{:04x}", fastrand::u16(..));
        let queues_json = serde_json::to_string(&queues.iter().cloned().collect::<std::collections::BTreeMap<_, _>>())
            .map_err(crate::Error::app)?;
        // The first heartbeat doubles as a check that the database is there.
        queries::worker_heartbeat(&self.db, &id, &hostname, pid, &queues_json).await?;

        let (completions, finished) = mpsc::channel(10_000);
        let completer = tokio::spawn(completer::run(self.db.clone(), finished));
        let shared = Arc::new(Shared {
            db: self.db.clone(),
            registry: self.registry,
            config: self.config,
            id,
            hostname,
            pid,
            queues_json,
            running: Running::default(),
            completions,
            periodic: self.periodic,
        });
        tracing::info!(worker = shared.id, queues = shared.queues_json, tasks = ?shared.registry.names(), "worker started");

        // Heartbeats and cancel notifications outlive the claim loops: running jobs keep
        // their leases while they drain.
        let (stop_background, background_stop) = Shutdown::new();
        let mut background = JoinSet::new();
        background.spawn(maintenance::heartbeat(shared.clone(), background_stop.clone()));
        if shared.config.listen && shared.db.backend() == Backend::Postgres {
            background.spawn(listener::listen(shared.clone(), background_stop));
        }
        let mut claimers = JoinSet::new();
        claimers.spawn(maintenance::maintain(shared.clone(), shutdown.clone()));
        let mut slots = Vec::new();
        for (queue, concurrency) in queues {
            let sem = Arc::new(Semaphore::new(concurrency));
            slots.push((sem.clone(), concurrency));
            // Two claim loops on a queue with real concurrency: one claims while the other's
            // round trip is in flight. They share the queue's slots, so concurrency stays exact.
            let loops = if concurrency >= 8 { 2 } else { 1 };
            for _ in 0..loops {
                claimers.spawn(fetcher::run(shared.clone(), queue.clone(), sem.clone(), concurrency, shutdown.clone()));
            }
        }

        shutdown.wait().await;
        tracing::info!(worker = shared.id, "shutting down: no new jobs; waiting for running ones");
        while claimers.join_next().await.is_some() {}
        let all_back = async {
            for (sem, n) in &slots {
                let n = u32::try_from(*n).unwrap_or(u32::MAX);
                sem.acquire_many(n).await.map(drop).ok();
            }
        };
        if tokio::time::timeout(shared.config.shutdown_timeout, all_back).await.is_err() {
            tracing::warn!(worker = shared.id, "shutdown timeout: releasing the jobs still running");
            shared.running.stop_all(Stop::Release);
            for (sem, n) in &slots {
                sem.acquire_many(u32::try_from(*n).unwrap_or(u32::MAX)).await.map(drop).ok();
            }
        }
        stop_background.trigger();
        while background.join_next().await.is_some() {}
        let (db, id) = (shared.db.clone(), shared.id.clone());
        drop(shared);
        completer.await.ok();
        queries::worker_delete(&db, &id).await.ok();
        queries::leader_resign(&db, "oncommit", &id).await.ok();
        tracing::info!(worker = id, "worker stopped");
        Ok(())
    }
}
