//! The bounds the docs give for stopping and starting, each provoked for real: one SIGTERM
//! lets `serve`'s requests in flight finish, for up to 10 s; a worker whose database stopped
//! answering (its server frozen) returns within `shutdown_timeout` plus twice its query
//! timeout; a worker waits for a PostgreSQL that starts late, and stops at once when told
//! to while it waits.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oncommit::{Db, JobState};
use oncommit_testing::{Cluster, TestDb, eventually};
use support::{KillOnDrop, json, serve};

fn sigterm(pid: u32) {
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
}

/// Waits until a session of `database` waits for a lock: the demo's second session, held
/// by the first.
async fn a_session_waits_for_a_lock(admin: &Db, database: &str) {
    eventually("a session waiting for a lock", || async {
        let waiting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'")
                .bind(database)
                .fetch_one(admin.pg_pool().unwrap())
                .await
                .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
}

/// A demo request whose first session holds a row lock for `ms` while the second waits,
/// sent from a thread of its own; its status and body.
fn hold_a_request(addr: &str, ms: u64) -> std::thread::JoinHandle<(u16, String)> {
    let addr = addr.to_owned();
    std::thread::spawn(move || support::request(&addr, "GET", &format!("/demo/select-for-update?hold_ms={ms}"), &addr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_serves_requests_in_flight_finish_for_up_to_ten_seconds() {
    let t = TestDb::postgres().await;
    let name = t.url.rsplit('/').next().unwrap().to_owned();
    let admin = Db::connect(&oncommit_testing::admin_url()).await.unwrap();

    // A request holding a row lock for 2 s: SIGTERM while it runs, and it still answers.
    let (mut server, addr) = serve(&t.url);
    let held = hold_a_request(&addr, 2000);
    a_session_waits_for_a_lock(&admin, &name).await;
    let signalled = Instant::now();
    sigterm(server.id());
    let (status, body) = held.join().unwrap();
    assert_eq!(status, 200, "the request in flight finished: {body}");
    assert!(server.wait().unwrap().success());
    assert!(signalled.elapsed() < Duration::from_secs(10), "{:?}", signalled.elapsed());

    // A request that would take longer than 10 s: serve exits after 10 s anyway.
    let (mut server, addr) = serve(&t.url);
    let _held = hold_a_request(&addr, 10_000);
    a_session_waits_for_a_lock(&admin, &name).await;
    let signalled = Instant::now();
    sigterm(server.id());
    server.wait().unwrap();
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(12), "serve exited {took:?} after SIGTERM");
    eprintln!("serve with a request held past the grace period exited {took:?} after SIGTERM");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_database_stops_answering_stops_within_its_bound() {
    let cluster = Cluster::init().unwrap();
    cluster.start().unwrap();
    let url = cluster.url();
    json(&url, &["migrate", "--demo", "--json"]);
    let (lease, shutdown) = (Duration::from_secs(2), Duration::from_secs(1));
    let mut worker = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_oncommit"))
            .args(["worker", "--lease-ms", &lease.as_millis().to_string()])
            .args(["--shutdown-timeout-ms", &shutdown.as_millis().to_string(), "--poll-ms", "100"])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // Working: it runs a job, and so holds connections to the server.
    let id = json(&url, &["enqueue", "noop", "--json"])["id"].as_i64().unwrap();
    let db = Db::connect(&url).await.unwrap();
    oncommit_testing::wait_for_job(&db, oncommit::JobId(id), "completed", |j| j.state == JobState::Completed).await;
    drop(db);
    cluster.freeze().unwrap();
    let signalled = Instant::now();
    sigterm(worker.id());
    let status = worker.wait().unwrap();
    let took = signalled.elapsed();
    cluster.thaw().unwrap();
    assert!(status.success(), "{status:?}");
    // shutdown_timeout + 2 × query timeout (the lease), and a process's start-up slack.
    let bound = shutdown + lease * 2 + Duration::from_millis(1500);
    assert!(took < bound, "the worker took {took:?} to stop (bound {bound:?})");
    eprintln!("a worker whose server froze stopped {took:?} after SIGTERM (bound {bound:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_waits_for_a_postgres_that_starts_late_and_stops_when_told() {
    let cluster = Cluster::init().unwrap();
    let url = cluster.url();
    // Told to stop while it waits: it exits at once, cleanly.
    assert!(std::net::TcpStream::connect(("127.0.0.1", cluster.port)).is_err(), "nothing listens yet");
    let mut waiting = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_oncommit"))
            .args(["worker", "--migrate"])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let stderr = waiting.stderr.take().unwrap();
    let said = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find(|line| line.contains("waiting for the database"));
    assert!(said.is_some(), "the worker says it waits");
    let signalled = Instant::now();
    sigterm(waiting.id());
    assert!(waiting.wait().unwrap().success());
    assert!(signalled.elapsed() < Duration::from_secs(3), "{:?}", signalled.elapsed());

    // Left to wait, it connects once the server is up, migrates, and runs jobs.
    let _worker = support::worker_process(&url, "default", 2);
    cluster.start().unwrap();
    let db = eventually("the worker's migrations", || async {
        let db = Db::connect(&url).await.ok()?;
        let migrated: Option<i64> =
            sqlx::query_scalar("SELECT count(*) FROM oncommit.schema_migrations").fetch_one(db.pg_pool()?).await.ok();
        migrated.map(|_| db)
    })
    .await;
    let id = json(&url, &["enqueue", "noop", "--json"])["id"].as_i64().unwrap();
    oncommit_testing::wait_for_job(&db, oncommit::JobId(id), "completed", |j| j.state == JobState::Completed).await;
}
