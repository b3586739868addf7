//! What a database says or does differently outside oncommit's job statements: how a
//! transaction opens, what a row lock looks like, where migrations are recorded, whether
//! workers in other processes can be woken at commit. The layers above ask the driver
//! ([`on_backend!`]) instead of matching on the backend.

use std::time::Duration;

use super::Driver;
use crate::driver::options::Isolation;
use crate::driver::options::Lock;
use crate::error::Result;
use crate::migrate::{Migration, MigrationSet};

/// The database's dialect and capabilities.
pub(crate) trait Dialect: Driver {
    /// Its name in OpenTelemetry's `db.system.name`.
    const SYSTEM_NAME: &'static str;

    /// Whether a commit can wake workers in other processes (LISTEN/NOTIFY). Without it a
    /// worker polls, and this process wakes its own workers at commit.
    const NOTIFIES: bool;

    /// Whether a `COMMIT` of a transaction that failed inside succeeds, ending it with a
    /// rollback the client is not told of (PostgreSQL's `ROLLBACK` tag): a statement first
    /// shows the failure.
    const COMMIT_HIDES_FAILURE: bool;

    /// The statements that open a transaction with `settings`, and those that undo its
    /// per-connection settings after it ends. Refuses what the database cannot do.
    fn begin_sql(settings: &BeginSettings<'_>) -> Result<(String, Option<String>)>;

    /// `lock`'s row-lock clause with a leading space; empty where the database locks whole
    /// files and a write lock is already the transaction's.
    fn lock_clause(lock: &Lock) -> String;

    /// The statements that keep the record of applied migrations.
    const MIGRATIONS: MigrationSql;

    /// oncommit's schema as `Fleet::schema_describe` gives it once every migration ran:
    /// the snapshot beside the code (`schema/`), which the suite keeps true and `oncommit
    /// doctor` compares a live schema with.
    const SCHEMA_SNAPSHOT: &'static str;

    /// The migrations of `set` written for this database.
    fn migrations(set: &MigrationSet) -> &'static [Migration];

    /// Whether an error code at connect time means the database itself cannot be opened
    /// (SQLite's `SQLITE_CANTOPEN` family), rather than a server refusing.
    fn cannot_open(code: &str) -> bool;
}

/// How a transaction opens (see [`Dialect::begin_sql`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BeginSettings<'a> {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code, reason = "PostgreSQL's only"))]
    pub(crate) isolation: Option<Isolation>,
    pub(crate) read_only: bool,
    /// How long a lock may be waited for.
    pub(crate) lock_timeout: Option<Duration>,
    /// How long one statement may run.
    pub(crate) statement_timeout: Option<Duration>,
    /// Behind a transaction pooler, what every transaction opens with (`driver::postgres`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code, reason = "PostgreSQL's only"))]
    pub(crate) pooled: Option<&'a str>,
}

/// The statements of migration bookkeeping (see `driver::migrations`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MigrationSql {
    /// Opens a migration's transaction.
    pub(crate) begin: &'static str,
    /// Run first in every migrating transaction: serializes concurrent migrators where the
    /// transaction does not already, and bounds each lock wait (see `driver::migrations`).
    pub(crate) in_transaction: Option<&'static str>,
    /// Tries once, without waiting, to take the migrators' lock for the session (answers a
    /// boolean), and gives it back: held across migrations that run outside a transaction.
    /// `None` where the transaction's own lock is enough.
    pub(crate) session_lock: Option<(&'static str, &'static str)>,
    /// Creates the record (idempotent).
    pub(crate) bookkeeping: &'static str,
    /// `$1`, `$2`: tables' names as [`MigrationSql::record_table`] writes them: whether
    /// each exists, in one row.
    pub(crate) tables_exist: &'static str,
    /// The table of applied migrations.
    pub(crate) record_table: &'static str,
    /// The table of each set's oldest compatible binary.
    pub(crate) compatibility_table: &'static str,
    /// `$1` set name: the versions applied.
    pub(crate) applied: &'static str,
    /// `$1` set, `$2` version, `$3` name: records one.
    pub(crate) record: &'static str,
    /// `$1` set: the newest version applied, if any.
    pub(crate) latest: &'static str,
    /// `$1` set, both tables there: the newest version applied and the oldest version a
    /// binary must know to use the schema, each if recorded, in one row.
    pub(crate) status: &'static str,
    /// `$1` set, `$2` version: raises the oldest compatible version to at least `$2`.
    pub(crate) raise_compatible_from: &'static str,
    /// `$1` an index's name as a statement creating it writes it: whether it exists and is
    /// INVALID (a build that did not finish). `None` where indexes cannot be left so.
    pub(crate) invalid_index: Option<&'static str>,
}

/// Statements on a session or on the caller's own tables, outside oncommit's.
pub(crate) trait Sessions: Driver {
    /// Locks the rows of `table` whose integer column `key` is in `keys`, in ascending key
    /// order, with `clause` (from [`Dialect::lock_clause`]); returns the keys locked.
    /// `table` and `key` come quoted.
    async fn rows_lock_in_order(
        c: &mut Self::Conn,
        table: &str,
        key: &str,
        keys: &[i64],
        clause: &str,
    ) -> Result<Vec<i64>>;

    /// Bounds how long the transaction may sit idle to `lease`, where the server can end a
    /// session that does (PostgreSQL): a worker vanished behind a silent network then
    /// frees the locks its transaction held after a lease, not after the OS gives up.
    async fn transaction_idle_limit(c: &mut Self::Conn, lease: Duration) -> Result<()>;

    /// Wakes the sleeping workers of `queues` in other processes at commit (PostgreSQL:
    /// `oncommit.wake_sleepers`); nothing where the database cannot ([`Dialect::NOTIFIES`]).
    async fn sleepers_wake(c: &mut Self::Conn, queues: &[String]) -> Result<()>;
}
