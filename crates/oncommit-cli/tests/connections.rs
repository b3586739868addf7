//! The connection budget: an idle worker gives back all but two server connections (its
//! LISTEN and one for its periodic statements), and 40 worker processes share a server
//! with `max_connections = 100` to drain a backlog, directly and through PgBouncer.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oncommit_testing::{PgBouncer, TestDb, eventually, private_cluster, with_database};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use support::{KillOnDrop, json};

fn worker(url: &str, concurrency: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["worker", "--concurrency", &concurrency.to_string(), "--poll-ms", "200"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Server connections to `database`, as the server counts them.
async fn connections(admin: &mut PgConnection, database: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(database)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_holds_at_most_two_connections() {
    let t = TestDb::postgres().await;
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    // Only the worker and the CLI below use this database from now on.
    t.db.pg_pool().unwrap().close().await;
    let url = t.url.clone();
    let _worker = KillOnDrop(Some(worker(&url, 8)));
    let busy_url = url.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..40 {
            json(&busy_url, &["enqueue", "sleep", "--args", r#"{"ms": 50}"#, "--json"]);
        }
    })
    .await
    .unwrap();
    let mut admin = PgConnection::connect(&oncommit_testing::admin_url()).await.unwrap();
    let done_url = url.clone();
    eventually("the jobs to complete", || {
        let done_url = done_url.clone();
        async move {
            let stats = tokio::task::spawn_blocking(move || json(&done_url, &["stats", "--json"])).await.unwrap();
            (stats["completed"] == 40).then_some(())
        }
    })
    .await;
    let busiest = connections(&mut admin, &name).await;
    // Idle now: within the pools' idle timeouts (10 s, and the reaper's as long), the
    // worker is down to two.
    let admin = tokio::sync::Mutex::new(admin);
    eventually("the idle worker to give its connections back", || async {
        (connections(&mut *admin.lock().await, &name).await <= 2).then_some(())
    })
    .await;
    let mut admin = admin.into_inner();
    // And stays there, though it ticks every poll and beats every few seconds.
    for _ in 0..20 {
        let held = connections(&mut admin, &name).await;
        assert!(held <= 2, "an idle worker holds {held} connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("busy: {busiest} connections; idle: at most 2");
    t.finish().await;
}

/// 40 worker processes drain a backlog on a server with `max_connections = 100`.
async fn forty_workers_drain(through_pooler: bool) {
    let server = private_cluster("127.0.0.1", "127.0.0.1/32").unwrap();
    let mut admin = PgConnection::connect(&server).await.unwrap();
    let max: String = sqlx::query_scalar("SHOW max_connections").fetch_one(&mut admin).await.unwrap();
    assert_eq!(max, "100");
    let name = format!("oncommit_forty_{}", fastrand_suffix());
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let direct = with_database(&server, &name);
    json(&direct, &["migrate", "--demo", "--json"]);
    let seed = PgConnection::connect(&direct).await;
    let mut seed = seed.unwrap();
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, args, queue, priority, max_attempts) \
         SELECT 'noop', '{}', 'default', 0, 25 FROM generate_series(1, 2000)",
    )
    .execute(&mut seed)
    .await
    .unwrap();
    seed.close().await.unwrap();
    let bouncer = through_pooler
        .then(|| PgBouncer::start(&server, &["max_client_conn = 2000", "default_pool_size = 20"]).unwrap());
    let url = match &bouncer {
        Some(b) => format!("{}?pooler=transaction", b.url(&name)),
        None => direct.clone(),
    };
    let mut watch = PgConnection::connect(&direct).await.unwrap();
    let workers: Vec<KillOnDrop> = (0..40).map(|_| KillOnDrop(Some(worker(&url, 2)))).collect();
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut most = 0;
    loop {
        let completed: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.all_jobs WHERE state = 'completed'")
            .fetch_one(&mut watch)
            .await
            .unwrap();
        most = most.max(connections(&mut admin, &name).await);
        if completed == 2000 {
            break;
        }
        assert!(Instant::now() < deadline, "{completed} of 2000 completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(workers);
    eprintln!("40 workers, through the pooler: {through_pooler}: at most {most} server connections");
    assert!(most <= 100);
}

fn fastrand_suffix() -> u32 {
    std::process::id() ^ (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos())
}

/// One test, so the two fleets do not run at once on the test machine's two cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_workers_share_a_server_of_100_connections_directly_and_through_pgbouncer() {
    forty_workers_drain(false).await;
    forty_workers_drain(true).await;
}
