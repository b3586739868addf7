//! The seed application over HTTP, as `oncommit serve` runs it.
//!
//! - `POST /data/naive`, `/data/on_commit`, `/data/transactional` (`?name=…`): seed 000's
//!   view — create a `data` row in the request's transaction and hand its id to `do_stuff`
//!   the naive way (before the commit), in a commit hook, or transactionally.
//! - `GET /data/{pk}`: one row.
//! - `GET /demo/select-for-update?hold_ms=N`, `/demo/deadlock`, `/demo/isolation`,
//!   `/demo/race?iterations=N`: the seeds' scenarios, as JSON.
//! - `/dashboard`: oncommit's dashboard.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use oncommit::{Backend, Db, JobId};
use oncommit_axum::dashboard::{self, DashboardConfig};
use oncommit_axum::{AtomicRequestsLayer, Error, RequestTx, non_atomic};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, DEMO_DEADLINE};
use crate::tasks::{self, DoStuff, MISSING_ROW};
use crate::{deadlock, isolation, race, select_for_update};

/// How long the view keeps working after dispatching, before its transaction commits.
const VIEW_WORK: Duration = Duration::from_millis(20);

/// The application's router: the seed's endpoints in per-request transactions (re-run up
/// to 3 times on serialization failures and deadlocks), and the dashboard.
pub fn router(db: Db, dashboard: DashboardConfig) -> Router {
    let app = Router::new()
        .route("/", get(index))
        .route("/data/naive", post(create_naive))
        .route("/data/on_commit", post(create_on_commit))
        .route("/data/transactional", post(create_transactional))
        .route("/data/{pk}", get(read))
        .route("/demo/select-for-update", get(demo_select_for_update).route_layer(non_atomic()))
        .route("/demo/deadlock", get(demo_deadlock).route_layer(non_atomic()))
        .route("/demo/isolation", get(demo_isolation).route_layer(non_atomic()))
        .route("/demo/race", get(demo_race).route_layer(non_atomic()))
        .with_state(App::new(db.clone()))
        .layer(AtomicRequestsLayer::new(db.clone()).retry(3));
    app.merge(dashboard::metrics_router(db.clone(), dashboard.clone()))
        .nest("/dashboard", dashboard::router(db, dashboard))
        .route("/dashboard/", get(|| async { axum::response::Redirect::permanent("/dashboard") }))
}

async fn index() -> Json<Value> {
    Json(json!({
        "create": ["POST /data/naive?name=…", "POST /data/on_commit?name=…", "POST /data/transactional?name=…"],
        "read": "GET /data/{pk}",
        "demos": ["GET /demo/select-for-update?hold_ms=N", "GET /demo/deadlock", "GET /demo/isolation", "GET /demo/race?iterations=N"],
        "dashboard": "/dashboard",
        "metrics": "/metrics",
    }))
}

#[derive(Deserialize)]
struct Create {
    name: Option<String>,
}

