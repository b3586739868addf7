//! `oncommit serve` under a burst: 200 concurrent clients hammer the demos and the seed's
//! views for 10 s; afterwards the dashboard, the views and the worker answer at once, and
//! SIGTERM stops the process within its shutdown timeout. A test binary of its own, so the
//! burst has the machine to itself.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::serve;

use oncommit::{Backend, Db, JobId, JobState};
use oncommit_testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on a fresh connection, within `limit`; the status and body (its head too:
/// `raw`), or `None` when no answer came in time.
async fn request(addr: &str, method: &str, path: &str, limit: Duration) -> Option<(u16, String)> {
    exchange(addr, method, path, limit).await.map(|(status, _, body)| (status, body))
}

async fn exchange(addr: &str, method: &str, path: &str, limit: Duration) -> Option<(u16, String, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let head =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.get(9..12)?.parse().ok()?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        Some((status, head.to_ascii_lowercase(), body.to_owned()))
    };
    tokio::time::timeout(limit, exchange).await.ok().flatten()
}

/// What the burst's clients ask for, in turn.
const MIX: [(&str, &str); 8] = [
    ("GET", "/demo/deadlock"),
    ("GET", "/demo/select-for-update?hold_ms=200"),
    ("GET", "/demo/isolation"),
    ("GET", "/demo/race?iterations=2"),
    ("POST", "/data/naive?name=burst"),
    ("POST", "/data/on_commit?name=burst"),
    ("POST", "/data/transactional?name=burst"),
    ("GET", "/data/1"),
];

/// What a burst got back.
struct Burst {
    /// Answers per status.
    statuses: std::collections::BTreeMap<u16, usize>,
    /// Requests with no answer within 40 s (a frozen server).
    unanswered: usize,
    /// 503 answers without `Retry-After`.
    bare_503: usize,
}

impl Burst {
    /// No 500, every 503 with `Retry-After`, nothing unanswered, and most answers a
    /// success or a 503 that says when to come back.
    fn check(&self) {
        let Burst { statuses, unanswered, bare_503 } = self;
        eprintln!(
            "burst answers by status: {statuses:?}; unanswered: {unanswered}; 503 without Retry-After: {bare_503}"
        );
        assert_eq!(*unanswered, 0, "requests got no answer: {statuses:?}");
        assert_eq!(statuses.get(&500), None, "no answer may be a 500: {statuses:?}");
        assert_eq!(*bare_503, 0, "every 503 says when to come back: {statuses:?}");
        let total: usize = statuses.values().sum();
        let fine: usize = statuses.iter().filter(|(s, _)| (200..300).contains(*s) || **s == 503).map(|(_, n)| n).sum();
        assert!(fine * 2 > total, "most answers are 2xx or 503: {statuses:?}");
        assert!(statuses.get(&200).copied().unwrap_or(0) > 0, "{statuses:?}");
    }
}

/// One burst at a time in this binary: two would share the machine's two cores.
static ONE_BURST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 200 clients for 10 s.
async fn burst(addr: &str) -> Burst {
    let until = Instant::now() + Duration::from_secs(10);
    let clients: Vec<_> = (0..200)
        .map(|client| {
            let addr = addr.to_owned();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut turn = client;
                while Instant::now() < until {
                    let (method, path) = MIX[turn % MIX.len()];
                    let answer = exchange(&addr, method, path, Duration::from_secs(40)).await;
                    seen.push(answer.map(|(status, head, _)| (status, head.contains("\r\nretry-after:"))));
                    turn += 1;
                }
                seen
            })
        })
        .collect();
    let mut result = Burst { statuses: Default::default(), unanswered: 0, bare_503: 0 };
    for client in clients {
        for answer in client.await.unwrap() {
            match answer {
                Some((status, retry_after)) => {
                    *result.statuses.entry(status).or_default() += 1;
                    result.bare_503 += usize::from(status == 503 && !retry_after);
                }
                None => result.unanswered += 1,
            }
        }
    }
    result
}

/// After the burst, each of these answers within 2 s, and a job enqueued then is run.
async fn answers_normally(addr: &str, db: &Db) {
    let quick = Duration::from_secs(2);
    for (method, path) in [("GET", "/dashboard/api/stats"), ("GET", "/dashboard"), ("GET", "/data/1")] {
        let (status, body) =
            request(addr, method, path, quick).await.unwrap_or_else(|| panic!("{path} did not answer in 2 s"));
        assert!(status == 200 || (path == "/data/1" && status == 404), "{path}: {status} {body}");
    }
    let started = Instant::now();
    let (status, body) = request(addr, "POST", "/data/transactional?name=after", quick).await.expect("a view answers");
    assert_eq!(status, 200, "{body}");
    let job: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = JobId(job["job"].as_i64().unwrap());
    oncommit_testing::wait_for_job(db, id, "completed", |j| j.state == JobState::Completed).await;
    eprintln!("after the burst, a view's job ran {:?} after the request", started.elapsed());
}

fn stop(mut child: support::KillOnDrop) {
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    // The worker's shutdown timeout (30 s) plus its query timeout bound it; in practice the
    // jobs are short and it stops at once.
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "stopped after {:?}", started.elapsed());
    eprintln!("SIGTERM stopped serve in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_survives_a_burst_of_200_clients() {
    survives_a_burst(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_survives_a_burst_of_200_clients() {
    survives_a_burst(Backend::Sqlite).await;
}

async fn survives_a_burst(backend: Backend) {
    let _turn = ONE_BURST.lock().await;
    let t = TestDb::new(backend).await;
    let (child, addr) = serve(&t.url);
    burst(&addr).await.check();
    answers_normally(&addr, &t.db).await;
    stop(child);
    t.finish().await;
}

/// On SQLite a demo holding its lock does not stop the application's writes: the demos run
/// on a scratch file of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_demo_holding_its_lock_does_not_block_the_views() {
    let t = TestDb::new(Backend::Sqlite).await;
    let (child, addr) = serve(&t.url);
    let holder = {
        let addr = addr.clone();
        tokio::spawn(async move {
            request(&addr, "GET", "/demo/select-for-update?hold_ms=5000", Duration::from_secs(30)).await
        })
    };
    // Writes go on for as long as the demo runs (its five-second hold included); none may
    // wait for it.
    let mut writes = 0;
    while !holder.is_finished() {
        let started = Instant::now();
        let (status, body) = request(&addr, "POST", "/data/transactional?name=beside", Duration::from_secs(2))
            .await
            .expect("a write answers");
        assert_eq!(status, 200, "{body}");
        assert!(started.elapsed() < Duration::from_secs(1), "a write waited {:?}", started.elapsed());
        writes += 1;
    }
    let (status, body) = holder.await.unwrap().expect("the demo answers");
    assert_eq!(status, 200, "{body}");
    assert!(writes >= 10, "only {writes} writes while the demo ran");
    stop(child);
    t.finish().await;
}
