//! The one error type of oncommit, and how database errors are classified into it.

use std::fmt;

use crate::Backend;

/// A boxed error from application code (a hook, a task, a closure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Result` whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in oncommit.
///
/// Database errors are classified into the variants a caller acts on (a deadlock is retried,
/// a unique violation is reported to the user, a lost commit is investigated); anything else
/// stays [`Error::Database`] with its code. [`Error::is_retryable`] says whether running the
/// whole transaction again may succeed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL could not be understood.
    #[error("invalid database url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The server could not be reached at all (refused, unknown host, timed out).
    #[error("cannot reach the {backend} server at {target}")]
    Unreachable {
        /// Which backend was being contacted.
        backend: Backend,
        /// Host and port (or file) that was tried.
        target: String,
        /// The underlying I/O or driver error.
        #[source]
        source: sqlx::Error,
    },

    /// The TLS connection the URL asks for (`sslmode=require`, `verify-ca`, `verify-full`)
    /// could not be made: the server has no TLS, its certificate is not signed by a trusted
    /// root (`sslrootcert`), or it does not name the host connected to (`verify-full`).
    #[error("TLS to the {backend} server at {target} failed: {reason}")]
    Tls {
        /// Which backend was being contacted.
        backend: Backend,
        /// Host and port that was tried.
        target: String,
        /// What the handshake or the certificate check said.
        reason: String,
    },

    /// None of the URL's servers could be used: each was out of reach, or its role did not
    /// suit `target_session_attrs` (a standby where a writer was asked for).
    #[error("no server at {target} is {wanted}: {tried}")]
    NoServer {
        /// The URL's hosts and database.
        target: String,
        /// The `target_session_attrs` asked for (`any` when none was).
        wanted: &'static str,
        /// Each server tried, and why it was passed over.
        tried: String,
    },

    /// A transaction pooler (PgBouncer, Supavisor, RDS Proxy) sits in front of PostgreSQL
    /// and the URL does not say so: it refused a startup parameter, or a prepared statement
    /// was missing or already there (SQLSTATE 26000, 42P05) because the server session
    /// changed between transactions. A configuration problem: add `pooler=transaction`.
    #[error(
        "a transaction pooler sits in front of PostgreSQL ({symptom}): add pooler=transaction to the URL \
         (and a direct listen URL for LISTEN), see docs/deployment.md"
    )]
    TransactionPooler {
        /// What gave it away.
        symptom: String,
    },

    /// The server refused the credentials (SQLSTATE 28P01 / 28000).
    #[error("authentication failed for the {backend} server at {target}: {message}")]
    AuthenticationFailed {
        /// Which backend refused.
        backend: Backend,
        /// Host and port that was tried.
        target: String,
        /// The server's message.
        message: String,
    },

    /// The server is reachable but the named database does not exist (SQLSTATE 3D000), or a
    /// SQLite file could not be opened.
    #[error("database not available at {target}: {message}")]
    DatabaseUnavailable {
        /// Host and database, or the file path.
        target: String,
        /// The server's or SQLite's message.
        message: String,
    },

    /// The isolation level could not order this transaction with a concurrent one
    /// (SQLSTATE 40001, SQLite `SQLITE_BUSY_SNAPSHOT`). Running the transaction again
    /// usually succeeds.
    #[error("serialization failure ({kind}): {message}")]
    SerializationFailure {
        /// Which conflict it was.
        kind: SerializationKind,
        /// The server's message.
        message: String,
    },

    /// The server broke a deadlock by aborting this transaction (SQLSTATE 40P01).
    #[error("deadlock detected: {message}")]
    Deadlock {
        /// The server's message ("deadlock detected").
        message: String,
        /// PostgreSQL's detail: which processes waited for which locks.
        detail: Option<String>,
    },

    /// A lock could not be taken at once (`NOWAIT`) or within `lock_timeout` (SQLSTATE 55P03).
    #[error("lock not available: {message}")]
    LockNotAvailable {
        /// The server's message.
        message: String,
    },

    /// A statement ran longer than `statement_timeout` and was cancelled (SQLSTATE 57014).
    #[error("statement cancelled: {message}")]
    StatementTimeout {
        /// The server's message.
        message: String,
    },

    /// A unique constraint was violated (SQLSTATE 23505, SQLite `SQLITE_CONSTRAINT_UNIQUE`).
    #[error("unique violation{}: {message}", constraint.as_deref().map(|c| format!(" on {c}")).unwrap_or_default())]
    UniqueViolation {
        /// The constraint's name where the database reports it (PostgreSQL does).
        constraint: Option<String>,
        /// The server's message.
        message: String,
    },

    /// A statement was sent after an earlier one failed in the same transaction
    /// (SQLSTATE 25P02): the transaction can only be rolled back.
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,

    /// `COMMIT` was answered with `ROLLBACK`: an earlier statement of the transaction had
    /// failed (its error was swallowed), so nothing was committed.
    #[error("commit rolled back: an earlier statement in the transaction had failed, nothing was committed")]
    CommitRolledBack,

    /// SQLite's database lock was held by another connection for longer than the busy
    /// timeout (`SQLITE_BUSY`).
    #[error("database is busy: {message}")]
    Busy {
        /// SQLite's message.
        message: String,
    },

    /// The connection broke while a statement was running; the transaction is gone.
    #[error("connection lost")]
    ConnectionLost(#[source] sqlx::Error),

    /// The connection broke while `COMMIT` was in flight: the transaction may or may not
    /// have committed. Do not blindly retry non-idempotent work; check the data.
    #[error("commit outcome unknown: the connection was lost while committing")]
    CommitOutcomeUnknown(#[source] Box<Error>),

    /// No connection could be taken from the pool in time.
    #[error("timed out waiting for a database connection from the pool")]
    PoolTimedOut,

    /// Any other error the database reported.
    #[error("database error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Database {
        /// SQLSTATE (PostgreSQL) or extended result code (SQLite).
        code: Option<String>,
        /// The server's message.
        message: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// The transaction committed, but an `on_commit` hook failed. Later non-robust hooks
    /// did not run. **The data is committed.**
    #[error("transaction committed, but on_commit hook #{index} failed: {source}")]
    Hook {
        /// Position of the failing hook among those of the transaction (0-based).
        index: usize,
        /// What the hook returned or how it panicked.
        #[source]
        source: BoxError,
    },

    /// A `durable` scope was opened inside another transaction.
    #[error("a durable transaction cannot be nested inside another transaction")]
    DurableNested,

    /// A savepoint guard was dropped without `commit` or `rollback` while its transaction went
    /// on; the transaction refuses to commit because the savepoint's fate is unknown.
    #[error(
        "savepoint dropped without commit or rollback: the transaction was rolled back (use the closure form, or call rollback() on the savepoint; a sqlx transaction begun on the connection must be committed or rolled back too)"
    )]
    AbandonedSavepoint,

    /// `Db::enqueue` was called while this task runs a transaction closure on the same
    /// database: the job would commit before (or without) the data it is about.
    #[error(
        "enqueue outside the transaction: this task has a transaction open on this database, so the job could run before (or without) its data; use tx.enqueue inside the transaction"
    )]
    EnqueueOutsideTransaction,

    /// A task's arguments could not be turned into JSON (or were not an object or array).
    #[error("invalid arguments for task `{task}`: {reason}")]
    InvalidArgs {
        /// The task name.
        task: String,
        /// What is wrong.
        reason: String,
    },

    /// A cron pattern could not be parsed.
    #[error("invalid cron schedule `{pattern}`: {reason}")]
    InvalidSchedule {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// This worker no longer holds the job: its lease expired and it went back to the
    /// queue (or to another worker). Nothing the attempt did in its completing transaction
    /// was committed.
    #[error("job {job} attempt {attempt} is no longer held by this worker (its lease expired); nothing was committed")]
    LeaseLost {
        /// The job.
        job: crate::JobId,
        /// The attempt that lost it.
        attempt: i32,
    },

    /// An enqueue option, a task's declared option or a queue setting has a value no
    /// worker could honour (a queue name with `,` or `:`, a `run_at` out of range, zero
    /// attempts, a concurrency limit of 0, …). Nothing was enqueued or changed.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// Which option (`queue`, `run_at`, `delay`, `max_attempts`, …).
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// One of oncommit's own statements (a worker's claim, heartbeat or completion) got no
    /// answer in time: the database is overloaded or out of reach. The connection is closed,
    /// not returned to the pool.
    #[error("{what} got no answer from the database within {after:?}")]
    TimedOut {
        /// The statement that timed out.
        what: &'static str,
        /// How long it waited.
        after: std::time::Duration,
    },

    /// An option was given that does not apply (isolation level on a nested scope, …).
    #[error("invalid transaction options: {0}")]
    InvalidTransactionOptions(&'static str),

    /// The backend cannot do what was asked (for example `statement_timeout` on SQLite).
    #[error("{feature} is not supported on {backend}")]
    Unsupported {
        /// What was asked.
        feature: &'static str,
        /// The backend that cannot do it.
        backend: Backend,
    },

    /// The database's schema does not suit this binary: missing or older than it (run
    /// `oncommit migrate`), or newer and no longer compatible with it (upgrade the binary).
    /// The message says which.
    #[error("{status}")]
    SchemaVersion {
        /// What the database records, and what this binary knows.
        status: crate::migrate::SchemaStatus,
    },

    /// A migration failed; the migrations before it stay applied.
    #[error("migration {set}/{version} ({name}) failed")]
    Migration {
        /// The migration set (`oncommit` or an application's).
        set: &'static str,
        /// Its number.
        version: i64,
        /// Its descriptive name.
        name: &'static str,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },

    /// An error from application code run inside a transaction scope.
    #[error(transparent)]
    App(BoxError),

    /// A driver error that fits no other variant (decoding a row, a protocol error, …).
    #[error(transparent)]
    Sqlx(sqlx::Error),
}

/// Why a transaction could not be serialized, for [`Error::SerializationFailure`].
///
/// ```
/// use oncommit::{Error, SerializationKind};
/// fn explain(err: &Error) -> &'static str {
///     match err {
///         Error::SerializationFailure { kind: SerializationKind::WriteConflict, .. } => "someone changed that row first",
///         Error::SerializationFailure { kind: SerializationKind::Dependency, .. } => "serializable found a cycle",
///         _ => "something else",
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SerializationKind {
    /// A row this transaction updated, deleted or locked was changed by a transaction that
    /// committed after this one's snapshot (repeatable read or serializable on PostgreSQL;
    /// on SQLite, another connection wrote since this one's read snapshot).
    WriteConflict,
    /// Serializable snapshot isolation (SSI) saw read/write dependencies among concurrent
    /// transactions that no serial order explains, and aborted this one.
    Dependency,
    /// Any other 40001: a hot standby cancelling a query that conflicts with recovery, say.
    Other,
}

impl SerializationKind {
    /// Tells the kinds apart: PostgreSQL reports them all as 40001 and only its message
    /// differs.
    fn of(code: &str, message: &str) -> SerializationKind {
        if code == sqlite_code::BUSY_SNAPSHOT || message.contains("due to concurrent") {
            SerializationKind::WriteConflict
        } else if message.contains("read/write dependencies") {
            SerializationKind::Dependency
        } else {
            SerializationKind::Other
        }
    }
}

impl fmt::Display for SerializationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SerializationKind::WriteConflict => "write conflict",
            SerializationKind::Dependency => "read/write dependency",
            SerializationKind::Other => "other",
        })
    }
}

