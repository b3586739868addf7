//! The web application's state. Besides the requests' pool, two side pools keep a request
//! from ever waiting for a second connection of the pool it already holds one of (under a
//! burst, every request would hold one and wait for another: the pool, and the server,
//! would freeze):
//!
//! - the naive view's *broker*, the connection outside the view's transaction that seed 000
//!   is about;
//! - the scenarios' pool: the seed-004 demos need two sessions at once. They run one at a
//!   time, each within a deadline, and on SQLite on a scratch file beside the application's
//!   database, so a demo's held write lock never stops the application's writes.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use oncommit::{Backend, Db, DbOptions};
use oncommit_axum::Error;
use tokio::sync::{Mutex, MutexGuard, OnceCell};

/// How long a demo request waits for the one before it to finish.
const DEMO_TURN_WAIT: Duration = Duration::from_secs(10);

/// The longest a demo may run; past it the request fails and its sessions are rolled back.
pub(crate) const DEMO_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct App {
    /// The requests' pool (their transactions).
    pub(crate) db: Db,
    /// The naive view's dispatch and its look at the job, outside the request's transaction.
    pub(crate) broker: Db,
    demos: Arc<Demos>,
}

struct Demos {
    /// The scenarios' database, made at the first demo.
    db: OnceCell<Db>,
    /// One demo at a time.
    turn: Mutex<()>,
}

impl App {
    pub(crate) fn new(db: Db) -> App {
        let side = |max_connections| DbOptions {
            max_connections,
            acquire_timeout: Duration::from_secs(5),
            ..DbOptions::default()
        };
        App {
            broker: db.another_pool(side(4)),
            db,
            demos: Arc::new(Demos { db: OnceCell::new(), turn: Mutex::new(()) }),
        }
    }

    /// Waits (briefly) for the demos' turn; returns it with the scenarios' database.
    pub(crate) async fn demo_turn(&self) -> Result<(MutexGuard<'_, ()>, Db), Error> {
        let turn = tokio::time::timeout(DEMO_TURN_WAIT, self.demos.turn.lock()).await.map_err(|_| {
            Error::new(StatusCode::SERVICE_UNAVAILABLE, "another demo is running; try again in a moment")
        })?;
        let db = self.demos.db.get_or_try_init(|| scenarios_db(&self.db)).await?;
        Ok((turn, db.clone()))
    }
}

/// PostgreSQL: a pool of its own on the same database (the demos lock rows of `socks`
/// only). SQLite: a scratch file beside the application's, since SQLite's write lock is the
/// whole file's.
async fn scenarios_db(db: &Db) -> oncommit::Result<Db> {
    match db.backend() {
        Backend::Postgres => Ok(db.another_pool(DbOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            ..DbOptions::default()
        })),
        Backend::Sqlite => {
            let file = db.sqlite_pool().map(|p| p.connect_options().get_filename().to_path_buf()).unwrap_or_default();
            let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "oncommit".into());
            let scratch = file.with_file_name(format!("{stem}-demos.db"));
            Db::connect(&format!("sqlite://{}", scratch.display())).await
        }
    }
}
