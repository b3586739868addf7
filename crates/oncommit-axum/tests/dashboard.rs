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
    with_config(db, DashboardConfig { admin_token: token.map(Into::into), reads_need_token: false })
}

fn with_config(db: &oncommit::Db, config: DashboardConfig) -> Router {
    Router::new().nest("/dashboard", dashboard::router(db.clone(), config))
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
    db.jobs().cancel(id).await.unwrap();
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
    let (status, _) = send(app.clone(), Request::get("/dashboard").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Each view's address serves the page, told where it is nested.
    for path in ["/dashboard/jobs/35", "/dashboard/jobs?state=failed&queue=mail", "/dashboard/queues/mail"] {
        let (status, html) = send(app.clone(), Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains(r#"data-base="/dashboard""#) && html.contains("/dashboard/page.js"), "{path}: {html}");
    }
    // The page's script, which puts every value from the server into the page.
    let (status, script) = send(app, Request::get("/dashboard/page.js").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("textContent") && !script.contains("innerHTML"), "the page must never parse data as HTML");
});

backend_test!(async fn metrics_are_prometheus_text_prefixed_oncommit(t) {
    failed_job(&t.db).await;
    let (status, body) = send(app(&t.db, None), Request::get("/dashboard/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("oncommit_jobs{queue=\"mail\",state=\"cancelled\"} 1"), "{body}");
    for series in [
        "oncommit_workers ",
        "oncommit_jobs_table_bytes ",
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

backend_test!(async fn queue_lag_is_a_gauge_per_queue_and_a_field_of_the_queue_list(t) {
    t.db.migrate().await.unwrap();
    t.db.enqueue_raw("report", &serde_json::json!({}), EnqueueOptions::new().queue("slow")).await.unwrap();
    let done = t.db.enqueue_raw("report", &serde_json::json!({}), EnqueueOptions::new().queue("idle")).await.unwrap();
    t.db.jobs().cancel(done).await.unwrap();
    // Nothing claims the "slow" queue's job: its lag grows from its run time on.
    let lag = |body: &str, queue: &str| -> f64 {
        let prefix = format!("oncommit_queue_lag_seconds{{queue=\"{queue}\"}} ");
        let line = body.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{prefix}missing:\n{body}"));
        line[prefix.len()..].parse().unwrap()
    };
    let (_, first) = send(app(&t.db, None), Request::get("/dashboard/metrics").body(Body::empty()).unwrap()).await;
    assert!(first.contains("# TYPE oncommit_queue_lag_seconds gauge"), "{first}");
    let since = lag(&first, "slow");
    assert!(!first.contains("oncommit_queue_lag_seconds{queue=\"idle\"}"), "only finished jobs: no series\n{first}");
    let queues = t.db.queues().list().await.unwrap();
    let slow = queues.iter().find(|q| q.name == "slow").unwrap();
    assert!(slow.lag.as_secs_f64() >= since, "{slow:?}");
    assert_eq!(serde_json::to_value(slow).unwrap()["lag_seconds"].as_f64(), Some(slow.lag.as_secs_f64()));
    let list = t.db.queues().overview().await.unwrap().queues;
    assert!(list.iter().find(|q| q.name == "slow").unwrap().lag >= slow.lag);
    let api = get_json(app(&t.db, None), "/dashboard/api/queues").await;
    let listed = api["queues"].as_array().unwrap().iter().find(|q| q["name"] == "slow").cloned().unwrap();
    assert!(listed["lag_seconds"].as_f64().unwrap() >= since, "{api}");
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
    assert_eq!(t.db.jobs().get(id).await.unwrap().unwrap().state, JobState::Cancelled, "nothing happened so far");

    let ok = [("authorization", "Bearer s3cret"), ("origin", "http://127.0.0.1:8000"), ("host", "127.0.0.1:8000")];
    let (status, body) = post(app.clone(), &retry, &ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.db.jobs().get(id).await.unwrap().unwrap().state, JobState::Available);
    let (status, _) = post(app.clone(), &format!("/dashboard/api/jobs/{id}/cancel"), &ok).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(app.clone(), &format!("/dashboard/api/jobs/{id}/delete"), &ok).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.db.jobs().get(id).await.unwrap().is_none());
    let (status, _) = post(app, &format!("/dashboard/api/jobs/{id}/delete"), &ok).await;
    assert_eq!(status, StatusCode::CONFLICT);
});

backend_test!(async fn every_response_carries_security_headers_and_the_page_has_no_inline_script(t) {
    t.db.migrate().await.unwrap();
    for uri in ["/dashboard", "/dashboard/page.js", "/dashboard/page.css", "/dashboard/api/stats", "/dashboard/api/jobs/999"] {
        let response = app(&t.db, None).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let headers = response.headers();
        let csp = headers.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{uri}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert_eq!(headers.get("x-content-type-options").unwrap(), "nosniff", "{uri}");
        assert_eq!(headers.get("x-frame-options").unwrap(), "DENY", "{uri}");
        assert_eq!(headers.get("referrer-policy").unwrap(), "no-referrer", "{uri}");
    }
    let (_, page) = send(app(&t.db, None), Request::get("/dashboard").body(Body::empty()).unwrap()).await;
    assert!(page.contains(r#"<script src="/dashboard/page.js"></script>"#), "{page}");
    assert!(!page.contains("<script>") && !page.contains("<style>"), "no inline script or style: {page}");
    let response = app(&t.db, None).oneshot(Request::get("/dashboard/page.js").body(Body::empty()).unwrap()).await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
});

backend_test!(async fn the_grafana_dashboard_uses_only_series_that_exist(t) {
    failed_job(&t.db).await;
    let (_, body) = send(app(&t.db, None), Request::get("/dashboard/metrics").body(Body::empty()).unwrap()).await;
    let grafana = include_str!("../../../docs/grafana-dashboard.json");
    let _: Value = serde_json::from_str(grafana).unwrap();
    let mut names: Vec<&str> = grafana
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("oncommit_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        // PostgreSQL's statistics only.
        if name == "oncommit_jobs_table_dead_rows" && t.backend() == oncommit::Backend::Sqlite {
            continue;
        }
        let exported = body.lines().any(|l| l.split(['{', ' ']).next() == Some(name));
        assert!(exported, "the Grafana dashboard uses {name}, which /metrics does not export:\n{body}");
    }
});

backend_test!(async fn metrics_are_also_served_at_the_root_with_the_same_rules(t) {
    failed_job(&t.db).await;
    let root = |config: DashboardConfig| Router::new().merge(dashboard::metrics_router(t.db.clone(), config));
    let (status, body) = send(root(DashboardConfig::default()), Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("oncommit_jobs{queue=\"mail\",state=\"cancelled\"} 1"), "{body}");
    let closed = DashboardConfig { admin_token: None, reads_need_token: true };
    let (status, _) = send(root(closed), Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
});

backend_test!(async fn reads_can_be_put_behind_the_token(t) {
    t.db.migrate().await.unwrap();
    let closed = DashboardConfig { admin_token: None, reads_need_token: true };
    let get = |uri: &str, auth: Option<&str>| {
        let mut request = Request::get(uri);
        if let Some(token) = auth {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        request.body(Body::empty()).unwrap()
    };
    for uri in ["/dashboard/api/stats", "/dashboard/api/jobs", "/dashboard/metrics", "/dashboard/api/workers"] {
        let (status, body) = send(with_config(&t.db, closed.clone()), get(uri, None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
    }
    let guarded = DashboardConfig { admin_token: Some("s3cret".into()), reads_need_token: true };
    let (status, _) = send(with_config(&t.db, guarded.clone()), get("/dashboard/api/stats", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(with_config(&t.db, guarded.clone()), get("/dashboard/api/stats", Some("s3cret"))).await;
    assert_eq!(status, StatusCode::OK);
    // The page itself holds no data: it loads, and asks for the token.
    let (status, _) = send(with_config(&t.db, guarded), get("/dashboard", None)).await;
    assert_eq!(status, StatusCode::OK);
});

backend_test!(async fn a_nul_in_a_filter_is_a_bad_request_naming_it(t) {
    failed_job(&t.db).await;
    // PostgreSQL text cannot hold NUL: refused at the door, on both backends alike.
    let (status, body) =
        send(app(&t.db, None), Request::get("/dashboard/api/jobs?queue=%00").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("queue") && body.contains("NUL"), "{body}");
});

backend_test!(async fn database_errors_are_logged_not_sent_to_clients(t) {
    failed_job(&t.db).await;
    // A jobs table gone from under the dashboard (PostgreSQL: the view of every job, which
    // a renamed table would follow): the database's message names it, and must not reach
    // the client.
    let rename = match t.backend() {
        oncommit::Backend::Postgres => "ALTER VIEW oncommit.all_jobs RENAME TO jobs_gone_missing",
        oncommit::Backend::Sqlite => "ALTER TABLE oncommit_jobs RENAME TO jobs_gone_missing",
    };
    let mut conn = t.db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => { sqlx::raw_sql(rename).execute(c).await.unwrap(); });
    drop(conn);
    let logs = oncommit_testing::LogCapture::start();
    let (status, body) = send(app(&t.db, None), Request::get("/dashboard/api/jobs").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body, r#"{"error":"internal error (the server logged it)"}"#);
    // What the client was spared is in the log.
    let logged = logs.text();
    assert!(logged.contains("request failed") && logged.contains("jobs"), "{logged}");
});

backend_test!(async fn an_empty_admin_token_opens_nothing(t) {
    let id = failed_job(&t.db).await;
    let empty = DashboardConfig { admin_token: Some(String::new()), reads_need_token: false };
    for auth in [None, Some("Bearer "), Some("Bearer")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, body) = post(with_config(&t.db, empty.clone()), &format!("/dashboard/api/jobs/{id}/retry"), &headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{auth:?}: {body}");
    }
    let guarded = DashboardConfig { admin_token: Some(String::new()), reads_need_token: true };
    let (status, _) = send(with_config(&t.db, guarded), Request::get("/dashboard/api/stats").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(t.db.jobs().get(id).await.unwrap().unwrap().state, oncommit::JobState::Cancelled, "nothing was retried");
});

#[test]
fn the_admin_token_never_shows_in_debug_output() {
    let config = DashboardConfig { admin_token: Some("hunter2".into()), reads_need_token: false };
    let shown = format!("{config:?} {config:#?}");
    assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
}

/// A POST with a JSON body and the given headers.
async fn post_json(app: Router, uri: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, String) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    send(app, request.body(Body::from(body.to_owned())).unwrap()).await
}

backend_test!(async fn queues_are_listed_and_steered_with_the_admin_token(t) {
    t.db.migrate().await.unwrap();
    t.db.enqueue_raw("report", &serde_json::json!({}), EnqueueOptions::new().queue("mail")).await.unwrap();
    let app = app(&t.db, Some("s3cret"));
    let queues = get_json(app.clone(), "/dashboard/api/queues").await;
    assert_eq!(queues["queues"][0]["name"], "mail", "{queues}");
    assert_eq!(queues["queues"][0]["paused"], false, "{queues}");

    let (status, _) = post(app.clone(), "/dashboard/api/queues/mail/pause", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!t.db.queues().get("mail").await.unwrap().paused, "nothing happened without the token");
    let auth = [("authorization", "Bearer s3cret")];
    let (status, body) = post(app.clone(), "/dashboard/api/queues/mail/pause", &auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""paused":true"#), "{body}");
    assert!(t.db.queues().get("mail").await.unwrap().paused);
    let (status, _) = post(app.clone(), "/dashboard/api/queues/mail/resume", &auth).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!t.db.queues().get("mail").await.unwrap().paused);

    let limit = "/dashboard/api/queues/mail/limit";
    let (status, body) = post_json(app.clone(), limit, &auth, r#"{"concurrency_limit": 4}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(t.db.queues().get("mail").await.unwrap().concurrency_limit, Some(4));
    let (status, body) = post_json(app.clone(), limit, &auth, r#"{"concurrency_limit": 0}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("pause the queue instead"), "{body}");
    let (status, _) = post_json(app.clone(), limit, &auth, r#"{"concurrency_limit": "many"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_json(app.clone(), limit, &auth, r#"{"concurrency_limit": null}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(t.db.queues().get("mail").await.unwrap().concurrency_limit, None);

    let rate = "/dashboard/api/queues/mail/rate-limit";
    let (status, body) =
        post_json(app.clone(), rate, &auth, r#"{"rate_limit": {"max_starts": 10, "period_ms": 1000}}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info = t.db.queues().get("mail").await.unwrap();
    assert_eq!(info.rate_limit, Some(oncommit::admin::RateLimit::new(10, std::time::Duration::from_secs(1))));
    let (status, _) = post_json(app.clone(), rate, &auth, r#"{"rate_limit": {"max_starts": 10, "period_ms": 0}}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(app, "/dashboard/api/queues/a,b/pause", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
});

backend_test!(async fn bulk_actions_count_then_act_with_the_admin_token(t) {
    for _ in 0..3 {
        failed_job(&t.db).await; // cancelled jobs of queue `mail`
    }
    t.db.enqueue_raw("report", &serde_json::json!({}), EnqueueOptions::new().queue("other")).await.unwrap();
    let app = app(&t.db, Some("s3cret"));
    let selection = r#"{"states": ["cancelled"], "queue": "mail"}"#;
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/count", &[], selection).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"matched":3}"#));
    let (status, _) = post_json(app.clone(), "/dashboard/api/jobs/bulk/retry", &[], selection).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "acting needs the token");
    let auth = [("authorization", "Bearer s3cret")];
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/retry", &auth, selection).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"retried":3}"#));
    let waiting = r#"{"states": ["available"], "since": "2000-01-01T00:00:00Z"}"#;
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/cancel", &auth, waiting).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"cancelled":4,"requested":0}"#));
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/delete", &auth, r#"{"states": ["cancelled"]}"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"deleted":4}"#));
    // A selection without states, a bad body, an unknown action: refused, nothing done.
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/delete", &auth, r#"{"states": []}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("no state given"), "{body}");
    let (status, _) = post_json(app.clone(), "/dashboard/api/jobs/bulk/delete", &auth, r#"{"states": ["dead"]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_json(app, "/dashboard/api/jobs/bulk/purge", &auth, r#"{"states": ["failed"]}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

backend_test!(async fn a_workflow_is_listed_with_its_steps_and_their_parents(t) {
    t.db.migrate().await.unwrap();
    let flow = oncommit::Workflow::named("report")
        .then(oncommit::Step::raw("fetch", serde_json::json!({})))
        .then_all([oncommit::Step::raw("render", serde_json::json!({ "part": 1 })), oncommit::Step::raw("render", serde_json::json!({ "part": 2 }))]);
    let ids = t.db.enqueue_workflow(flow).await.unwrap();
    let app = app(&t.db, None);
    let w = get_json(app.clone(), &format!("/dashboard/api/workflows/{}", ids.id)).await;
    let jobs = w["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3, "{w}");
    assert_eq!(jobs[0]["job"]["state"], "available");
    assert_eq!(jobs[1]["job"]["state"], "pending");
    assert_eq!(jobs[2]["parents"], serde_json::json!([ids.stages[0][0].0]));
    let job = get_json(app.clone(), &format!("/dashboard/api/jobs/{}", ids.stages[1][0])).await;
    assert_eq!(job["workflow_id"], ids.id.as_str());
    let (status, _) = send(app, Request::get("/dashboard/api/workflows/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

backend_test!(async fn the_jobs_view_filters_pages_and_refuses_bad_values(t) {
    let cancelled = failed_job(&t.db).await; // cancelled, queue `mail`, args with markup
    let mut mail = Vec::new();
    for i in 0..3 {
        let args = serde_json::json!({ "to": format!("user{i}@example.com") });
        mail.push(t.db.enqueue_raw("send", &args, EnqueueOptions::new().queue("mail").priority(2)).await.unwrap().0);
    }
    let other = t.db.enqueue_raw("charge", &serde_json::json!({}), EnqueueOptions::new().queue("billing")).await.unwrap();
    let app = app(&t.db, Some("s3cret"));
    let ids = |page: &Value| page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect::<Vec<_>>();

    // Two states, one queue, a page of two, then the next page from its cursor.
    let first = get_json(app.clone(), "/dashboard/api/jobs?state=available,cancelled&queue=mail&limit=2").await;
    assert_eq!(ids(&first), vec![mail[2], mail[1]], "{first}");
    let cursor = first["next_cursor"].as_i64().unwrap();
    let second = get_json(app.clone(), &format!("/dashboard/api/jobs?state=available,cancelled&queue=mail&limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), vec![mail[0], cancelled.0], "{second}");
    let oldest = get_json(app.clone(), "/dashboard/api/jobs?order=oldest&limit=1").await;
    assert_eq!(ids(&oldest), vec![cancelled.0]);
    let found = get_json(app.clone(), "/dashboard/api/jobs?search=USER1%40").await;
    assert_eq!(ids(&found), vec![mail[1]]);
    let found = get_json(app.clone(), &format!("/dashboard/api/jobs?search={}&task=charge", other.0)).await;
    assert_eq!(ids(&found), vec![other.0]);
    let found = get_json(app.clone(), "/dashboard/api/jobs?priority=2&since=2000-01-01T00:00:00Z").await;
    assert_eq!(ids(&found), vec![mail[2], mail[1], mail[0]]);
    assert_eq!(found["next_cursor"], Value::Null);

    for bad in ["priority=high", "since=yesterday", "order=sideways", "limit=0", "limit=5000", "cursor=x", "state=done", "priority=99999"] {
        let (status, body) = send(app.clone(), Request::get(format!("/dashboard/api/jobs?{bad}")).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body.contains("\"error\""), "{bad}: {body}");
    }

    // Ticked jobs, by id, for a bulk action.
    let auth = [("authorization", "Bearer s3cret")];
    let ticked = format!(r#"{{"ids": [{}, {}]}}"#, mail[0], other.0);
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/count", &[], &ticked).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"matched":2}"#));
    let (status, body) = post_json(app.clone(), "/dashboard/api/jobs/bulk/cancel", &auth, &ticked).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"cancelled":2,"requested":0}"#));
    assert_eq!(t.db.jobs().get(JobId(mail[1])).await.unwrap().unwrap().state, JobState::Available, "only the ticked ones");

    // The overview: counts (every state), queues, activity, workers.
    let overview = get_json(app.clone(), "/dashboard/api/overview").await;
    assert_eq!(overview["counts"]["queues"]["mail"]["available"], 2, "{overview}");
    assert_eq!(overview["counts"]["total"]["pending"], 0, "{overview}");
    assert!(overview["queues"].as_array().unwrap().iter().any(|q| q["name"] == "mail"), "{overview}");
    assert!(overview["activity"].is_array() && overview["workers"].is_array(), "{overview}");

    // A job's detail names its dependencies.
    let child = t.db.enqueue_raw("after", &serde_json::json!({}), EnqueueOptions::new().queue("mail").depends_on([JobId(mail[1])])).await.unwrap();
    let detail = get_json(app.clone(), &format!("/dashboard/api/jobs/{}", mail[1])).await;
    assert_eq!(detail["dependants"][0]["id"], child.0, "{detail}");
    assert_eq!(detail["dependants"][0]["state"], "pending", "{detail}");
    let detail = get_json(app, &format!("/dashboard/api/jobs/{child}")).await;
    assert_eq!(detail["parents"][0]["id"], mail[1], "{detail}");
});

// The OpenAPI document and the router agree: every route the router declares is in the
// document with its method, and every operation the document lists reaches a handler.
backend_test!(async fn the_openapi_document_describes_exactly_the_real_routes(t) {
    let id = failed_job(&t.db).await;
    let app = app(&t.db, Some("s3cret"));
    let doc = get_json(app.clone(), "/dashboard/api/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    // The routes as the router's source declares them.
    let source = include_str!("../src/dashboard/mod.rs");
    let mut declared = std::collections::BTreeSet::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().to_owned();
        let method = if line.contains("post(") { "POST" } else { "GET" };
        // The page itself, at each of its views' addresses, and its assets are not the API.
        if !line.contains("get(page)") && !path.starts_with("/page.") {
            declared.insert((method.to_owned(), path));
        }
    }
    assert_eq!(declared, documented, "routes and the OpenAPI document differ");
    // Each documented operation reaches its handler: axum's own 404 (no route) has no body,
    // and 405 means the method is wrong.
    for (method, path) in &documented {
        let uri = format!("/dashboard{path}")
            .replace("{id}", &id.0.to_string())
            .replace("{name}", "mail")
            .replace("{action}", "count");
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header("authorization", "Bearer s3cret")
            .header("content-type", "application/json")
            .body(Body::from(if method == "POST" { "{}" } else { "" }))
            .unwrap();
        let (status, body) = send(app.clone(), request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(!(status == StatusCode::NOT_FOUND && body.is_empty()), "{method} {uri}: no route");
    }
});

backend_test!(async fn a_fair_queue_shows_its_keys_with_the_most_jobs_waiting(t) {
    t.db.migrate().await.unwrap();
    for (tenant, n) in [("acme", 3), ("globex", 1)] {
        for _ in 0..n {
            let opts = EnqueueOptions::new().queue("exports").fair_key(tenant);
            t.db.enqueue_raw("report", &serde_json::json!({}), opts).await.unwrap();
        }
    }
    t.db.enqueue_raw("report", &serde_json::json!({}), EnqueueOptions::new().queue("plain")).await.unwrap();
    let api = get_json(app(&t.db, None), "/dashboard/api/queues").await;
    let queue = |name: &str| api["queues"].as_array().unwrap().iter().find(|q| q["name"] == name).cloned().unwrap();
    let exports = queue("exports");
    assert_eq!(exports["fair"], true, "{exports}");
    assert_eq!(
        exports["top_keys"],
        serde_json::json!([{ "key": "acme", "available": 3 }, { "key": "globex", "available": 1 }]),
        "{exports}"
    );
    let plain = queue("plain");
    assert_eq!((plain["fair"].clone(), plain["top_keys"].clone()), (Value::Bool(false), serde_json::json!([])));
    // The overview the page refreshes carries them too.
    let overview = get_json(app(&t.db, None), "/dashboard/api/overview").await;
    let listed = overview["queues"].as_array().unwrap().iter().find(|q| q["name"] == "exports").cloned().unwrap();
    assert_eq!(listed["top_keys"][0]["key"], "acme", "{overview}");
});