impl Error {
    /// Wraps an application error so a transaction closure can return it with `?`.
    pub fn app(err: impl Into<BoxError>) -> Self {
        Error::App(err.into())
    }

    /// Whether running the whole transaction again may succeed: serialization failures,
    /// deadlocks and SQLite busy errors. A lost commit is *not* retryable: it may have
    /// committed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::SerializationFailure { .. } | Error::Deadlock { .. } | Error::Busy { .. })
    }

    /// Whether this is a serialization failure (40001, SQLite busy snapshot).
    pub fn is_serialization_failure(&self) -> bool {
        matches!(self, Error::SerializationFailure { .. })
    }

    /// Whether the server aborted this transaction to break a deadlock (40P01).
    pub fn is_deadlock(&self) -> bool {
        matches!(self, Error::Deadlock { .. })
    }

    /// Whether a lock could not be taken (`NOWAIT` or `lock_timeout`, 55P03).
    pub fn is_lock_not_available(&self) -> bool {
        matches!(self, Error::LockNotAvailable { .. })
    }

    /// Whether a unique constraint was violated (23505).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::UniqueViolation { .. })
    }

    /// Whether the connection was lost (during a statement or during commit).
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::ConnectionLost(_) | Error::CommitOutcomeUnknown(_))
    }

    /// The SQLSTATE or SQLite extended result code, where the database gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::SerializationFailure { .. } => Some("40001"),
            Error::Deadlock { .. } => Some("40P01"),
            Error::LockNotAvailable { .. } => Some("55P03"),
            Error::StatementTimeout { .. } => Some("57014"),
            Error::UniqueViolation { .. } => Some("23505"),
            Error::InFailedTransaction => Some("25P02"),
            Error::Database { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        classify(err)
    }
}

