//! Seed 000: a view inserts a `data` row and hands its id to `do_stuff`, then keeps working
//! a little before its transaction commits. Three ways to hand it over:
//!
//! - **naive**: outside the view's transaction, before it commits, as `task.delay()` did
//!   through Celery's broker. On PostgreSQL the job is enqueued on another connection in
//!   autocommit; a worker runs it at once and finds no row. On SQLite another connection
//!   would wait for the view's write lock, so the honest equivalent is an in-process
//!   hand-off: the task runs at once, reads, and finds no row.
//! - **on_commit**: the dispatch is an `on_commit` hook, so it happens after the commit.
//! - **transactional**: `tx.enqueue`, so the job row commits with the data.
//!
//! Counted: first attempts that found no row. The naive way shows the race; the others
//! cannot.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oncommit::{Backend, Db, JobId, JobState, Shutdown};
use serde::Serialize;

use crate::schema;
use crate::tasks::{self, DoStuff, MISSING_ROW};

/// One way's outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Way {
    /// Views run.
    pub runs: usize,
    /// First attempts of `do_stuff` that found no row.
    pub task_saw_missing_row: usize,
    /// Tasks whose work got done in the end (the naive SQLite hand-off has no retry).
    pub completed: usize,
}

/// What happened, as `oncommit demo race --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `postgres` or `sqlite`.
    pub backend: Backend,
    /// Views per way.
    pub iterations: usize,
    /// How long each view kept working after dispatching, in milliseconds.
    pub work_ms: u64,
    /// Dispatch outside the view's transaction, before it commits.
    pub naive: Way,
    /// Dispatch in an `on_commit` hook.
    pub on_commit: Way,
    /// Enqueue in the view's transaction.
    pub transactional: Way,
}

/// Runs the seed's view `iterations` times in each way while a worker runs.
pub async fn run(db: &Db, iterations: usize, work: Duration) -> oncommit::Result<Report> {
    schema::migrate(db).await?;
    let (stop, shutdown) = Shutdown::new();
    let worker =
        tokio::spawn(tasks::worker(db).queue("default", 8).poll_interval(Duration::from_millis(50)).run(shutdown));

    let mut naive_ids = Vec::new();
    let mut naive_local = Way::default();
    for _ in 0..iterations {
        match db.backend() {
            Backend::Postgres => naive_ids.push(naive_view_postgres(db, work).await?),
            Backend::Sqlite => {
                let first_attempt = naive_view_sqlite(db, work).await?;
                naive_local.runs += 1;
                match first_attempt {
                    Ok(()) => naive_local.completed += 1,
                    Err(_) => naive_local.task_saw_missing_row += 1,
                }
            }
        }
    }
    let mut on_commit_ids = Vec::new();
    for _ in 0..iterations {
        on_commit_ids.push(on_commit_view(db, work).await?);
    }
    let mut transactional_ids = Vec::new();
    for _ in 0..iterations {
        transactional_ids.push(transactional_view(db, work).await?);
    }

    let naive = match db.backend() {
        Backend::Postgres => tally(db, &naive_ids).await?,
        Backend::Sqlite => naive_local,
    };
    let report = Report {
        backend: db.backend(),
        iterations,
        work_ms: u64::try_from(work.as_millis()).unwrap_or(u64::MAX),
        naive,
        on_commit: tally(db, &on_commit_ids).await?,
        transactional: tally(db, &transactional_ids).await?,
    };
    stop.trigger();
    worker.await.map_err(oncommit::Error::app)??;
    Ok(report)
}

/// The view's first step: `Data.objects.create(name='Dummy')`.
async fn insert_data(tx: &mut oncommit::Tx<'_>) -> oncommit::Result<i64> {
    Ok(oncommit::with_conn!(tx.conn(), c => {
        sqlx::query_scalar("INSERT INTO data (name) VALUES ('Dummy') RETURNING id").fetch_one(c).await?
    }))
}

/// PostgreSQL, naive: enqueue on another connection in autocommit (the broker), then keep
/// working in the view's still-open transaction.
async fn naive_view_postgres(db: &Db, work: Duration) -> oncommit::Result<JobId> {
    let pool = db.pg_pool().expect("PostgreSQL");
    let mut tx = db.begin().await?;
    let pk = insert_data(&mut tx).await?;
    let args = serde_json::json!({ "pk": pk }).to_string();
    let id: i64 =
        sqlx::query_scalar("SELECT oncommit.enqueue('do_stuff', $1::jsonb)").bind(args).fetch_one(pool).await?;
    tokio::time::sleep(work).await;
    tx.commit().await?;
    Ok(JobId(id))
}

/// SQLite, naive: hand the id to a task running in this process right away; returns how
/// its one attempt went.
async fn naive_view_sqlite(db: &Db, work: Duration) -> oncommit::Result<Result<(), String>> {
    let mut tx = db.begin().await?;
    let pk = insert_data(&mut tx).await?;
    let reader = db.clone();
    let task = tokio::spawn(async move { tasks::do_stuff(&reader, pk).await.map_err(|e| format!("{e:?}")) });
    tokio::time::sleep(work).await;
    tx.commit().await?;
    task.await.map_err(oncommit::Error::app)
}

/// Dispatch in an `on_commit` hook: after the commit.
async fn on_commit_view(db: &Db, work: Duration) -> oncommit::Result<JobId> {
    let dispatched = Arc::new(Mutex::new(None));
    let mut tx = db.begin().await?;
    let pk = insert_data(&mut tx).await?;
    let (hook_db, slot) = (db.clone(), dispatched.clone());
    tx.on_commit(async move {
        let id = hook_db.enqueue(DoStuff { pk }).await?;
        *slot.lock().expect("not poisoned") = Some(id);
        Ok::<_, oncommit::Error>(())
    });
    tokio::time::sleep(work).await;
    tx.commit().await?;
    let id = dispatched.lock().expect("not poisoned").take();
    id.ok_or_else(|| oncommit::Error::app("the on_commit hook did not run"))
}

/// Enqueue in the view's transaction: the job commits with the data.
async fn transactional_view(db: &Db, work: Duration) -> oncommit::Result<JobId> {
    let mut tx = db.begin().await?;
    let pk = insert_data(&mut tx).await?;
    let id = tx.enqueue(DoStuff { pk }).await?;
    tokio::time::sleep(work).await;
    tx.commit().await?;
    Ok(id)
}

/// Waits for the jobs to finish, then counts first attempts that found no row.
async fn tally(db: &Db, ids: &[JobId]) -> oncommit::Result<Way> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut way = Way { runs: ids.len(), ..Way::default() };
    for id in ids {
        let job = loop {
            let job = db.jobs().get(*id).await?.ok_or_else(|| oncommit::Error::app(format!("job {id} vanished")))?;
            if job.state.is_finished() || Instant::now() > deadline {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if job.errors.iter().any(|e| e.attempt == 1 && e.error.contains(MISSING_ROW)) {
            way.task_saw_missing_row += 1;
        }
        if job.state == JobState::Completed {
            way.completed += 1;
        }
    }
    Ok(way)
}
