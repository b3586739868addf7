//! An existing axum + sqlx service — a `users` table and `POST /users` — that adds oncommit
//! in the steps of `docs/getting-started.md`: its own sqlx pool handed to [`Db::from_pool`],
//! oncommit's migrations beside its own, the per-request transaction layer, one task
//! enqueued in the request's transaction, and a worker in the same process or as a separate
//! one.
//!
//! ```text
//! DATABASE_URL=sqlite://app.db getting-started serve 127.0.0.1:3000   # web + worker
//! DATABASE_URL=sqlite://app.db getting-started serve 127.0.0.1:3000 --no-worker
//! DATABASE_URL=sqlite://app.db getting-started worker                 # a worker alone
//! ```

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use oncommit::migrate::{Migration, MigrationSet};
use oncommit::{Db, Shutdown, Task, TaskContext, TaskError, Worker};
use oncommit_axum::{AtomicRequestsLayer, RequestTx};
use serde::{Deserialize, Serialize};

/// The service's own tables, recorded under its own name beside oncommit's.
static APP: MigrationSet = MigrationSet {
    name: "getting-started",
    postgres: &[Migration {
        version: 1,
        name: "create_users",
        sql: "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, email TEXT NOT NULL, welcomed BOOLEAN NOT NULL DEFAULT false)",
    }],
    sqlite: &[Migration {
        version: 1,
        name: "create_users",
        sql: "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, welcomed BOOLEAN NOT NULL DEFAULT 0)",
    }],
};

/// Step 4: a task. It runs after the transaction that enqueued it commits, so the user it
/// names is there to be found.
#[derive(Debug, Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
}

impl Task for SendWelcome {
    const NAME: &'static str = "send_welcome";

    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        // A real service sends mail here; this one records that it did.
        let mut conn = cx.db().acquire().await?;
        let done = oncommit::with_conn!(conn.conn(), c => {
            sqlx::query("UPDATE users SET welcomed = true WHERE id = $1")
                .bind(self.user_id)
                .execute(c)
                .await
                .map_err(oncommit::Error::from)?
                .rows_affected()
        });
        if done == 0 {
            return Err(TaskError::fail(format!("no user {}", self.user_id)));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
}

#[derive(Serialize)]
struct User {
    id: i64,
    email: String,
    welcomed: bool,
}

/// Step 3: the handler runs in the request's transaction; the user row and its job commit
/// together, or neither does.
async fn create_user(tx: RequestTx, Json(new): Json<NewUser>) -> Result<Json<User>, oncommit_axum::Error> {
    let mut tx = tx.begin().await?;
    let id: i64 = oncommit::with_conn!(tx.conn(), c => {
        sqlx::query_scalar("INSERT INTO users (email) VALUES ($1) RETURNING id")
            .bind(&new.email)
            .fetch_one(c)
            .await
            .map_err(oncommit::Error::from)?
    });
    tx.enqueue(SendWelcome { user_id: id }).await?;
    Ok(Json(User { id, email: new.email, welcomed: false }))
}

/// A user, or 404.
async fn get_user(
    State(db): State<Db>,
    Path(id): Path<i64>,
) -> Result<Result<Json<User>, StatusCode>, oncommit_axum::Error> {
    let mut conn = db.acquire().await?;
    let row: Option<(String, bool)> = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_as("SELECT email, welcomed FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await
            .map_err(oncommit::Error::from)?
    });
    Ok(row.map(|(email, welcomed)| Json(User { id, email, welcomed })).ok_or(StatusCode::NOT_FOUND))
}

/// Step 1: the service's own pool, as it had it, handed to oncommit.
async fn connect(url: &str) -> anyhow::Result<Db> {
    let db = if url.starts_with("sqlite:") {
        // WAL and a busy timeout: oncommit's workers write while requests do.
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(oncommit::limits::SQLITE_BUSY_TIMEOUT);
        Db::from_pool(sqlx::SqlitePool::connect_with(options).await?)
    } else {
        Db::from_pool(sqlx::PgPool::connect(url).await?)
    };
    // Step 2: oncommit's migrations, then the service's own.
    db.migrate().await?;
    db.migrate_set(&APP).await?;
    Ok(db)
}

/// Step 5: a worker, registered with the service's tasks.
fn worker(db: &Db) -> Worker {
    Worker::new(db.clone()).register::<SendWelcome>().queue("default", 4)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://getting-started.db".to_owned());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let db = connect(&url).await?;
        match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["worker"] => worker(&db).run(Shutdown::on_signal()).await?,
            ["serve", addr, rest @ ..] => {
                let app = Router::new()
                    .route("/users", post(create_user))
                    .route("/users/{id}", get(get_user))
                    .layer(AtomicRequestsLayer::new(db.clone()))
                    .with_state(db.clone());
                let listener = tokio::net::TcpListener::bind(addr).await?;
                #[allow(clippy::print_stdout)] // how a caller learns the port it asked the OS for
                {
                    println!("listening on http://{}", listener.local_addr()?);
                }
                let shutdown = Shutdown::on_signal();
                let mut stop = shutdown.clone();
                let web = axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await });
                match rest {
                    ["--no-worker"] => web.await?,
                    [] => {
                        let (web, work) = tokio::join!(web, worker(&db).run(shutdown));
                        web?;
                        work?;
                    }
                    _ => anyhow::bail!("usage: getting-started serve ADDR [--no-worker]"),
                }
            }
            _ => anyhow::bail!("usage: getting-started serve ADDR [--no-worker] | getting-started worker"),
        }
        Ok(())
    })
}
