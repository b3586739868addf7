//! Connections handed to user code, for either backend.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Postgres, Sqlite};

use crate::{Backend, Error, Result};

/// A borrowed connection on which to run your own sqlx queries.
///
/// Match on it, or use [`with_conn!`](crate::with_conn) to write one query for both backends
/// (sqlx accepts `$1` placeholders on SQLite as well).
#[derive(Debug)]
pub enum Conn<'c> {
    /// A PostgreSQL connection.
    Postgres(&'c mut PgConnection),
    /// A SQLite connection.
    Sqlite(&'c mut SqliteConnection),
}

impl<'c> Conn<'c> {
    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            Conn::Postgres(_) => Backend::Postgres,
            Conn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The PostgreSQL connection, or [`Error::Unsupported`] on SQLite.
    pub fn postgres(self) -> Result<&'c mut PgConnection> {
        match self {
            Conn::Postgres(c) => Ok(c),
            Conn::Sqlite(_) => Err(Error::Unsupported { feature: "a PostgreSQL connection", backend: Backend::Sqlite }),
        }
    }

    /// The SQLite connection, or [`Error::Unsupported`] on PostgreSQL.
    pub fn sqlite(self) -> Result<&'c mut SqliteConnection> {
        match self {
            Conn::Sqlite(c) => Ok(c),
            Conn::Postgres(_) => Err(Error::Unsupported { feature: "a SQLite connection", backend: Backend::Postgres }),
        }
    }
}

/// A connection taken from a [`Db`](crate::Db)'s pool, returned to it on drop.
#[derive(Debug)]
pub enum PoolConn {
    /// A pooled PostgreSQL connection.
    Postgres(PoolConnection<Postgres>),
    /// A pooled SQLite connection.
    Sqlite(PoolConnection<Sqlite>),
}

impl PoolConn {
    /// Borrows the connection for a query.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            PoolConn::Postgres(c) => Conn::Postgres(c),
            PoolConn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            PoolConn::Postgres(_) => Backend::Postgres,
            PoolConn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs statements that return no rows, several separated by `;`, in one round trip.
    pub(crate) async fn batch(&mut self, sql: impl sqlx::SqlSafeStr) -> Result<()> {
        match self {
            PoolConn::Postgres(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop)?,
            PoolConn::Sqlite(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes the connection instead of returning it to the pool when it is dropped: used
    /// when its transaction state cannot be trusted.
    pub(crate) fn close_on_drop(&mut self) {
        match self {
            PoolConn::Postgres(c) => c.close_on_drop(),
            PoolConn::Sqlite(c) => c.close_on_drop(),
        }
    }
}

/// Runs one expression against a [`Conn`] of either backend: `$c` is bound to the
/// `&mut PgConnection` or `&mut SqliteConnection`, and the body is compiled once for each.
///
/// Both arms must have the same type: `execute` returns a per-backend result, so take
/// `.rows_affected()` from it (or discard it with `;`).
///
/// ```no_run
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// let mut conn = db.acquire().await?;
/// let n: i64 = oncommit::with_conn!(conn.conn(), c => {
///     sqlx::query_scalar("SELECT count(*) FROM data WHERE name = $1")
///         .bind("Dummy")
///         .fetch_one(c)
///         .await?
/// });
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Postgres($c) => $body,
            $crate::Conn::Sqlite($c) => $body,
        }
    };
}
