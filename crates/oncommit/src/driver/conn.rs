//! Connections handed to user code, for either backend.

#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnection, PgTransactionManager};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnection, SqliteTransactionManager};
use sqlx::{AssertSqlSafe, SqlSafeStr};
use sqlx_core::transaction::TransactionManager;

use crate::{Backend, Error, Result};

/// A borrowed connection on which to run your own sqlx queries.
///
/// Match on it, or use [`with_conn!`](crate::with_conn) to write one query for both backends
/// (sqlx accepts `$1` placeholders on SQLite as well).
#[derive(Debug)]
pub enum Conn<'c> {
    /// A PostgreSQL connection.
    #[cfg(feature = "postgres")]
    Postgres(&'c mut PgConnection),
    /// A SQLite connection.
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut SqliteConnection),
}

#[cfg(feature = "postgres")]
impl<'c> From<&'c mut PgConnection> for Conn<'c> {
    fn from(c: &'c mut PgConnection) -> Self {
        Conn::Postgres(c)
    }
}

#[cfg(feature = "sqlite")]
impl<'c> From<&'c mut SqliteConnection> for Conn<'c> {
    fn from(c: &'c mut SqliteConnection) -> Self {
        Conn::Sqlite(c)
    }
}

impl<'c> Conn<'c> {
    /// The same connection, borrowed again for a shorter time (to use it twice).
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => Conn::Postgres(c),
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The PostgreSQL connection, or [`Error::Unsupported`] on SQLite.
    #[cfg(feature = "postgres")]
    pub fn postgres(self) -> Result<&'c mut PgConnection> {
        match self {
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => Ok(c),
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(_) => Err(Error::Unsupported { feature: "a PostgreSQL connection", backend: Backend::Sqlite }),
        }
    }

    /// The SQLite connection, or [`Error::Unsupported`] on PostgreSQL.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self) -> Result<&'c mut SqliteConnection> {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => Ok(c),
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => Err(Error::Unsupported { feature: "a SQLite connection", backend: Backend::Postgres }),
        }
    }
}

/// A connection taken from a [`Db`](crate::Db)'s pool, returned to it on drop.
#[derive(Debug)]
pub enum PoolConn {
    /// A pooled PostgreSQL connection.
    #[cfg(feature = "postgres")]
    Postgres(PoolConnection<Postgres>),
    /// A pooled SQLite connection.
    #[cfg(feature = "sqlite")]
    Sqlite(PoolConnection<Sqlite>),
}

impl PoolConn {
    /// Borrows the connection for a query.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => Conn::Postgres(c),
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(c) => Conn::Sqlite(c),
        }
    }

    /// The backend of this connection.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs statements that return no rows, several separated by `;`, in one round trip.
    pub(crate) async fn batch(&mut self, sql: impl sqlx::SqlSafeStr) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop)?,
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(drop)?,
        }
        Ok(())
    }

    /// Begins a transaction with `sql` (a `BEGIN` and its settings) the way sqlx's own
    /// `begin` does, so sqlx knows the connection is in one: a `begin()` a user calls on it
    /// then opens a savepoint instead of sending a second `BEGIN` whose `COMMIT` would end
    /// ours early.
    pub(crate) async fn begin_tracked(&mut self, sql: String) -> Result<()> {
        let sql = AssertSqlSafe(sql).into_sql_str();
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => PgTransactionManager::begin(c, Some(sql)).await?,
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(c) => SqliteTransactionManager::begin(c, Some(sql)).await?,
        }
        Ok(())
    }

    /// Commits the transaction begun by [`PoolConn::begin_tracked`]. Refused, with nothing
    /// sent, while a sqlx transaction begun on it by the user is still open: its `COMMIT`
    /// would only release that savepoint.
    pub(crate) async fn commit_tracked(&mut self) -> Result<()> {
        if self.depth() != 1 {
            return Err(Error::AbandonedSavepoint);
        }
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => {
                if let Err(err) = PgTransactionManager::commit(c).await {
                    if matches!(err, sqlx::Error::Database(_)) {
                        // The server answered the COMMIT with an error and ended the
                        // transaction, but sqlx still counts it open. Give its ROLLBACK an
                        // empty transaction to end, rather than one that warns "there is no
                        // transaction in progress" in the log.
                        if sqlx::raw_sql("BEGIN").execute(&mut **c).await.is_ok() {
                            PgTransactionManager::rollback(c).await.ok();
                        }
                    }
                    return Err(err.into());
                }
            }
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(c) => SqliteTransactionManager::commit(c).await?,
        }
        Ok(())
    }

    /// Rolls back every level sqlx knows of: the user's unfinished savepoints, then ours.
    pub(crate) async fn rollback_tracked(&mut self) -> Result<()> {
        while self.depth() > 0 {
            match self {
                #[cfg(feature = "postgres")]
                PoolConn::Postgres(c) => PgTransactionManager::rollback(c).await?,
                #[cfg(feature = "sqlite")]
                PoolConn::Sqlite(c) => SqliteTransactionManager::rollback(c).await?,
            }
        }
        Ok(())
    }

    /// Behind a transaction pooler (`pooled_begin`, what its transactions open with), opens
    /// the transaction that a statement which would run in autocommit runs in instead (see
    /// `driver::postgres`); returns whether it did.
    pub(crate) async fn open_pooled(&mut self, pooled_begin: Option<&str>) -> Result<bool> {
        match pooled_begin {
            // Boxed: the futures of every statement runner would otherwise carry it.
            Some(suffix) => Box::pin(self.begin_tracked(format!("BEGIN{suffix}"))).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Ends the transaction [`PoolConn::open_pooled`] opened: commits it when the work
    /// succeeded, else rolls it back.
    pub(crate) async fn close_pooled(&mut self, opened: bool, succeeded: bool) -> Result<()> {
        match (opened, succeeded) {
            (false, _) => Ok(()),
            (true, true) => Box::pin(self.commit_tracked()).await,
            (true, false) => Box::pin(self.rollback_tracked()).await,
        }
    }

    fn depth(&self) -> usize {
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => PgTransactionManager::get_transaction_depth(c),
            #[cfg(feature = "sqlite")]
            PoolConn::Sqlite(c) => SqliteTransactionManager::get_transaction_depth(c),
        }
    }

    /// Closes the connection instead of returning it to the pool when it is dropped: used
    /// when its transaction state cannot be trusted.
    pub(crate) fn close_on_drop(&mut self) {
        match self {
            #[cfg(feature = "postgres")]
            PoolConn::Postgres(c) => c.close_on_drop(),
            #[cfg(feature = "sqlite")]
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
// One definition per build: a `cfg` inside the expansion would be read in the caller's
// crate, whose features are not oncommit's.
#[cfg(all(feature = "postgres", feature = "sqlite"))]
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Postgres($c) => $body,
            $crate::Conn::Sqlite($c) => $body,
        }
    };
}

/// See the documentation of the build with both databases.
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Postgres($c) => $body,
        }
    };
}

/// See the documentation of the build with both databases.
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::Conn::Sqlite($c) => $body,
        }
    };
}
