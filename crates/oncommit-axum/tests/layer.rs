//! Per-request transactions, driven with tower's `oneshot` (no sockets), on both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Backend, Db, Isolation, Task, TaskContext, TaskError};
use oncommit_axum::{AtomicRequestsLayer, Error, RequestTx, isolation, non_atomic};
use oncommit_testing::{assert_enqueued, backend_test, capture_on_commit};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Serialize, Deserialize)]
struct Noted {
    name: String,
}

impl Task for Noted {
    const NAME: &'static str = "noted";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

#[derive(Clone)]
struct App {
    db: Db,
    /// What on_commit hooks saw.
    hooks: Arc<Mutex<Vec<String>>>,
}

async fn setup(db: &Db) -> App {
    db.migrate().await.unwrap();
    let mut conn = db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::raw_sql(
            "CREATE TABLE notes (name TEXT PRIMARY KEY); \
             CREATE TABLE parent (id BIGINT PRIMARY KEY); \
             CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(c).await.unwrap();
    });
    App { db: db.clone(), hooks: Arc::default() }
}

/// Inserts the body as a note, enqueues a job and registers a hook; then answers with the
/// status given in the `x-status` header (or panics, or fails retryably on attempt 1).
async fn note(
    State(app): State<App>,
    tx: RequestTx,
    headers: axum::http::HeaderMap,
    body: String,
) -> Result<axum::response::Response, Error> {
    let mut guard = tx.begin().await?;
    oncommit::with_conn!(guard.conn(), c => {
        sqlx::query("INSERT INTO notes (name) VALUES ($1)").bind(body.clone()).execute(c).await?;
    });
    guard.enqueue(Noted { name: body.clone() }).await?;
    let hooks = app.hooks.clone();
    let seen = body.clone();
    guard.on_commit(async move { hooks.lock().unwrap().push(seen) });
    drop(guard);
    match headers.get("x-behave").and_then(|v| v.to_str().ok()) {
        Some("panic") => panic!("the handler crashed"),
        Some("retryable-once") if tx.attempt() == 1 => Err(oncommit::Error::SerializationFailure {
            kind: oncommit::SerializationKind::WriteConflict,
            message: "simulated".into(),
        }
        .into()),
        Some("retryable-once") => Ok(format!("attempt {}", tx.attempt()).into_response()),
        Some("racy-enqueue") => {
            // The seed's race: an autocommit enqueue while the request's transaction is open.
            app.db.enqueue(Noted { name: "racy".into() }).await?;
            Ok(StatusCode::OK.into_response())
        }
        Some("deferred-violation") => {
            let mut guard = tx.begin().await?;
            oncommit::with_conn!(guard.conn(), c => {
                sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 42)").execute(c).await?;
            });
            Ok(StatusCode::OK.into_response())
        }
        Some(status) => Ok(StatusCode::from_u16(status.parse().unwrap()).unwrap().into_response()),
        None => Ok(format!("attempt {}", tx.attempt()).into_response()),
    }
}

/// A non-atomic route manages its own transactions; autocommit enqueue is fine there.
async fn manual(State(app): State<App>, body: String) -> Result<String, Error> {
    app.db.enqueue(Noted { name: body.clone() }).await?;
    Ok("done".into())
}

/// A non-atomic route with a scope of its own, written the natural way: the block borrows
/// the request's body and state, changes a local, retries, nests a savepoint and registers a
/// hook, and axum demands the handler's future be `Send` (this file compiles only if it is).
async fn scoped(State(app): State<App>, body: String) -> Result<String, Error> {
    let mut runs = 0;
    let retry = oncommit::TransactionRetry::default().base_delay(std::time::Duration::from_millis(1));
    let attempts = oncommit::atomic!(app.db.transaction().retry(retry), |tx| {
        runs += 1;
        oncommit::with_conn!(tx.conn(), c => {
            sqlx::query("INSERT INTO notes (name) VALUES ($1)").bind(body.as_str()).execute(c).await?;
        });
        oncommit::atomic!(tx, |sp| sp.enqueue(Noted { name: body.clone() }).await.map(drop)).await?;
        let (hooks, seen) = (app.hooks.clone(), body.clone());
        tx.on_commit(async move { hooks.lock().unwrap().push(seen) });
        if tx.attempt() == 1 {
            return Err(oncommit::Error::SerializationFailure {
                kind: oncommit::SerializationKind::WriteConflict,
                message: "simulated".into(),
            });
        }
        Ok(tx.attempt())
    })
    .await?;
    Ok(format!("{attempts} attempts, {runs} runs"))
}

