//! Tasks the worker tests run, and helpers to wait on job states.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use oncommit::{
    Db, JobId, JobState, RetryPolicy, Shutdown, ShutdownTrigger, Task, TaskContext, TaskError, TaskOptions, Worker,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// `runs(key, job_id, attempt)`: what tasks did, written in their completing transaction.
pub(crate) async fn create_runs(db: &Db) {
    db.migrate().await.unwrap();
    let mut conn = db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::raw_sql("CREATE TABLE runs (key TEXT NOT NULL, job_id BIGINT NOT NULL, attempt INTEGER NOT NULL)")
            .execute(c).await.unwrap();
    });
}

/// `(key, job_id, attempt)` rows in insertion order.
/// A simple query (no prepared statement): safe in autocommit behind a transaction pooler too.
pub(crate) async fn runs(db: &Db) -> Vec<(String, i64, i32)> {
    use sqlx::Row;
    let mut conn = db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        let rows = sqlx::raw_sql("SELECT key, job_id, attempt FROM runs ORDER BY job_id, attempt").fetch_all(c).await.unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    })
}

async fn record(cx: &mut TaskContext, key: String) -> Result<(), TaskError> {
    let (id, attempt) = (cx.id().0, cx.attempt());
    cx.complete_in_tx(async move |tx| {
        oncommit::with_conn!(tx.conn(), c => {
            sqlx::query("INSERT INTO runs (key, job_id, attempt) VALUES ($1, $2, $3)")
                .bind(key.clone()).bind(id).bind(attempt).execute(c).await?;
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// Records its key, completing its job in the same transaction.
#[derive(Serialize, Deserialize)]
pub(crate) struct Echo {
    pub(crate) key: String,
}

impl Task for Echo {
    const NAME: &'static str = "echo";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        record(cx, self.key).await
    }
}

/// Takes `ms` milliseconds: long enough for an observer to see it hold a slot.
#[derive(Serialize, Deserialize)]
pub(crate) struct Nap {
    pub(crate) ms: u64,
}

impl Task for Nap {
    const NAME: &'static str = "nap";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

/// Fails its first `failures` attempts, then records.
#[derive(Serialize, Deserialize)]
pub(crate) struct Flaky {
    pub(crate) failures: i32,
}

impl Task for Flaky {
    const NAME: &'static str = "flaky";
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(3).retry(RetryPolicy::fixed(Duration::from_millis(10)))
    }
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        if cx.attempt() <= self.failures {
            return Err(TaskError::fail(format!("planned failure {}", cx.attempt())));
        }
        record(cx, "flaky".into()).await
    }
}

/// Asks to be retried after a set delay on its first attempt.
#[derive(Serialize, Deserialize)]
pub(crate) struct Later;

impl Task for Later {
    const NAME: &'static str = "later";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        if cx.attempt() == 1 {
            return Err(TaskError::retry_after(Duration::from_millis(300), "the mail server said later"));
        }
        record(cx, "later".into()).await
    }
}

/// Panics.
#[derive(Serialize, Deserialize)]
pub(crate) struct Panics;

impl Task for Panics {
    const NAME: &'static str = "panics";
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        panic!("the task blew up")
    }
}

/// Never finishes on its own; its timeout does.
#[derive(Serialize, Deserialize)]
pub(crate) struct Hangs;

impl Task for Hangs {
    const NAME: &'static str = "hangs";
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1).timeout(Duration::from_millis(100))
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        std::future::pending().await
    }
}

/// Snoozes its first run, cancels itself when asked, else records.
#[derive(Serialize, Deserialize)]
pub(crate) struct Moody {
    pub(crate) cancel: bool,
}

impl Task for Moody {
    const NAME: &'static str = "moody";
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        if self.cancel {
            return Err(TaskError::cancel("not worth doing"));
        }
        if cx.job().max_attempts == 1 {
            return Err(TaskError::snooze(Duration::from_millis(20)));
        }
        record(cx, "moody".into()).await
    }
}

/// Waits at the gate named `gate` on its first `hold_attempts` attempts, then records.
#[derive(Serialize, Deserialize)]
pub(crate) struct Gated {
    pub(crate) gate: String,
    pub(crate) hold_attempts: i32,
}

impl Task for Gated {
    const NAME: &'static str = "gated";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        if cx.attempt() <= self.hold_attempts {
            arrived(&self.gate).add_permits(1);
            gate(&self.gate).notified().await;
        }
        record(cx, self.gate).await
    }
}

/// Named gates tests open to let a `Gated` task go on.
pub(crate) fn gate(name: &str) -> Arc<Notify> {
    static GATES: LazyLock<Mutex<HashMap<String, Arc<Notify>>>> = LazyLock::new(Default::default);
    GATES.lock().unwrap().entry(name.to_owned()).or_default().clone()
}

/// Counts the tasks that reached the gate named `name` (a claimed job is `running` before
/// its task starts: it may wait for a slot, prefetched).
pub(crate) fn arrived(name: &str) -> Arc<tokio::sync::Semaphore> {
    static ARRIVALS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>> = LazyLock::new(Default::default);
    ARRIVALS.lock().unwrap().entry(name.to_owned()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(0))).clone()
}

/// Waits until `n` more tasks have reached the gate named `name`.
pub(crate) async fn wait_arrivals(name: &str, n: u32) {
    let arrivals = arrived(name).acquire_many_owned(n);
    tokio::time::timeout(Duration::from_secs(30), arrivals)
        .await
        .unwrap_or_else(|_| panic!("{n} tasks did not reach gate {name}"))
        .unwrap()
        .forget();
}

/// A worker with fast timings and every test task.
pub(crate) fn worker(db: &Db) -> Worker {
    Worker::new(db.clone())
        .register::<Echo>()
        .register::<Flaky>()
        .register::<Panics>()
        .register::<Hangs>()
        .register::<Moody>()
        .register::<Gated>()
        .register::<Later>()
        .poll_interval(Duration::from_millis(50))
}

/// A worker running in the background until the trigger fires (or is dropped).
pub(crate) struct Running {
    pub(crate) trigger: ShutdownTrigger,
    pub(crate) handle: tokio::task::JoinHandle<oncommit::Result<()>>,
}

pub(crate) fn start(worker: Worker) -> Running {
    let (trigger, shutdown) = Shutdown::new();
    Running { trigger, handle: tokio::spawn(worker.run(shutdown)) }
}

impl Running {
    pub(crate) async fn stop(self) {
        self.trigger.trigger();
        self.handle.await.unwrap().unwrap();
    }
}

/// Waits until job `id` is in `state`.
pub(crate) async fn wait_for(db: &Db, id: JobId, state: JobState) -> oncommit::Job {
    oncommit_testing::wait_for_job(db, id, state.as_str(), |job| job.state == state).await
}
