//! No job stuck in `running` behind a live worker, no busy idle worker, no lease starved by
//! the worker's own tasks.

use std::time::Duration;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Db, EnqueueOptions, JobState, Task, TaskContext, TaskError};
use oncommit_testing::{TestDb, admin_url, backend_test, eventually};
use serde::{Deserialize, Serialize};

use super::exec;
use super::tasks::{arrived, create_runs, gate, runs, start, wait_arrivals, wait_for, worker};

/// The worker's id, once it has reported.
async fn worker_id(db: &Db) -> String {
    eventually("the worker's first heartbeat", || async { db.workers().list().await.unwrap().pop().map(|w| w.id) })
        .await
}

backend_test!(pooled async fn a_job_the_worker_does_not_hold_is_not_renewed_and_gets_rescued(t) {
    create_runs(&t.db).await;
    let w = start(worker(&t.db).lease(Duration::from_millis(600)));
    let owner = worker_id(&t.db).await;
    // A claim whose reply never reached the worker: the row names it as the lease owner,
    // but the worker does not know the job. Only the jobs it holds are renewed, so this
    // lease runs out and the job is rescued (and then run by the same worker).
    exec(
        &t.db,
        &format!(
            "INSERT INTO oncommit.jobs (task, args, state, attempt, lease_owner, lease_expires_at) \
             VALUES ('echo', '{{\"key\": \"orphan\"}}', 'running', 1, '{owner}', now() + interval '600 milliseconds')"
        ),
        &format!(
            "INSERT INTO oncommit_jobs (task, args, state, attempt, lease_owner, lease_expires_at) \
             VALUES ('echo', '{{\"key\": \"orphan\"}}', 'running', 1, '{owner}', \
                     CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + 600)"
        ),
    )
    .await
    .unwrap();
    let id = t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap()[0].id;
    let job = wait_for(&t.db, id, JobState::Completed).await;
    assert_eq!(job.attempt, 2, "{job:?}");
    assert!(job.errors[0].error.starts_with("lease expired"), "{job:?}");
    w.stop().await;
});

/// Waits at its gate, then completes without touching the database itself: its outcome is
/// written by the worker's completer.
#[derive(Serialize, Deserialize)]
struct Hold {
    gate: String,
}

impl Task for Hold {
    const NAME: &'static str = "hold";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        arrived(&self.gate).add_permits(1);
        gate(&self.gate).notified().await;
        Ok(())
    }
}

