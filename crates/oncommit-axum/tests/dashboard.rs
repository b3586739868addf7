//! The dashboard's JSON API, metrics and action security, on both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use oncommit::{EnqueueOptions, JobId, JobState};
use oncommit_axum::dashboard::{self, DashboardConfig};
use oncommit_testing::backend_test;
use serde_json::Value;
use tower::ServiceExt;

fn app(db: &oncommit::Db, token: Option<&str>) -> Router {
    Router::new()
        .nest("/dashboard", dashboard::router(db.clone(), DashboardConfig { admin_token: token.map(Into::into) }))
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get_json(app: Router, uri: &str) -> Value {
    let (status, body) = send(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn post(app: Router, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut request = Request::post(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

async fn failed_job(db: &oncommit::Db) -> JobId {
    db.migrate().await.unwrap();
    let args = serde_json::json!({ "note": "<img src=x onerror=alert(1)>" });
    let id = db.enqueue_raw("report", &args, EnqueueOptions::new().queue("mail")).await.unwrap();
    db.cancel_job(id).await.unwrap();
    id
}

backend_test!(async fn the_api_shows_queues_jobs_and_workers(t) {
    let id = failed_job(&t.db).await;
    let app = app(&t.db, None);
    let stats = get_json(app.clone(), "/dashboard/api/stats").await;
    assert_eq!(stats["queues"]["mail"]["cancelled"], 1, "{stats}");
    assert_eq!(stats["total"]["available"], 0, "{stats}");
    let jobs = get_json(app.clone(), "/dashboard/api/jobs?state=cancelled").await;
    assert_eq!(jobs["jobs"][0]["id"], id.0);
    // Values go out as JSON data; the page puts them in the DOM as text.
    assert_eq!(jobs["jobs"][0]["args"]["note"], "<img src=x onerror=alert(1)>");
    let job = get_json(app.clone(), &format!("/dashboard/api/jobs/{id}")).await;
    assert_eq!(job["task"], "report");
    assert!(get_json(app.clone(), "/dashboard/api/workers").await["workers"].is_array());
    assert!(get_json(app.clone(), "/dashboard/api/throughput").await["minutes"].is_array());
    let (status, _) = send(app.clone(), Request::get("/dashboard/api/jobs/999999").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(app.clone(), Request::get("/dashboard/api/jobs?state=bogus").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, page) = send(app, Request::get("/dashboard").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("textContent") && !page.contains("innerHTML"), "the page must never parse data as HTML");
});

backend_test!(async fn metrics_are_prometheus_text_prefixed_oncommit(t) {
    failed_job(&t.db).await;
    let (status, body) = send(app(&t.db, None), Request::get("/dashboard/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("oncommit_jobs{queue=\"mail\",state=\"cancelled\"} 1"), "{body}");
    for series in [
        "oncommit_workers ",
        "oncommit_claim_duration_seconds_bucket",
        "oncommit_complete_duration_seconds_count",
        "oncommit_job_run_duration_seconds_sum",
        "oncommit_jobs_claimed_total",
    ] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
    let series: Vec<&str> = body.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(series.iter().all(|l| l.starts_with("oncommit_")), "{series:?}");
});

backend_test!(async fn actions_need_the_admin_token_and_the_same_origin(t) {
    let id = failed_job(&t.db).await;
    let retry = format!("/dashboard/api/jobs/{id}/retry");
    let (status, body) = post(app(&t.db, None), &retry, &[("authorization", "Bearer anything")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token configured: {body}");
    let app = app(&t.db, Some("s3cret"));
    let (status, _) = post(app.clone(), &retry, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(app.clone(), &retry, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let cross = [("authorization", "Bearer s3cret"), ("origin", "https://evil.example"), ("host", "127.0.0.1:8000")];
    let (status, _) = post(app.clone(), &retry, &cross).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(t.db.job(id).await.unwrap().unwrap().state, JobState::Cancelled, "nothing happened so far");

    let ok = [("authorization", "Bearer s3cret"), ("origin", "http://127.0.0.1:8000"), ("host", "127.0.0.1:8000")];
    let (status, body) = post(app.clone(), &retry, &ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.db.job(id).await.unwrap().unwrap().state, JobState::Available);
    let (status, _) = post(app.clone(), &format!("/dashboard/api/jobs/{id}/cancel"), &ok).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(app.clone(), &format!("/dashboard/api/jobs/{id}/delete"), &ok).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.db.job(id).await.unwrap().is_none());
    let (status, _) = post(app, &format!("/dashboard/api/jobs/{id}/delete"), &ok).await;
    assert_eq!(status, StatusCode::CONFLICT);
});
