//! SQLite: one file, WAL, a busy timeout, and the pragmas oncommit's triggers need; and
//! the SQL (`jobs`, `fleet`).

mod dependencies;
mod diagnostics;
mod dialect;
mod fleet;
mod history;
#[macro_use]
mod jobs;
mod queues;
#[cfg_attr(not(test), allow(dead_code, reason = "read by the suite's snapshot test only, so far"))]
mod schema;
mod selected;
mod unique;

use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use crate::driver::options::{Backend, SQLITE_BUSY_TIMEOUT};
use crate::error::{Error, Result, Target};

#[cfg(test)]
pub(crate) use jobs::{QUEUE_LAG, WINDOWS};

/// The SQLite driver: its statements are the implementations of the contract's traits
/// (`jobs`, `fleet`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SqliteDriver;

impl crate::driver::contract::Driver for SqliteDriver {
    type Conn = sqlx::sqlite::SqliteConnection;
}

/// The connect options for `url`, checked by opening (and creating, if missing) the file.
pub(crate) async fn connect(url: &str, invalid: impl Fn(String) -> Error) -> Result<SqliteConnectOptions> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        // Each pooled connection would get its own empty database: migrations on one,
        // tables missing on the next. A file in a temporary directory does the job.
        return Err(invalid("in-memory SQLite is not supported: each pooled connection would see its own empty database; use a file (sqlite://path)".into()));
    }
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| invalid(e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true)
        // A cancelled dependant settles its own dependants through the same trigger
        // (migration 009); the leader's sweep catches what a pool without it leaves pending.
        .pragma("recursive_triggers", "ON");
    if opts.get_filename().as_os_str().is_empty() {
        // `sqlite://`, `sqlite:` and `sqlite://?mode=rwc` name no file: SQLite gives each
        // connection its own temporary database, so writes vanish.
        return Err(invalid(
            "no file named: each pooled connection would get its own temporary database; use sqlite://path".into(),
        ));
    }
    let file = opts.get_filename().display().to_string();
    let target = Target { backend: Backend::Sqlite, target: &file };
    let conn = opts.connect().await.map_err(|e| target.connect_error(e))?;
    sqlx::Connection::close(conn).await.ok();
    Ok(opts)
}
