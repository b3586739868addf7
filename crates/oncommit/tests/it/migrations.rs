//! Upgrading a live queue: migrations that never stall enqueues and claims for long, that
//! wait out a long transaction instead of queueing writers behind it, that rebuild an
//! index an interrupted build left INVALID; workers that claim only on a schema that suits
//! them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oncommit::migrate::oncommit_until;
use oncommit::{EnqueueOptions, JobState, Shutdown, Task, TaskContext, TaskError, Worker};
use oncommit_testing::{LogCapture, TestDb, backend_test, eventually};
use sqlx::{Connection, PgConnection};

use super::exec;

/// Does nothing (its arguments: `{}`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Noop {}

impl Task for Noop {
    const NAME: &'static str = "noop";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Statements an older oncommit runs on its jobs table: an enqueue, or a claim of up to 10
/// jobs and their completion, each timed; the longest of each kind, and how many ran.
#[derive(Default)]
struct Stalls {
    enqueue: Duration,
    claim: Duration,
    enqueues: u64,
    claims: u64,
}

/// Runs an old binary's producer and worker (as SQL on the oldest columns) on `url` until
/// `stop`.
async fn old_binary(url: String, stop: Arc<AtomicBool>) -> Stalls {
    let mut producer = PgConnection::connect(&url).await.unwrap();
    let mut worker = PgConnection::connect(&url).await.unwrap();
    let mut stalls = Stalls::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        sqlx::raw_sql(
            "INSERT INTO oncommit.jobs (task, args, queue, priority, max_attempts) \
             VALUES ('noop', '{}', 'default', 0, 25), ('noop', '{}', 'default', 0, 25)",
        )
        .execute(&mut producer)
        .await
        .unwrap();
        stalls.enqueue = stalls.enqueue.max(started.elapsed());
        stalls.enqueues += 1;
        let started = Instant::now();
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE oncommit.jobs SET state = 'running', attempt = attempt + 1, attempted_at = now(), \
             lease_owner = 'old', lease_expires_at = now() + interval '30 seconds' \
             WHERE id IN (SELECT id FROM oncommit.jobs WHERE state = 'available' AND queue = 'default' \
                          ORDER BY priority, run_at, id LIMIT 10 FOR UPDATE SKIP LOCKED) RETURNING id",
        )
        .fetch_all(&mut worker)
        .await
        .unwrap();
        sqlx::query("UPDATE oncommit.jobs SET state = 'completed', finished_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut worker)
            .await
            .unwrap();
        stalls.claim = stalls.claim.max(started.elapsed());
        stalls.claims += 1;
    }
    stalls
}

/// The INVALID indexes of oncommit's schema.
async fn invalid_indexes(url: &str) -> Vec<String> {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index JOIN pg_class t ON t.oid = indrelid \
         WHERE NOT indisvalid AND t.relnamespace = 'oncommit'::regnamespace",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
}

/// The whole upgrade, from the first schema oncommit shipped to this one, on a table of
/// 300,000 jobs while an older binary enqueues and claims: no enqueue and no claim waits a
/// second (the indexes build CONCURRENTLY, locks are taken with a short timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upgrade_from_the_oldest_schema_never_stalls_enqueues_or_claims_for_a_second() {
    let t = TestDb::postgres().await;
    t.db.migrate_set(&oncommit_until(1)).await.unwrap();
    exec(
        &t.db,
        "INSERT INTO oncommit.jobs (task, args, state, finished_at) \
         SELECT 'noop', jsonb_build_object('n', g), CASE WHEN g % 10 = 0 THEN 'available' ELSE 'completed' END, \
                CASE WHEN g % 10 = 0 THEN NULL ELSE now() END \
         FROM generate_series(1, 300000) g; ANALYZE oncommit.jobs",
        "",
    )
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let old = tokio::spawn(old_binary(t.url.clone(), stop.clone()));
    // The old binary is at work before the upgrade starts.
    let pool = t.db.pg_pool().unwrap();
    eventually("the old binary to claim", || async {
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.jobs WHERE lease_owner = 'old'")
            .fetch_one(pool)
            .await
            .unwrap();
        (running > 0).then_some(())
    })
    .await;
    let started = Instant::now();
    t.db.migrate().await.unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let stalls = old.await.unwrap();
    eprintln!(
        "upgrade of 300,000 jobs took {took:?}; longest enqueue {:?} ({} ran), longest claim {:?} ({} ran)",
        stalls.enqueue, stalls.enqueues, stalls.claim, stalls.claims
    );
    assert!(stalls.enqueue < Duration::from_secs(1), "an enqueue waited {:?}", stalls.enqueue);
    assert!(stalls.claim < Duration::from_secs(1), "a claim waited {:?}", stalls.claim);
    assert!(t.db.schema_status().await.unwrap().is_current());
    assert_eq!(invalid_indexes(&t.url).await, Vec::<String>::new());
    t.finish().await;
}

