//! What oncommit needs of each database, behind one contract, one module per database.
//!
//! - [`contract`]: the statements oncommit sends, declared once with what it does, a
//!   trait per concept ([`Jobs`](contract::Jobs), [`UniqueJobs`](contract::UniqueJobs),
//!   [`Fleet`](contract::Fleet)). A new database implements them.
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
//! Still above the contract, to move here next: the multi-statement algorithms written
//! once per database in `queries` (controlled claims and queue settings, per-key rate
//! windows, dependency settlement, bulk changes), which send their SQL themselves. The
//! unique insert shows the shape they take: the algorithm once in `queries`, its
//! statements here.

#[macro_use]
mod sql;
#[macro_use]
pub(crate) mod selection;

/// Runs the contract's statement `$method` on `$conn` (a [`Conn`](crate::Conn)), with the
/// database's own implementation: `on_driver!(conn, job_get(id))`.
macro_rules! on_driver {
    ($conn:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        #[allow(unused_imports)]
        use $crate::driver::contract::{Fleet as _, Jobs as _, UniqueJobs as _};
        match $conn {
            $crate::Conn::Postgres(c) => $crate::driver::PostgresDriver::$method(c, $($arg),*).await,
            $crate::Conn::Sqlite(c) => $crate::driver::SqliteDriver::$method(c, $($arg),*).await,
        }
    }};
}

#[cfg(test)]
mod conformance;
pub(crate) mod contract;
pub(crate) mod postgres;
pub(crate) mod rows;
pub(crate) mod sqlite;

use std::time::Duration;

pub(crate) use postgres::PostgresDriver;
pub(crate) use sqlite::SqliteDriver;

/// The PostgreSQL channel that wakes workers: the payload is the queue with new work.
pub(crate) const JOBS_CHANNEL: &str = "oncommit_jobs";
/// The PostgreSQL channel that tells workers to stop a running job: the payload is its id.
pub(crate) const CANCEL_CHANNEL: &str = "oncommit_cancel";

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
#[cfg_attr(not(test), allow(dead_code, reason = "read by the suite's snapshot test only, so far"))]
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