async fn manual_asks_for_tx(_tx: RequestTx) -> &'static str {
    "unreachable"
}

async fn isolation_level(tx: RequestTx) -> Result<String, Error> {
    let mut guard = tx.begin().await?;
    Ok(sqlx::query_scalar("SHOW transaction_isolation").fetch_one(guard.postgres()?).await?)
}

fn router(app: &App, retries: u32) -> Router {
    Router::new()
        .route("/notes", post(note))
        .route("/manual", post(manual).route_layer(non_atomic()))
        .route("/scoped", post(scoped).route_layer(non_atomic()))
        .route("/manual-tx", post(manual_asks_for_tx).route_layer(non_atomic()))
        .route("/serializable", post(isolation_level).route_layer(isolation(Isolation::Serializable)))
        .with_state(app.clone())
        .layer(AtomicRequestsLayer::new(app.db.clone()).retry(retries))
}

async fn call(router: Router, uri: &str, behave: Option<&str>, body: &str) -> (StatusCode, String) {
    let mut request = Request::post(uri);
    if let Some(b) = behave {
        request = request.header("x-behave", b);
    }
    let response = router.oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn notes(db: &Db) -> Vec<String> {
    let mut conn = db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar("SELECT name FROM notes ORDER BY name").fetch_all(c).await.unwrap()
    })
}

async fn jobs(db: &Db) -> Vec<String> {
    let jobs = db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    let mut names: Vec<String> = jobs.iter().map(|j| j.args["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

backend_test!(async fn a_successful_request_commits_its_data_jobs_and_hooks(t) {
    let app = setup(&t.db).await;
    // The request is served in this task, so its commit's hooks can be captured.
    let ((status, body), hooks) = capture_on_commit(call(router(&app, 1), "/notes", None, "kept")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "attempt 1"));
    assert_eq!(notes(&t.db).await, ["kept"]);
    assert_eq!(jobs(&t.db).await, ["kept"]);
    assert_enqueued::<Noted>(&t.db, |n| n.name == "kept").await;
    assert_eq!(hooks.len(), 1);
    assert!(app.hooks.lock().unwrap().is_empty(), "a captured hook ran");
    hooks.run().await.unwrap();
    assert_eq!(*app.hooks.lock().unwrap(), ["kept"]);
});

backend_test!(async fn a_failed_request_leaves_nothing_behind(t) {
    let app = setup(&t.db).await;
    for (behave, expected) in [("422", StatusCode::UNPROCESSABLE_ENTITY), ("500", StatusCode::INTERNAL_SERVER_ERROR)] {
        let (status, _) = call(router(&app, 1), "/notes", Some(behave), behave).await;
        assert_eq!(status, expected);
    }
    let (status, body) = call(router(&app, 1), "/notes", Some("panic"), "panicked").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("rolled back"), "{body}");
    assert!(notes(&t.db).await.is_empty());
    assert!(jobs(&t.db).await.is_empty(), "a rolled-back request's jobs never exist");
    assert!(app.hooks.lock().unwrap().is_empty(), "a rolled-back request's hooks never run");
});

backend_test!(async fn a_failed_commit_is_an_error_response_not_a_silent_success(t) {
    let app = setup(&t.db).await;
    let (status, body) = call(router(&app, 1), "/notes", Some("deferred-violation"), "doomed").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("error"), "{body}");
    assert!(notes(&t.db).await.is_empty());
    assert!(app.hooks.lock().unwrap().is_empty());
});

backend_test!(async fn an_autocommit_enqueue_inside_the_request_is_refused(t) {
    let app = setup(&t.db).await;
    let (status, body) = call(router(&app, 1), "/notes", Some("racy-enqueue"), "request").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("use tx.enqueue"), "{body}");
    assert!(jobs(&t.db).await.is_empty());
});

backend_test!(async fn non_atomic_routes_opt_out(t) {
    let app = setup(&t.db).await;
    let (status, body) = call(router(&app, 1), "/manual", None, "manual").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    assert_eq!(jobs(&t.db).await, ["manual"]);
    let (status, body) = call(router(&app, 1), "/manual-tx", None, "").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("non_atomic"), "{body}");
});