/// A transaction left open on the jobs table (a report, a forgotten session) holds a lock
/// the upgrade needs. The upgrade does not queue for it, which would stall every enqueue
/// behind it: it tries, gives up within its lock timeout, and tries again, so enqueues go
/// on; it completes once the transaction ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_waits_out_a_long_transaction_without_stalling_enqueues_behind_it() {
    let t = TestDb::postgres().await;
    t.db.migrate_set(&oncommit_until(8)).await.unwrap();
    let mut holder = PgConnection::connect(&t.url).await.unwrap();
    sqlx::raw_sql(
        "BEGIN; INSERT INTO oncommit.jobs (task, queue, priority, max_attempts) VALUES ('held', 'default', 0, 25)",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    let db = t.db.clone();
    let migrating = tokio::spawn(async move { db.migrate().await });
    // The migration asks for the table's exclusive lock (migration 009 adds a column).
    let pool = t.db.pg_pool().unwrap();
    eventually("the migration to wait for its lock", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'oncommit.jobs'::regclass \
             AND mode = 'AccessExclusiveLock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    // Enqueues keep going while the migration keeps trying.
    let mut producer = PgConnection::connect(&t.url).await.unwrap();
    let mut longest = Duration::ZERO;
    for _ in 0..40 {
        let started = Instant::now();
        sqlx::raw_sql(
            "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts) VALUES ('noop', 'default', 0, 25)",
        )
        .execute(&mut producer)
        .await
        .unwrap();
        longest = longest.max(started.elapsed());
        assert!(!migrating.is_finished(), "the migration cannot finish while the transaction holds its table");
    }
    assert!(longest < Duration::from_secs(1), "an enqueue waited {longest:?} behind the migration");
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    migrating.await.unwrap().unwrap();
    assert!(t.db.schema_status().await.unwrap().is_current());
    t.finish().await;
}

/// An index build that was interrupted leaves an INVALID index, which `CREATE INDEX IF NOT
/// EXISTS` would skip for good; the next `migrate` drops it and builds it again.
#[tokio::test]
async fn an_index_left_invalid_by_an_interrupted_build_is_built_again() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    // What an interrupted `CREATE INDEX CONCURRENTLY` leaves: the index, marked invalid,
    // and its migration not recorded.
    exec(
        &t.db,
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'oncommit.jobs_pending'::regclass; \
         DELETE FROM oncommit.schema_migrations WHERE set_name = 'oncommit' AND version = 19",
        "",
    )
    .await
    .unwrap();
    assert_eq!(invalid_indexes(&t.url).await, ["oncommit.jobs_pending"]);
    t.db.migrate().await.unwrap();
    assert_eq!(invalid_indexes(&t.url).await, Vec::<String>::new());
    let mut c = PgConnection::connect(&t.url).await.unwrap();
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.schema_migrations WHERE version = 19")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(recorded, 1, "the interrupted migration, applied again");
    t.finish().await;
}

