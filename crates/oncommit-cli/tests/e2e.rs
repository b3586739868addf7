//! End to end, on each backend: `oncommit serve` on a fresh database, driven over HTTP, its
//! dashboard loaded in Debian's headless Chromium (through playwright-core, `tests/e2e/`):
//! tabs, filters, search, job detail, a bulk retry and delete, pause / resume and a retry
//! clicked there; then a graceful stop. The SQLite run's screenshots are the ones in
//! `docs/`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use oncommit::{Backend, EnqueueOptions, JobState};
use oncommit_testing::{TestDb, wait_for_job};
use support::{request, serve_with};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A request with the server's own address as `Host`.
fn http(addr: &str, method: &str, path: &str) -> (u16, String) {
    request(addr, method, path, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drives_the_app_and_the_dashboard_in_headless_chromium_on_sqlite() {
    let t = TestDb::new(Backend::Sqlite).await;
    drive(&t.url, "sqlite").await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_drives_the_app_and_the_dashboard_in_headless_chromium_on_postgres() {
    let t = TestDb::new(Backend::Postgres).await;
    drive(&t.url, "postgres").await;
    t.finish().await;
}

async fn drive(url: &str, backend: &str) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "Debian's chromium is needed at {chromium}: scripts/test installs it");
    let e2e = repo().join("tests/e2e");
    assert!(e2e.join("node_modules/playwright-core").exists(), "run `npm ci --prefix tests/e2e` (scripts/test does)");

    let (mut serve, addr, _) = serve_with(url, "127.0.0.1:0", &[("ONCOMMIT_ADMIN_TOKEN", "e2e-token")]);

    // Over HTTP: the seed's view, three ways.
    let (status, naive) = http(&addr, "POST", "/data/naive?name=naive");
    assert_eq!(status, 200, "{naive}");
    assert!(naive.contains("\"task_saw_missing_row\":true"), "{naive}");
    for way in ["on_commit", "transactional"] {
        let (status, body) = http(&addr, "POST", &format!("/data/{way}?name={way}"));
        assert_eq!(status, 200, "{body}");
    }
    let db = oncommit::Db::connect(url).await.unwrap();
    // Sixty jobs on a queue no worker serves, for the page's pages (older than the jobs
    // below, which the first page of all jobs shows).
    for i in 0..60 {
        db.enqueue_raw("noop", &serde_json::json!({ "i": i }), EnqueueOptions::new().queue("many")).await.unwrap();
    }
    // A job that fails, with arguments that would be markup if the page parsed them.
    let args = serde_json::json!({ "message": "<img src=x onerror=alert(1)>" });
    let id = db.enqueue_raw("fail", &args, EnqueueOptions::new().max_attempts(1)).await.unwrap();
    wait_for_job(&db, id, "failed", |job| job.state == JobState::Failed).await;
    // Another, on queue `bulk`, for the page's bulk delete.
    let bulk_opts = EnqueueOptions::new().max_attempts(1).queue("bulk");
    let doomed = db.enqueue_raw("fail", &serde_json::json!({ "message": "bulk" }), bulk_opts).await.unwrap();
    oncommit_demo::tasks::worker(&db).queue("bulk", 1).drain(1).await.unwrap();
    assert_eq!(db.jobs().get(doomed).await.unwrap().unwrap().state, JobState::Failed);

    // A workflow of three steps, run by the server's worker: the page lists them.
    let flow = oncommit::Workflow::named("e2e").then(oncommit::Step::raw("noop", serde_json::json!({}))).then_all([
        oncommit::Step::raw("noop", serde_json::json!({})),
        oncommit::Step::raw("noop", serde_json::json!({})),
    ]);
    let flow = db.enqueue_workflow(flow).await.unwrap();
    let last_step = flow.stages[1][1];
    wait_for_job(&db, last_step, "completed", |job| job.state == JobState::Completed).await;

    // In the browser: every view and action (tests/e2e/dashboard.mjs says what).
    let shots = repo().join(format!("target/e2e-{backend}"));
    std::fs::create_dir_all(&shots).unwrap();
    let node = Command::new("node")
        .arg(e2e.join("dashboard.mjs"))
        .args([
            &format!("http://{addr}"),
            "e2e-token",
            &id.to_string(),
            shots.to_str().unwrap(),
            &last_step.to_string(),
            &doomed.to_string(),
        ])
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node is installed");
    assert!(
        node.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&node.stdout),
        String::from_utf8_lossy(&node.stderr)
    );
    assert!(shots.join("dashboard.png").exists() && shots.join("job.png").exists());
    // The README's and the guides' pictures, from the PostgreSQL run.
    if backend == "postgres" {
        std::fs::copy(shots.join("dashboard.png"), repo().join("docs/dashboard.png")).unwrap();
        std::fs::copy(shots.join("job.png"), repo().join("docs/dashboard-job.png")).unwrap();
    }
    // The page retried the failed job of queue `bulk` (ticked), then deleted every job of
    // that queue (the filter).
    assert!(db.jobs().get(doomed).await.unwrap().is_none(), "the page's bulk delete removed it");
    // The queue was paused, limited and resumed through the page.
    let queue = db.queues().get("default").await.unwrap();
    assert!(!queue.paused && queue.concurrency_limit == Some(3), "{queue:?}");
    // The retry ran the job again: attempt 2 (it fails again, being a `fail` task).
    let job = wait_for_job(&db, id, "run again after the retry clicked in the page", |job| {
        job.attempt == 2 && job.state.is_finished()
    })
    .await;
    assert_eq!(job.errors.len(), 2);

    // SIGTERM: a graceful stop.
    let mut serve = serve.0.take().unwrap();
    assert!(Command::new("kill").args(["-TERM", &serve.id().to_string()]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || serve.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}