/// `Data.objects.create(name=…)` in the request's transaction.
async fn insert(tx: &RequestTx, name: Option<String>) -> Result<i64, Error> {
    let name = name.unwrap_or_else(|| "Dummy".to_owned());
    if name.chars().count() > 50 {
        return Err(Error::new(StatusCode::UNPROCESSABLE_ENTITY, "name is longer than 50 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::new(StatusCode::UNPROCESSABLE_ENTITY, "name must not contain control characters"));
    }
    let mut guard = tx.begin().await?;
    Ok(oncommit::with_conn!(guard.conn(), c => {
        sqlx::query_scalar("INSERT INTO data (name) VALUES ($1) RETURNING id").bind(name).fetch_one(c).await?
    }))
}

/// The seed's bug on purpose: the task is handed over before the view's transaction
/// commits. On PostgreSQL through another connection in autocommit (the broker); on SQLite,
/// where that connection would wait for the view's write lock, by an in-process hand-off.
/// Reports whether the task's first attempt found the row missing. Everything outside the
/// view's transaction goes through the broker's own pool (see `app`).
async fn create_naive(State(app): State<App>, tx: RequestTx, Query(q): Query<Create>) -> Result<Json<Value>, Error> {
    let pk = insert(&tx, q.name).await?;
    let db = app.broker;
    match db.backend() {
        Backend::Postgres => {
            let pool = db.pg_pool().ok_or_else(|| oncommit::Error::app("the broker is PostgreSQL"))?;
            let id: i64 = sqlx::query_scalar("SELECT oncommit.enqueue('do_stuff', $1::jsonb)")
                .bind(json!({ "pk": pk }).to_string())
                .fetch_one(pool)
                .await?;
            tokio::time::sleep(VIEW_WORK).await;
            let missing = first_attempt_missed(&db, JobId(id)).await?;
            Ok(Json(json!({ "pk": pk, "dispatch": "naive", "job": id, "task_saw_missing_row": missing })))
        }
        Backend::Sqlite => {
            let reader = db.clone();
            let handed_off = tokio::spawn(async move { tasks::do_stuff(&reader, pk).await });
            tokio::time::sleep(VIEW_WORK).await;
            let missing = handed_off.await.map_err(oncommit::Error::app)?.is_err();
            Ok(Json(json!({ "pk": pk, "dispatch": "naive", "task_saw_missing_row": missing })))
        }
    }
}

/// Waits (briefly) for the first attempt of a naive job, and says whether it found no row.
async fn first_attempt_missed(db: &Db, id: JobId) -> Result<Option<bool>, Error> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Some(job) = db.jobs().get(id).await? {
            if let Some(first) = job.errors.iter().find(|e| e.attempt == 1) {
                return Ok(Some(first.error.contains(MISSING_ROW)));
            }
            if job.state.is_finished() {
                return Ok(Some(false));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(None) // no worker picked it up in time (`serve --no-worker`?)
}

/// The dispatch waits for the commit: an `on_commit` hook enqueues the job.
async fn create_on_commit(
    State(App { db, .. }): State<App>,
    tx: RequestTx,
    Query(q): Query<Create>,
) -> Result<Json<Value>, Error> {
    let pk = insert(&tx, q.name).await?;
    tx.begin().await?.on_commit(async move { db.enqueue(DoStuff { pk }).await.map(drop) });
    tokio::time::sleep(VIEW_WORK).await;
    Ok(Json(json!({ "pk": pk, "dispatch": "on_commit" })))
}

/// The job row commits with the data.
async fn create_transactional(tx: RequestTx, Query(q): Query<Create>) -> Result<Json<Value>, Error> {
    let pk = insert(&tx, q.name).await?;
    let job = tx.begin().await?.enqueue(DoStuff { pk }).await?;
    tokio::time::sleep(VIEW_WORK).await;
    Ok(Json(json!({ "pk": pk, "dispatch": "transactional", "job": job })))
}

async fn read(tx: RequestTx, Path(pk): Path<i64>) -> Result<Json<Value>, Error> {
    let mut guard = tx.begin().await?;
    let row: Option<(i64, String)> = oncommit::with_conn!(guard.conn(), c => {
        sqlx::query_as("SELECT id, name FROM data WHERE id = $1").bind(pk).fetch_optional(c).await?
    });
    let (id, name) = row.ok_or_else(|| Error::new(StatusCode::NOT_FOUND, format!("no data row {pk}")))?;
    Ok(Json(json!({ "id": id, "name": name })))
}

#[derive(Deserialize)]
struct Hold {
    hold_ms: Option<u64>,
}

async fn demo_select_for_update(State(app): State<App>, Query(q): Query<Hold>) -> Result<Json<Value>, Error> {
    let hold = Duration::from_millis(q.hold_ms.unwrap_or(300).min(10_000));
    let (_turn, db) = app.demo_turn().await?;
    Ok(Json(json!(within_deadline(select_for_update::run(&db, hold)).await?)))
}

async fn demo_deadlock(State(app): State<App>) -> Result<Json<Value>, Error> {
    let (_turn, db) = app.demo_turn().await?;
    Ok(Json(json!(within_deadline(deadlock::run(&db)).await?)))
}

async fn demo_isolation(State(app): State<App>) -> Result<Json<Value>, Error> {
    let (_turn, db) = app.demo_turn().await?;
    Ok(Json(json!(within_deadline(isolation::run(&db)).await?)))
}

#[derive(Deserialize)]
struct Iterations {
    iterations: Option<usize>,
}

async fn demo_race(State(app): State<App>, Query(q): Query<Iterations>) -> Result<Json<Value>, Error> {
    let iterations = q.iterations.unwrap_or(10).min(50);
    let (_turn, db) = app.demo_turn().await?;
    Ok(Json(json!(within_deadline(race::run(&db, iterations, VIEW_WORK)).await?)))
}

/// Runs a scenario within the demos' deadline; past it, the scenario is dropped (its
/// sessions roll back) and the request fails.
async fn within_deadline<T>(scenario: impl Future<Output = oncommit::Result<T>>) -> Result<T, Error> {
    match tokio::time::timeout(DEMO_DEADLINE, scenario).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            Err(Error::new(StatusCode::SERVICE_UNAVAILABLE, format!("the demo took longer than {DEMO_DEADLINE:?}")))
        }
    }
}
