//! How to reach a database and what to ask of it: the backend, the pool's options, a pool
//! the application made, isolation levels. Below `Db` and the transactions, which re-export
//! them.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqlitePool;

/// How long a SQLite connection waits for another connection's write lock before `BUSY`.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Db`](crate::Db) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL: the production backend, shared by many workers on many machines.
    #[cfg(feature = "postgres")]
    Postgres,
    /// SQLite: the embedded default, one file, no server.
    #[cfg(feature = "sqlite")]
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            #[cfg(feature = "postgres")]
            Backend::Postgres => "postgres",
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => "sqlite",
        })
    }
}

/// A sqlx pool of either backend, for [`Db::from_pool`](crate::Db::from_pool).
#[derive(Debug, Clone)]
pub enum ExistingPool {
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
    /// A SQLite pool.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
}

#[cfg(feature = "postgres")]
impl From<PgPool> for ExistingPool {
    fn from(pool: PgPool) -> Self {
        ExistingPool::Postgres(pool)
    }
}

#[cfg(feature = "sqlite")]
impl From<SqlitePool> for ExistingPool {
    fn from(pool: SqlitePool) -> Self {
        ExistingPool::Sqlite(pool)
    }
}

/// Options for [`Db::connect_with`](crate::Db::connect_with).
///
/// ```no_run
/// # async fn demo() -> oncommit::Result<()> {
/// use oncommit::{Db, DbOptions, Pooler};
/// let options = DbOptions {
///     pooler: Some(Pooler::Transaction),
///     listen_url: Some("postgres://app@db-direct:5432/app".into()),
///     ..DbOptions::default()
/// };
/// let db = Db::connect_with("postgres://app@pgbouncer:6432/app", options).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection before [`Error::PoolTimedOut`](crate::Error::PoolTimedOut).
    pub acquire_timeout: Duration,
    /// What sits between oncommit and PostgreSQL; `None` takes the URL's `pooler`
    /// parameter (absent: nothing). See [`Pooler`].
    pub pooler: Option<Pooler>,
    /// A direct PostgreSQL URL for LISTEN, beside a pooled URL: a transaction pooler cannot
    /// deliver notifications. Without it, workers behind such a pooler poll.
    pub listen_url: Option<String>,
    /// How long a connection may stay unused in the pool before it is closed (default
    /// 10 minutes): shorter gives a server's connection budget back sooner when a process
    /// goes quiet.
    pub idle_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            pooler: None,
            listen_url: None,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Transaction isolation levels (plain autocommit is what you get outside any scope).
///
/// On PostgreSQL each is the server's level of that name. SQLite has one writer at a time
/// and snapshot reads, so every transaction there is serializable, which satisfies any
/// level asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Each statement sees what was committed before it began (PostgreSQL's default).
    ReadCommitted,
    /// The whole transaction sees one snapshot; writing a row changed since fails with a
    /// serialization failure.
    RepeatableRead,
    /// As if transactions ran one at a time; anomalies become serialization failures.
    Serializable,
}

impl Isolation {
    /// Every level, weakest first.
    pub const ALL: [Isolation; 3] = [Isolation::ReadCommitted, Isolation::RepeatableRead, Isolation::Serializable];

    #[cfg(feature = "postgres")]
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

/// Shown as PostgreSQL spells the level: `read committed`, `repeatable read`, `serializable`.
///
/// ```
/// assert_eq!(oncommit::Isolation::RepeatableRead.to_string(), "repeatable read");
/// ```
impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        })
    }
}

/// How strong a row lock is (PostgreSQL's four row-level lock modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStrength {
    /// `FOR UPDATE`: blocks every other locker and writer of the row.
    Update,
    /// `FOR NO KEY UPDATE`: like `UPDATE`, but lets foreign-key checks (`KEY SHARE`) through.
    NoKeyUpdate,
    /// `FOR SHARE`: blocks writers, not other sharers.
    Share,
    /// `FOR KEY SHARE`: blocks only deletes and key changes.
    KeyShare,
}

/// What to do when a row is already locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Wait for it (up to `lock_timeout`).
    Wait,
    /// `NOWAIT`: fail at once with [`Error::LockNotAvailable`](crate::Error::LockNotAvailable).
    NoWait,
    /// `SKIP LOCKED`: leave locked rows out of the result.
    SkipLocked,
}

/// A row-lock clause for a `SELECT`.
///
/// ```
/// use oncommit::{Backend, Lock};
/// let sql = Lock::update().nowait().of("socks").apply(Backend::Postgres, "SELECT id FROM socks WHERE id = $1");
/// assert_eq!(sql.0, r#"SELECT id FROM socks WHERE id = $1 FOR UPDATE OF "socks" NOWAIT"#);
/// // SQLite: the transaction's database write lock stands in for row locks.
/// let sql = Lock::update().apply(Backend::Sqlite, "SELECT id FROM socks WHERE id = $1");
/// assert_eq!(sql.0, "SELECT id FROM socks WHERE id = $1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub(crate) strength: LockStrength,
    pub(crate) wait: LockWait,
    /// Tables (or aliases) whose rows to lock, when the query joins several.
    pub(crate) of: Vec<String>,
}

/// What sits between oncommit and the server, as the URL's `pooler` parameter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// Nothing, or a pooler that keeps each client's session (`pooler=session`): sessions
    /// are oncommit's own from connect to close.
    #[default]
    None,
    /// A transaction pooler (PgBouncer `pool_mode = transaction`, Supavisor's transaction
    /// port, RDS Proxy): the server session may change at every transaction's end, so
    /// nothing may live in it between transactions (`pooler=transaction`).
    Transaction,
}

impl Pooler {
    #[cfg(feature = "postgres")]
    pub(crate) fn parse(value: &str) -> Result<Pooler, String> {
        match value {
            "transaction" => Ok(Pooler::Transaction),
            "session" | "none" => Ok(Pooler::None),
            other => Err(format!("invalid pooler `{other}` (expected transaction, session or none)")),
        }
    }
}