/// SQLite extended result codes that oncommit tells apart.
mod sqlite_code {
    pub(super) const BUSY: &str = "5";
    pub(super) const BUSY_RECOVERY: &str = "261";
    pub(super) const BUSY_SNAPSHOT: &str = "517";
    pub(super) const BUSY_TIMEOUT: &str = "773";
    pub(super) const LOCKED: &str = "6";
    pub(super) const CONSTRAINT_UNIQUE: &str = "2067";
    pub(super) const CONSTRAINT_PRIMARYKEY: &str = "1555";
}

/// Sorts a driver error into the variant a caller can act on.
pub(crate) fn classify(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => {
            return Error::ConnectionLost(err);
        }
        sqlx::Error::PoolTimedOut => return Error::PoolTimedOut,
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => return Error::ConnectionLost(err),
        sqlx::Error::Database(_) => {}
        _ => return Error::Sqlx(err),
    }
    let sqlx::Error::Database(db) = &err else { unreachable!("matched above") };
    let message = db.message().to_owned();
    let code = db.code().map(|c| c.into_owned());
    // PostgreSQL says which transactions a deadlock involved.
    #[cfg(feature = "postgres")]
    let detail = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|e| e.detail()).map(str::to_owned);
    #[cfg(not(feature = "postgres"))]
    let detail = None;
    match code.as_deref() {
        Some(c @ ("40001" | sqlite_code::BUSY_SNAPSHOT)) => {
            Error::SerializationFailure { kind: SerializationKind::of(c, &message), message }
        }
        Some("40P01") => Error::Deadlock { message, detail },
        Some("55P03") => Error::LockNotAvailable { message },
        Some("57014") => Error::StatementTimeout { message },
        Some("23505") | Some(sqlite_code::CONSTRAINT_UNIQUE) | Some(sqlite_code::CONSTRAINT_PRIMARYKEY) => {
            Error::UniqueViolation { constraint: db.constraint().map(str::to_owned), message }
        }
        Some("25P02") => Error::InFailedTransaction,
        // sqlx names its prepared statements `sqlx_s_N`: one missing, or one already there,
        // means the server session changed under the connection, as through a transaction
        // pooler.
        Some("26000" | "42P05") if message.contains("sqlx_s_") => {
            Error::TransactionPooler { symptom: format!("{}: {message}", code.as_deref().unwrap_or_default()) }
        }
        Some(sqlite_code::BUSY | sqlite_code::BUSY_RECOVERY | sqlite_code::BUSY_TIMEOUT | sqlite_code::LOCKED) => {
            Error::Busy { message }
        }
        // Server shutting down, or the connection class of errors: the session is gone.
        Some(c) if c.starts_with("08") || c.starts_with("57P") => Error::ConnectionLost(err),
        _ => Error::Database { code, message, source: err },
    }
}

