//! What oncommit needs of each database, behind one contract, one module per database.
//!
//! - [`contract`]: the statements oncommit sends, declared once with what it does, a
//!   trait per concept ([`Jobs`](contract::Jobs), [`UniqueJobs`](contract::UniqueJobs),
//!   [`Queues`](contract::Queues), [`Dependencies`](contract::Dependencies),
//!   [`SelectedJobs`](contract::SelectedJobs), [`Fleet`](contract::Fleet)). A new database
//!   implements them, and passes the conformance suite (`conformance`).
//! - `postgres`: connecting (host lists, server roles, failover, pooler mode) and the SQL,
//!   with `FOR UPDATE SKIP LOCKED` and NOTIFY.
//! - `sqlite`: connecting (file, WAL, busy timeout) and the SQL, one statement each under
//!   the database's single writer.
//! - `sql`: fragments of SQL several statements share; `selection`: the `WHERE` clause of a
//!   job selection, shared by listings and bulk actions, and its params type.
//!
//! A statement is chosen by the connection's database at run time ([`on_driver!`], as
//! sqlx's `Any` chooses): the only `match` on the backend that statements need.
//!
//! The algorithms that take several statements (the controlled claim, the unique insert,
//! a dependant's insert, bulk actions, the sweep of pending jobs) are written once above
//! the contract, in `queries`, over these statements; [`DriverTx`] gives them a
//! transaction on either database (SQLite's `BEGIN IMMEDIATE` where a write lock is the
//! turn).

#[macro_use]
mod sql;
#[macro_use]
pub(crate) mod selection;

/// Runs the contract's statement `$method` on `$conn` (a [`Conn`](crate::Conn)), with the
/// database's own implementation: `on_driver!(conn, job_get(id))`.
macro_rules! on_driver {
    ($conn:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        #[allow(unused_imports)]
        use $crate::driver::contract::prelude::*;
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::Conn::Postgres(c) => $crate::driver::PostgresDriver::$method(c, $($arg),*).await,
            #[cfg(feature = "sqlite")]
            $crate::Conn::Sqlite(c) => $crate::driver::SqliteDriver::$method(c, $($arg),*).await,
        }
    }};
}

/// Reads the dialect's `$item` (a constant or a function of the contract's `Dialect`) for
/// `$backend`: `on_backend!(db.backend(), const NOTIFIES)`, `on_backend!(b, begin_sql(&s))`.
macro_rules! on_backend {
    ($backend:expr, const $name:ident) => {{
        #[allow(unused_imports)]
        use $crate::driver::contract::prelude::*;
        match $backend {
            #[cfg(feature = "postgres")]
            $crate::Backend::Postgres => $crate::driver::PostgresDriver::$name,
            #[cfg(feature = "sqlite")]
            $crate::Backend::Sqlite => $crate::driver::SqliteDriver::$name,
        }
    }};
    ($backend:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        #[allow(unused_imports)]
        use $crate::driver::contract::prelude::*;
        match $backend {
            #[cfg(feature = "postgres")]
            $crate::Backend::Postgres => $crate::driver::PostgresDriver::$method($($arg),*),
            #[cfg(feature = "sqlite")]
            $crate::Backend::Sqlite => $crate::driver::SqliteDriver::$method($($arg),*),
        }
    }};
}

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("oncommit needs a database: enable the `postgres` or the `sqlite` feature (both are on by default)");

// The suite runs every driver: it is built with both.
#[cfg(all(test, feature = "postgres", feature = "sqlite"))]
mod conformance;
pub(crate) mod conn;
pub(crate) mod contract;
pub(crate) mod migrations;
pub(crate) mod options;
pub(crate) mod pool;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod rows;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use std::time::Duration;

use crate::conn::Conn;
use crate::error::Result;

#[cfg(feature = "postgres")]
pub(crate) use postgres::PostgresDriver;
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::SqliteDriver;

#[cfg(feature = "postgres")]
/// The PostgreSQL channel that wakes workers: the payload is the queue with new work.
pub(crate) const JOBS_CHANNEL: &str = "oncommit_jobs";
#[cfg(feature = "postgres")]
/// The PostgreSQL channel that tells workers to stop a running job: the payload is its id.
pub(crate) const CANCEL_CHANNEL: &str = "oncommit_cancel";

/// A transaction (a savepoint when the connection is in one already) on a connection of
/// either database, rolled back when dropped uncommitted: what the algorithms above the
/// contract run their several statements in.
pub(crate) enum DriverTx<'c> {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'c, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
}

impl<'c> DriverTx<'c> {
    /// Begins one on `conn`.
    pub(crate) async fn begin(conn: Conn<'c>) -> Result<Self> {
        Ok(match conn {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => DriverTx::Postgres(sqlx::Connection::begin(c).await?),
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => DriverTx::Sqlite(sqlx::Connection::begin(c).await?),
        })
    }

    /// Begins one that is a turn among writers: SQLite takes its one write lock at once
    /// (`BEGIN IMMEDIATE`), so the writers of other processes wait for this commit instead
    /// of failing to upgrade a read lock; PostgreSQL's turns are row locks, taken by the
    /// statements (`FOR UPDATE`). On SQLite `conn` must not be in a transaction.
    pub(crate) async fn begin_writing(conn: Conn<'c>) -> Result<Self> {
        Ok(match conn {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => DriverTx::Postgres(sqlx::Connection::begin(c).await?),
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => DriverTx::Sqlite(sqlx::Connection::begin_with(c, "BEGIN IMMEDIATE").await?),
        })
    }

    /// The transaction's connection, for the contract's statements.
    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            DriverTx::Postgres(tx) => Conn::Postgres(tx),
            #[cfg(feature = "sqlite")]
            DriverTx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    /// Commits it (releases the savepoint).
    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            DriverTx::Postgres(tx) => tx.commit().await?,
            #[cfg(feature = "sqlite")]
            DriverTx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

#[cfg(feature = "postgres")]
/// A duration as PostgreSQL's `make_interval(secs => …)` takes it.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A duration as SQLite's epoch-millisecond times add it.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A schema description's sections as one text: `-- section`, then its lines, trailing
/// blanks trimmed (so the checked-in snapshot diffs cleanly).
pub(crate) fn schema_text(sections: Vec<(&str, Vec<String>)>) -> String {
    let mut text = String::new();
    for (section, lines) in sections {
        text.push_str("-- ");
        text.push_str(section);
        text.push('\n');
        for line in lines {
            for part in line.lines() {
                text.push_str(part.trim_end());
                text.push('\n');
            }
        }
    }
    text
}
