//! [`TxBuilder`]: the options of an outermost transaction, and the retry loop.

use std::time::Duration;

use super::attempts::{ScopeSource, run_in};
use super::scope::in_scope_of;
use super::tx::{Tx, TxState};
use crate::db::Db;
use crate::driver::contract::BeginSettings;
use crate::driver::options::SQLITE_BUSY_TIMEOUT;
use crate::error::{Error, Result};
use crate::retry::TransactionRetry;

pub use crate::driver::options::Isolation;

/// A value returned by a committed transaction, with how many attempts it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<T> {
    /// What the closure returned on the attempt that committed.
    pub value: T,
    /// How many times the closure ran (1 when the first attempt committed).
    pub attempts: u32,
}

/// Options for an outermost transaction, made by [`Db::transaction`].
///
/// ```no_run
/// use std::time::Duration;
/// use oncommit::{Isolation, TransactionRetry};
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// let committed = db
///     .transaction()
///     .isolation(Isolation::Serializable)
///     .lock_timeout(Duration::from_millis(500))
///     .retry(TransactionRetry::default())
///     .run_reported(async |tx| {
///         oncommit::with_conn!(tx.conn(), c => {
///             sqlx::query("UPDATE socks SET colour = 'red' WHERE id = 1").execute(c).await?.rows_affected()
///         });
///         Ok(())
///     })
///     .await?;
/// println!("committed after {} attempt(s)", committed.attempts);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a transaction builder does nothing until run or begin is called"]
pub struct TxBuilder<'d> {
    db: &'d Db,
    isolation: Option<Isolation>,
    read_only: bool,
    durable: bool,
    lock_timeout: Option<Duration>,
    statement_timeout: Option<Duration>,
    retry: TransactionRetry,
}

impl<'d> TxBuilder<'d> {
    pub(crate) fn new(db: &'d Db) -> Self {
        TxBuilder {
            db,
            isolation: None,
            read_only: false,
            durable: false,
            lock_timeout: None,
            statement_timeout: None,
            retry: TransactionRetry::never(),
        }
    }

    /// The isolation level (default: the server's, read committed on PostgreSQL).
    pub fn isolation(mut self, level: Isolation) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Refuse writes: `READ ONLY` on PostgreSQL, `PRAGMA query_only` and a deferred
    /// `BEGIN` (no write lock taken) on SQLite.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Refuse to run inside another transaction of the same task on the same pool, a
    /// closure or a guard the task began ([`Error::DurableNested`]): when this commits, its
    /// data is durably committed.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Longest wait for any one lock (PostgreSQL `lock_timeout`, [`Error::LockNotAvailable`]);
    /// on SQLite, the busy timeout while this transaction takes the database write lock
    /// ([`Error::Busy`]). Zero means "do not wait" (1 ms on PostgreSQL, where 0 disables it).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Longest run of any one statement (PostgreSQL `statement_timeout`,
    /// [`Error::StatementTimeout`]). Not available on SQLite: [`Error::Unsupported`].
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Run the closure again on retryable errors. Only for [`TxBuilder::run`] and
    /// [`TxBuilder::run_reported`]: a guard cannot be replayed.
    pub fn retry(mut self, retry: TransactionRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Begins the transaction and returns its guard.
    pub async fn begin(self) -> Result<Tx<'static>> {
        if self.retry != TransactionRetry::never() {
            return Err(Error::InvalidTransactionOptions(
                "retry needs the closure form (run), a guard cannot be replayed",
            ));
        }
        self.check_durable()?;
        let mut tx = self.begin_attempt(1).await?;
        tx.register_guard();
        Ok(tx)
    }

    /// Runs `f` in the transaction, committing when it returns `Ok`; see [`Db::atomic`].
    pub async fn run<T, F>(self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Tx<'_>) -> Result<T>,
    {
        self.run_reported(f).await.map(|c| c.value)
    }

    /// Like [`TxBuilder::run`], and says how many attempts it took.
    pub async fn run_reported<T, F>(self, mut f: F) -> Result<Committed<T>>
    where
        F: AsyncFnMut(&mut Tx<'_>) -> Result<T>,
    {
        let (mut source, mut attempts) = ScopeSource::Outermost(self).start()?;
        loop {
            let (mut tx, marker) = source.begin(&attempts).await?;
            let result = run_in(marker, f(&mut tx)).await;
            let attempt = attempts.number();
            if let Some(done) = attempts.finish(tx, result).await {
                return done.map(|value| Committed { value, attempts: attempt });
            }
        }
    }

    pub(super) fn db(&self) -> &'d Db {
        self.db
    }

    pub(super) fn check_durable(&self) -> Result<()> {
        if self.durable && in_scope_of(self.db) { Err(Error::DurableNested) } else { Ok(()) }
    }

    pub(super) fn retry_policy(&self) -> TransactionRetry {
        self.retry
    }

    pub(super) async fn begin_attempt(&self, attempt: u32) -> Result<Tx<'static>> {
        let span = crate::trace::transaction_span(self.db.backend(), self.isolation, attempt);
        let (begin, reset) = self.begin_sql()?;
        // SQLite writers of this process take turns before BEGIN IMMEDIATE (see Db::write_gate).
        let gate = if self.read_only {
            None
        } else {
            self.db.write_gate(self.lock_timeout.unwrap_or(SQLITE_BUSY_TIMEOUT)).await?
        };
        let mut conn = self.db.acquire().await.inspect_err(|err| self.db.saw(err))?;
        if let Err(err) = conn.begin_tracked(begin).await {
            // Half-applied settings or a half-open transaction must not reach the pool.
            conn.close_on_drop();
            self.db.saw(&err);
            return Err(err);
        }
        Ok(Tx::outermost(TxState::new(self.db.clone(), conn, attempt, reset, gate, span)))
    }

    /// The statements that open the transaction, and for SQLite those that undo its
    /// per-connection settings afterwards.
    fn begin_sql(&self) -> Result<(String, Option<String>)> {
        let settings = BeginSettings {
            isolation: self.isolation,
            read_only: self.read_only,
            lock_timeout: self.lock_timeout,
            statement_timeout: self.statement_timeout,
            pooled: self.db.pooled_begin(),
        };
        on_backend!(self.db.backend(), begin_sql(&settings))
    }
}
