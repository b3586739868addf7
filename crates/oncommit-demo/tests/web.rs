//! The seed application over HTTP (tower `oneshot`, a real worker), on both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{JobId, JobState, Shutdown};
use oncommit_axum::dashboard::DashboardConfig;
use oncommit_demo::{schema, tasks, web};
use oncommit_testing::{backend_test, eventually, wait_for_job};
use serde_json::Value;
use tower::ServiceExt;

async fn call(app: &axum::Router, method: &str, uri: &str) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

backend_test!(async fn safe_endpoints_never_let_the_task_miss_its_row_while_the_naive_one_does(t) {
    schema::migrate(&t.db).await.unwrap();
    let (stop, shutdown) = Shutdown::new();
    let worker = tokio::spawn(tasks::worker(&t.db).poll_interval(Duration::from_millis(50)).run(shutdown));
    let app = web::router(t.db.clone(), DashboardConfig::default());

    let (status, naive) = call(&app, "POST", "/data/naive?name=naive").await;
    assert_eq!(status, StatusCode::OK, "{naive}");
    assert_eq!(naive["task_saw_missing_row"], true, "the naive way shows the seed's race: {naive}");

    let mut safe_jobs = Vec::new();
    for way in ["on_commit", "transactional"] {
        for _ in 0..3 {
            let (status, body) = call(&app, "POST", &format!("/data/{way}?name={way}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            safe_jobs.push(body["pk"].as_i64().unwrap());
        }
    }
    // Every safe row is renamed by its task, whose first attempt found it.
    for pk in safe_jobs {
        eventually(&format!("row {pk} to be processed"), || async {
            let (status, row) = call(&app, "GET", &format!("/data/{pk}")).await;
            assert_eq!(status, StatusCode::OK);
            (row["name"] == "new name").then_some(())
        })
        .await;
    }
    let jobs = t.db.jobs().list(&JobSelection::default(), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
    for job in jobs.iter().filter(|j| j.task == "do_stuff" && Some(j.id) != naive["job"].as_i64().map(JobId)) {
        // The task ran; its completion is recorded in the next batch.
        let job = wait_for_job(&t.db, job.id, "finished", |j| j.state.is_finished()).await;
        assert_eq!(job.state, JobState::Completed, "{job:?}");
        assert!(job.errors.is_empty(), "a safe job's task saw a missing row: {job:?}");
    }
    let (status, _) = call(&app, "GET", "/data/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(&app, "POST", &format!("/data/transactional?name={}", "x".repeat(51))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    stop.trigger();
    worker.await.unwrap().unwrap();
});

backend_test!(async fn the_seed_004_scenarios_answer_in_json(t) {
    let app = web::router(t.db.clone(), DashboardConfig::default());
    let (status, r) = call(&app, "GET", "/demo/select-for-update?hold_ms=10").await;
    assert_eq!((status, r["blocked"].clone()), (StatusCode::OK, Value::Bool(true)), "{r}");
    let (status, r) = call(&app, "GET", "/demo/isolation").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["lost_update"].as_array().unwrap().len(), 3, "{r}");
    let (status, r) = call(&app, "GET", "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["dashboard"], "/dashboard");
});