/// Where a connection attempt was going, for error messages.
pub(crate) struct Target<'a> {
    pub(crate) backend: Backend,
    pub(crate) target: &'a str,
}

impl Target<'_> {
    /// Classifies an error from establishing a connection: unreachable, wrong credentials,
    /// missing database, or one of the ordinary classes.
    pub(crate) fn connect_error(&self, err: sqlx::Error) -> Error {
        let target = self.target.to_owned();
        let backend = self.backend;
        match &err {
            sqlx::Error::Tls(tls) => Error::Tls { backend, target, reason: tls_reason(tls.as_ref()) },
            // rustls reports a refused certificate from inside the handshake's stream as
            // invalid data, the only kind of I/O error a connection attempt can meet there.
            sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData && io.get_ref().is_some() => {
                Error::Tls { backend, target, reason: tls_reason(io) }
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Error::Unreachable { backend, target, source: err },
            sqlx::Error::Database(db) if db.message().contains("unsupported startup parameter") => {
                Error::TransactionPooler { symptom: db.message().to_owned() }
            }
            sqlx::Error::Database(db) => {
                let message = db.message().to_owned();
                match db.code().as_deref() {
                    Some("28P01") | Some("28000") => Error::AuthenticationFailed { backend, target, message },
                    Some("3D000") => Error::DatabaseUnavailable { target, message },
                    Some(c) if on_backend!(backend, cannot_open(c)) => Error::DatabaseUnavailable { target, message },
                    _ => classify(err),
                }
            }
            _ => classify(err),
        }
    }
}

/// The whole chain of a TLS error: rustls's reason (a name mismatch, an unknown issuer) sits
/// under sqlx's wrapper.
fn tls_reason(err: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = cause.source();
    }
    if reason.contains("UnknownIssuer") {
        reason.push_str(" (no trusted root signed the server's certificate: name its CA with sslrootcert=PATH)");
    } else if reason.contains("NotValidForName") {
        reason.push_str(" (the certificate does not name the host connected to: connect by a name it lists, or check only the signer with sslmode=verify-ca)");
    }
    reason
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.backend, self.target)
    }
}