backend_test!(async fn a_handler_runs_its_own_scope_with_borrowed_captures(t) {
    let app = setup(&t.db).await;
    let (status, body) = call(router(&app, 1), "/scoped", None, "scoped").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "2 attempts, 2 runs"));
    // Only the second attempt's work exists: the first rolled back with its job and hook.
    assert_eq!(notes(&t.db).await, ["scoped"]);
    assert_eq!(jobs(&t.db).await, ["scoped"]);
    assert_eq!(*app.hooks.lock().unwrap(), ["scoped"]);
});

backend_test!(async fn a_retryable_failure_reruns_the_whole_request_with_its_body(t) {
    let app = setup(&t.db).await;
    // Without re-runs the client gets an honest 409.
    let (status, _) = call(router(&app, 1), "/notes", Some("retryable-once"), "no rerun").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(notes(&t.db).await.is_empty());
    // With them, attempt 2 (same body) commits; attempt 1's work is gone.
    let (status, body) = call(router(&app, 3), "/notes", Some("retryable-once"), "rerun").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "attempt 2"));
    assert_eq!(notes(&t.db).await, ["rerun"]);
    assert_eq!(jobs(&t.db).await, ["rerun"]);
    assert_eq!(*app.hooks.lock().unwrap(), ["rerun"]);
});

backend_test!(async fn routes_choose_their_isolation_level(t) {
    if t.backend() == Backend::Sqlite {
        return; // SQLite is always serializable: there is no level to show.
    }
    let app = setup(&t.db).await;
    let (status, body) = call(router(&app, 1), "/serializable", None, "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "serializable"));
});

/// Two SERIALIZABLE requests that each read the notes and then write one: SSI aborts one.
async fn count_then_note(
    State(barrier): State<Arc<tokio::sync::Barrier>>,
    tx: RequestTx,
    body: String,
) -> Result<String, Error> {
    let mut guard = tx.begin().await?;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM notes").fetch_one(guard.postgres()?).await?;
    drop(guard);
    if tx.attempt() == 1 {
        barrier.wait().await; // both have read before either writes
    }
    let mut guard = tx.begin().await?;
    sqlx::query("INSERT INTO notes (name) VALUES ($1)")
        .bind(format!("{body} saw {seen}"))
        .execute(guard.postgres()?)
        .await?;
    Ok(format!("attempt {}", tx.attempt()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_serialization_failure_reruns_the_request() {
    let t = oncommit_testing::TestDb::postgres().await;
    setup(&t.db).await;
    for (retries, expect_conflict) in [(1, true), (3, false)] {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let app = Router::new()
            .route("/note", post(count_then_note).route_layer(isolation(Isolation::Serializable)))
            .with_state(barrier)
            .layer(AtomicRequestsLayer::new(t.db.clone()).retry(retries));
        let (a, b) = tokio::join!(call(app.clone(), "/note", None, "a"), call(app, "/note", None, "b"));
        let mut statuses = [a.0, b.0];
        statuses.sort();
        if expect_conflict {
            assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{a:?} {b:?}");
        } else {
            assert_eq!(statuses, [StatusCode::OK, StatusCode::OK], "{a:?} {b:?}");
            // One committed at once; the other was re-run (more than once if its re-run
            // again overlapped the first's commit, as SSI may rightly decide).
            let mut bodies = [a.1, b.1];
            bodies.sort();
            assert_eq!(bodies[0], "attempt 1");
            assert!(["attempt 2", "attempt 3"].contains(&bodies[1].as_str()), "{bodies:?}");
        }
        let mut conn = t.db.acquire().await.unwrap();
        sqlx::query("DELETE FROM notes").execute(conn.conn().postgres().unwrap()).await.unwrap();
    }
    t.finish().await;
}

backend_test!(async fn bodies_are_buffered_only_for_re_runs(t) {
    let app = setup(&t.db).await;
    let big = "x".repeat(2 << 20);
    let echo_len = |body: String| async move { body.len().to_string() };
    let router = |retries| {
        Router::new()
            .route("/echo", post(echo_len))
            .layer(AtomicRequestsLayer::new(app.db.clone()).retry(retries).max_body(1 << 20))
    };
    // Without re-runs the body streams through, whatever its size.
    let (status, body) = call(router(1), "/echo", None, &big).await;
    assert_eq!((status, body), (StatusCode::OK, (2 << 20).to_string()));
    // With them it is buffered for replay, up to the limit.
    let (status, _) = call(router(3), "/echo", None, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = call(router(3), "/echo", None, "small").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "5"));
});
