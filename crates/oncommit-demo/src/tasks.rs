//! The demo application's tasks, registered by `oncommit worker` and `oncommit serve`.

use std::time::Duration;

use oncommit::{Db, RetryPolicy, Task, TaskContext, TaskError, TaskOptions, Worker};
use serde::{Deserialize, Serialize};

/// Seed 000's task: load row `pk` of `data` and rename it. If the row is not there — the
/// race of a job dispatched before its data committed — fail saying so (and retry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoStuff {
    /// The `data` row to work on.
    pub pk: i64,
}

/// The error `do_stuff` fails with when its row is missing; `demo race` counts it.
pub const MISSING_ROW: &str = "Data matching query does not exist";

impl Task for DoStuff {
    const NAME: &'static str = "do_stuff";

    fn options() -> TaskOptions {
        // Quick retries: in the race the row appears within milliseconds.
        TaskOptions::default().max_attempts(10).retry(RetryPolicy::fixed(Duration::from_millis(50)))
    }

    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        do_stuff(cx.db(), self.pk).await
    }
}

/// The body of `do_stuff`, also run directly by the naive in-process hand-off of the race.
///
/// Like the seed's `Data.objects.get(pk=…)` then `save()`: read first, then write. The read
/// is what misses a row whose transaction has not committed.
pub async fn do_stuff(db: &Db, pk: i64) -> Result<(), TaskError> {
    // Short transactions rather than autocommit statements: the same read, then write, and
    // safe behind a transaction pooler, where a session lasts one transaction. The read is
    // read-only, so on SQLite it does not wait for the writer, as an autocommit read would not.
    let found = oncommit::atomic!(db.transaction().read_only(), |tx| {
        Ok(oncommit::with_conn!(tx.conn(), c => {
            sqlx::query_scalar::<_, i64>("SELECT id FROM data WHERE id = $1").bind(pk).fetch_optional(&mut *c).await?
        }))
    })
    .await?;
    if found.is_none() {
        return Err(TaskError::fail(format!("{MISSING_ROW}: no row in data with id = {pk}")));
    }
    oncommit::atomic!(db, |tx| {
        oncommit::with_conn!(tx.conn(), c => {
            sqlx::query("UPDATE data SET name = 'new name' WHERE id = $1").bind(pk).execute(&mut *c).await?;
        });
        Ok(())
    })
    .await?;
    Ok(())
}

/// Inserts `(key, job_id, attempt)` into `demo_runs` in the transaction that completes its
/// job: each completed job leaves exactly one row, even across crashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// What to record.
    pub key: String,
    /// How long to work first, in milliseconds (so a job is held for a while).
    #[serde(default)]
    pub ms: u64,
    /// How long to work inside the completing transaction, holding the job's row lock, in
    /// milliseconds: the window in which a lost worker would leave the row locked.
    #[serde(default)]
    pub ms_in_tx: u64,
}

impl Task for Record {
    const NAME: &'static str = "record";

    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        let (job_id, attempt) = (cx.id().0, cx.attempt());
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        let in_tx = Duration::from_millis(self.ms_in_tx);
        cx.complete_in_tx(async move |tx| {
            if !in_tx.is_zero() {
                if let oncommit::Conn::Postgres(c) = tx.conn() {
                    sqlx::query("SELECT 1 FROM oncommit.jobs WHERE id = $1 FOR UPDATE").bind(job_id).execute(c).await?;
                }
                tokio::time::sleep(in_tx).await;
            }
            oncommit::with_conn!(tx.conn(), c => {
                sqlx::query("INSERT INTO demo_runs (key, job_id, attempt) VALUES ($1, $2, $3)")
                    .bind(self.key.clone())
                    .bind(job_id)
                    .bind(attempt)
                    .execute(c)
                    .await?;
            });
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// Sleeps `ms` milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    /// How long.
    pub ms: u64,
}

impl Task for Sleep {
    const NAME: &'static str = "sleep";

    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        Ok(())
    }
}

/// Fails every attempt with `message`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail {
    /// The error.
    pub message: String,
}

impl Task for Fail {
    const NAME: &'static str = "fail";

    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(3).retry(RetryPolicy::fixed(Duration::from_millis(100)))
    }

    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Err(TaskError::fail(self.message))
    }
}

/// Does nothing: for benchmarks and smoke tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Noop {}

impl Task for Noop {
    const NAME: &'static str = "noop";

    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A worker that runs all the demo application's tasks.
pub fn worker(db: &Db) -> Worker {
    Worker::new(db.clone())
        .register::<DoStuff>()
        .register::<Record>()
        .register::<Sleep>()
        .register::<Fail>()
        .register::<Noop>()
}