/// Sets `default_transaction_read_only` on the test database and cuts its sessions, so
/// every new session refuses writes (or, with `on = false`, accepts them again).
async fn refuse_writes(t: &TestDb, on: bool) {
    let admin = Db::connect(&admin_url()).await.unwrap();
    let name = t.url.rsplit('/').next().unwrap();
    let setting = if on { "SET default_transaction_read_only = on" } else { "RESET default_transaction_read_only" };
    exec(&admin, &format!("ALTER DATABASE {name} {setting}"), "").await.unwrap();
    exec(
        &admin,
        &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{name}'"),
        "",
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_recorded_once_the_database_accepts_writes_again() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let ids = t.db.enqueue_many((0..20).map(|_| Hold { gate: "read-only".into() })).await.unwrap();
    // Room for all twenty, and a lease that outlasts the outage.
    let w = start(
        oncommit::Worker::new(t.db.clone()).register::<Hold>().queue("default", 20).lease(Duration::from_secs(20)),
    );
    // All twenty waiting at the gate, so one `notify_waiters` lets them all go.
    wait_arrivals("read-only", 20).await;
    refuse_writes(&t, true).await;
    gate("read-only").notify_waiters();
    // The outage's length is the scenario: longer than the completer used to retry.
    tokio::time::sleep(Duration::from_secs(3)).await;
    refuse_writes(&t, false).await;
    for id in &ids {
        let job = wait_for(&t.db, *id, JobState::Completed).await;
        assert_eq!(job.attempt, 1, "recorded by the first attempt, not rescued: {job:?}");
    }
    w.stop().await;
    t.finish().await;
}

/// Waits for a shared advisory lock the test holds exclusively: a task blocked in the
/// database, holding one of the application pool's connections.
#[derive(Serialize, Deserialize)]
struct Blocked;

impl Task for Blocked {
    const NAME: &'static str = "blocked";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        sqlx::query("SELECT pg_advisory_xact_lock_shared(4242)").execute(cx.db().pg_pool().unwrap()).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_renewed_while_every_task_waits_on_a_lock_and_the_pool_is_exhausted() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let admin = Db::connect(&admin_url()).await.unwrap();
    // Advisory locks belong to a database: the test's own, on a connection of its own.
    let locking = Db::connect(&t.url).await.unwrap();
    let mut locker = locking.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(4242)").execute(locker.conn().postgres().unwrap()).await.unwrap();
    let lease = Duration::from_millis(900);
    // Sixteen slots over the application's ten connections: every connection ends up
    // waiting on the lock, and six tasks wait for a connection.
    let ids = t.db.enqueue_many((0..16).map(|_| Blocked)).await.unwrap();
    let w = start(oncommit::Worker::new(t.db.clone()).register::<Blocked>().queue("default", 16).lease(lease));
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    eventually("ten tasks waiting on the lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = $1",
        )
        .bind(&name)
        .fetch_one(admin.pg_pool().unwrap())
        .await
        .unwrap();
        (waiting >= 10).then_some(())
    })
    .await;
    // Renewals go on: every lease reaches well past what its claim gave it.
    let reader = Db::connect(&t.url).await.unwrap();
    eventually("leases renewed past three leases", || async {
        let jobs = reader
            .jobs()
            .list(&JobSelection::new([JobState::Running]), &PageRequest::default())
            .await
            .map(|page| page.jobs)
            .unwrap();
        let renewed = |j: &oncommit::Job| {
            j.lease_expires_at
                .zip(j.attempted_at)
                .is_some_and(|(until, at)| until - at >= chrono::Duration::from_std(lease * 3).unwrap())
        };
        (jobs.len() == 16 && jobs.iter().all(renewed)).then_some(())
    })
    .await;
    sqlx::query("SELECT pg_advisory_unlock(4242)").execute(locker.conn().postgres().unwrap()).await.unwrap();
    for id in &ids {
        let job = wait_for(&reader, *id, JobState::Completed).await;
        assert_eq!(job.attempt, 1, "the lease was never lost: {job:?}");
    }
    w.stop().await;
    t.finish().await;
}

/// Waits until its worker loses the lease, and says so in `runs`; a later attempt
/// completes at once.
#[derive(Serialize, Deserialize)]
struct Watchful;

impl Task for Watchful {
    const NAME: &'static str = "watchful";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        if cx.attempt() > 1 {
            return Ok(());
        }
        assert!(!cx.is_lease_lost());
        cx.lease_lost().await;
        assert!(cx.is_lease_lost());
        let (id, attempt) = (cx.id().0, cx.attempt());
        // A simple query (no prepared statement): safe in autocommit behind a transaction
        // pooler too.
        let insert = format!("INSERT INTO runs (key, job_id, attempt) VALUES ('lease lost', {id}, {attempt})");
        let mut conn = cx.db().acquire().await?;
        oncommit::with_conn!(conn.conn(), c => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(insert)).execute(c).await?;
        });
        Ok(())
    }
}

backend_test!(pooled async fn a_task_is_told_when_its_lease_is_lost(t) {
    create_runs(&t.db).await;
    let id = t.db.enqueue_with(Watchful, EnqueueOptions::new()).await.unwrap();
    let w = start(
        worker(&t.db).register::<Watchful>().lease(Duration::from_millis(600)).heartbeat_interval(Duration::from_millis(50)),
    );
    wait_for(&t.db, id, JobState::Running).await;
    // Another worker took the job over, as a rescue and a new claim would.
    exec(
        &t.db,
        "UPDATE oncommit.jobs SET lease_owner = 'someone-else', attempt = attempt + 1",
        "UPDATE oncommit_jobs SET lease_owner = 'someone-else', attempt = attempt + 1",
    )
    .await
    .unwrap();
    eventually("the task to notice", || async { (!runs(&t.db).await.is_empty()).then_some(()) }).await;
    assert_eq!(runs(&t.db).await, [("lease lost".to_owned(), id.0, 1)]);
    // Its outcome is fenced off; the other owner's lease runs out, the job is rescued, and
    // attempt 3 completes.
    let job = wait_for(&t.db, id, JobState::Completed).await;
    assert_eq!(job.attempt, 3, "{job:?}");
    w.stop().await;
});