backend_test!(async fn a_worker_claims_only_on_a_schema_that_suits_it(t) {
    // One migration behind this binary, as after a deploy that forgot `oncommit migrate`.
    let expected = t.db.schema_status().await.unwrap().expected;
    t.db.migrate_set(&oncommit_until(expected - 1)).await.unwrap();
    let status = t.db.schema_status().await.unwrap();
    assert_eq!((status.applied, status.expected), (Some(expected - 1), expected));
    let err = status.check().unwrap_err();
    assert!(err.to_string().contains("run `oncommit migrate`"), "{err}");

    let id = t.db.enqueue_raw(Noop::NAME, &serde_json::json!({}), EnqueueOptions::new()).await.unwrap();
    let (stop, shutdown) = Shutdown::new();
    let worker = Worker::new(t.db.clone())
        .register::<Noop>()
        .lease(Duration::from_millis(600))
        .poll_interval(Duration::from_millis(50));
    // Driven on this thread, so its start is captured: it says why it waits, and claims
    // nothing.
    let logs = LogCapture::start();
    let running = worker.run(shutdown);
    tokio::pin!(running);
    tokio::select! {
        ended = &mut running => panic!("the worker stopped: {ended:?}"),
        () = eventually("the worker to say why it waits", || async {
            logs.text().contains("run `oncommit migrate`").then_some(())
        }) => {}
    }
    // Read by hand: this binary's listings name the columns of its own schema.
    let table = match t.db.backend() {
        oncommit::Backend::Postgres => "oncommit.jobs",
        oncommit::Backend::Sqlite => "oncommit_jobs",
    };
    let mut conn = t.db.acquire().await.unwrap();
    let state: String = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT state FROM {table} WHERE id = $1")))
            .bind(id.0)
            .fetch_one(&mut *c)
            .await
            .unwrap()
    });
    drop(conn);
    assert_eq!(state, "available", "nothing claimed on a schema one behind");
    // Migrated: it claims.
    let migrated = async {
        t.db.migrate().await.unwrap();
        oncommit_testing::wait_for_job(&t.db, id, "completed", |j| j.state == JobState::Completed).await;
    };
    tokio::select! {
        ended = &mut running => panic!("the worker stopped: {ended:?}"),
        () = migrated => {}
    }

    // A contract migration applied while it runs (the schema now needs a newer binary):
    // its heartbeat sees it and it stops claiming; when the schema suits it again, it
    // claims again.
    let compatibility = match t.db.backend() {
        oncommit::Backend::Postgres => "oncommit.schema_compatibility",
        oncommit::Backend::Sqlite => "oncommit_schema_compatibility",
    };
    let set = |from: i64| format!("UPDATE {compatibility} SET compatible_from = {from} WHERE set_name = 'oncommit'");
    let contracted = async {
        exec(&t.db, &set(expected + 1), &set(expected + 1)).await.unwrap();
        // Two beats after the change, the check that follows a beat has seen it.
        for _ in 0..2 {
            let last = t.db.workers().list().await.unwrap()[0].heartbeat_at;
            eventually("the next heartbeat", || async {
                (t.db.workers().list().await.unwrap()[0].heartbeat_at > last).then_some(())
            })
            .await;
        }
        let late = t.db.enqueue_raw(Noop::NAME, &serde_json::json!({}), EnqueueOptions::new()).await.unwrap();
        for _ in 0..3 {
            let last = t.db.workers().list().await.unwrap()[0].heartbeat_at;
            eventually("the next heartbeat", || async {
                (t.db.workers().list().await.unwrap()[0].heartbeat_at > last).then_some(())
            })
            .await;
        }
        assert_eq!(t.db.jobs().get(late).await.unwrap().unwrap().state, JobState::Available, "claimed on an incompatible schema");
        exec(&t.db, &set(1), &set(1)).await.unwrap();
        oncommit_testing::wait_for_job(&t.db, late, "completed", |j| j.state == JobState::Completed).await;
    };
    tokio::select! {
        ended = &mut running => panic!("the worker stopped: {ended:?}"),
        () = contracted => {}
    }
    stop.trigger();
    running.await.unwrap();
});
