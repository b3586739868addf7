//! [`Tx`]: an open transaction scope (the outermost transaction, or a savepoint inside it).

use sqlx::AssertSqlSafe;
#[cfg(feature = "postgres")]
use sqlx::postgres::PgConnection;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqliteConnection;

use super::after_commit::{AfterCommit, Deeds};
use super::attempts::ScopeSource;
use super::scope::Registration;
use crate::conn::{Conn, PoolConn};
use crate::db::{Backend, Db, WriteGate};
use crate::error::{Error, Result};
use crate::hooks::{Hook, HookOutput, Pending};
use std::sync::Arc;

/// An open transaction scope: the outermost transaction (level 1) or a savepoint inside it.
///
/// Run your own sqlx queries on [`Tx::conn`]. Finish a guard with [`Tx::commit`] or
/// [`Tx::rollback`]; dropping an unfinished outermost guard rolls back (in the background,
/// closing the connection if that cannot be done). Dropping an unfinished *savepoint*
/// guard cannot roll it back synchronously, so the enclosing transaction then refuses to
/// commit ([`Error::AbandonedSavepoint`]): prefer [`Tx::atomic`], which always finishes the
/// savepoint.
pub struct Tx<'p> {
    state: State<'p>,
    /// 1 for the outermost transaction, 2 for a savepoint in it, and so on.
    level: u32,
    /// Still to be committed or rolled back; `Drop` cleans up when this is still true.
    open: bool,
}

enum State<'p> {
    Owned(Box<TxState>),
    Borrowed(&'p mut TxState),
}

/// What all the scopes of one transaction share.
pub(crate) struct TxState {
    /// `None` only once the outermost scope has finished and released the connection.
    conn: Option<PoolConn>,
    db: Db,
    /// Shared with the scope marker and the open-guard registry, where `db.on_commit` finds it.
    hooks: Arc<Pending>,
    /// Statements may have run whose failure oncommit did not see (the user's, or an error
    /// the caller swallowed): the commit must check the transaction is not aborted.
    unchecked: bool,
    /// For a guard: its entry among the open guards of its task, removed when it ends.
    registration: Option<Registration>,
    /// The outermost level marked to roll back instead of committing (`set_rollback`).
    rollback_mark: Option<u32>,
    /// A savepoint guard was dropped unfinished: its statements may still be in effect.
    abandoned: bool,
    /// Which run of a retried closure this is (1-based).
    attempt: u32,
    /// SQLite pragmas to restore on the connection once the transaction ends.
    reset_sql: Option<String>,
    /// What the layers above asked to happen once this commits (see `after_commit`).
    deeds: Deeds,
    /// This process's turn to write (SQLite writing transactions), held until the end.
    gate: Option<WriteGate>,
    /// The transaction's span (see `trace`), and when it began; taken when its outcome is
    /// recorded, so that happens once.
    span: tracing::Span,
    began: Option<std::time::Instant>,
}

impl TxState {
    pub(crate) fn new(
        db: Db,
        conn: PoolConn,
        attempt: u32,
        reset_sql: Option<String>,
        gate: Option<WriteGate>,
        span: tracing::Span,
    ) -> Self {
        TxState {
            conn: Some(conn),
            db,
            hooks: Arc::new(Pending::new()),
            unchecked: false,
            registration: None,
            rollback_mark: None,
            abandoned: false,
            attempt,
            reset_sql,
            deeds: Deeds::default(),
            gate,
            span,
            began: Some(std::time::Instant::now()),
        }
    }

    /// Records how the transaction ended, on its span and in the metrics (once).
    fn ended(&mut self, outcome: &'static str) {
        if let Some(began) = self.began.take() {
            crate::trace::transaction_ended(&self.span, outcome);
            crate::metrics::transaction_ended(outcome, began.elapsed());
        }
    }

    fn conn(&mut self) -> &mut PoolConn {
        self.conn.as_mut().expect("BUG: transaction used after it ended")
    }
}

/// How a transaction ends.
#[derive(Clone, Copy)]
enum Ending {
    Commit,
    Rollback,
}

/// Savepoint names are per level, so nested savepoints never shadow each other.
fn savepoint_name(level: u32) -> String {
    format!("oncommit_sp_{level}")
}

impl Tx<'static> {
    pub(crate) fn outermost(state: TxState) -> Tx<'static> {
        Tx { state: State::Owned(Box::new(state)), level: 1, open: true }
    }

    /// Records this guard as open in the current task until it ends, so `db.enqueue` there
    /// is refused and `db.on_commit` there waits for its commit.
    pub(crate) fn register_guard(&mut self) {
        let state = self.state();
        let hooks = state.hooks.clone();
        state.registration = Some(state.db.open_guards().register(hooks));
    }
}

impl<'p> Tx<'p> {
    fn state(&mut self) -> &mut TxState {
        match &mut self.state {
            State::Owned(s) => s,
            State::Borrowed(s) => s,
        }
    }

    fn state_ref(&self) -> &TxState {
        match &self.state {
            State::Owned(s) => s,
            State::Borrowed(s) => s,
        }
    }

    /// The connection, to run your own queries inside this transaction.
    ///
    /// sqlx's own `begin()` on it opens a savepoint (sqlx knows the connection is in a
    /// transaction), so code written against a plain sqlx connection nests correctly; finish
    /// what it begins before this scope ends, or the commit is refused.
    pub fn conn(&mut self) -> Conn<'_> {
        let state = self.state();
        state.unchecked = true;
        state.conn().conn()
    }

    /// The connection for oncommit's own statements, whose errors it sees: they do not
    /// make the commit check for a failed transaction first.
    pub(crate) fn own_conn(&mut self) -> Conn<'_> {
        self.state().conn().conn()
    }

    /// One of oncommit's own statements failed: the transaction may be aborted.
    pub(crate) fn own_statement_failed(&mut self) {
        self.state().unchecked = true;
    }

    /// The PostgreSQL connection, or [`Error::Unsupported`] on SQLite.
    #[cfg(feature = "postgres")]
    pub fn postgres(&mut self) -> Result<&mut PgConnection> {
        self.conn().postgres()
    }

    /// The SQLite connection, or [`Error::Unsupported`] on PostgreSQL.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(&mut self) -> Result<&mut SqliteConnection> {
        self.conn().sqlite()
    }

    /// The backend of this transaction.
    pub fn backend(&self) -> Backend {
        self.state_ref().db.backend()
    }

    /// The pool this transaction came from.
    pub fn db(&self) -> &Db {
        &self.state_ref().db
    }

    /// 1 for the outermost transaction, 2 inside one savepoint, and so on.
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Which run of a retried transaction closure this is, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.state_ref().attempt
    }

    /// Registers `hook` to be awaited after the outermost transaction commits (Django's
    /// `transaction.on_commit`). If it fails (an error or a panic), the error reaches the
    /// committer as [`Error::Hook`](crate::Error::Hook) and later hooks do not run.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db, mailer: tokio::sync::mpsc::Sender<i64>) -> oncommit::Result<()> {
    /// db.atomic(async |tx| {
    ///     let order_id = 42; // … inserted above
    ///     let mailer = mailer.clone(); // the closure may run again, on a retry
    ///     tx.on_commit(async move { mailer.send(order_id).await });
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub fn on_commit<R: HookOutput>(&mut self, hook: impl Future<Output = R> + Send + 'static) {
        self.push_hook(Hook::new(hook, false));
    }

    /// Like [`Tx::on_commit`], but a failure is logged and the later hooks still run
    /// (Django's `robust=True`).
    pub fn on_commit_robust<R: HookOutput>(&mut self, hook: impl Future<Output = R> + Send + 'static) {
        self.push_hook(Hook::new(hook, true));
    }

    fn push_hook(&mut self, hook: Hook) {
        let level = self.level;
        self.state().hooks.push(level, hook);
    }

    /// The outermost transaction's span (a savepoint shares it).
    pub(crate) fn span(&self) -> tracing::Span {
        self.state_ref().span.clone()
    }

    pub(crate) fn pending_hooks(&mut self) -> Arc<Pending> {
        self.state().hooks.clone()
    }

    /// Marks this scope to roll back when it ends instead of committing, without an error
    /// (Django's `transaction.set_rollback(True)`): a savepoint rolls back to where it began
    /// and the enclosing transaction goes on; the outermost transaction rolls back whole and
    /// its hooks never run. [`Tx::commit`] and the closure forms then return `Ok` as usual.
    /// `set_rollback(false)` takes back a mark set on this scope or inside it.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// let checked = db.atomic(async |tx| {
    ///     oncommit::with_conn!(tx.conn(), c => {
    ///         sqlx::query("UPDATE accounts SET balance = balance - 10").execute(c).await?;
    ///     });
    ///     tx.set_rollback(true); // a dry run: see what would happen, keep nothing
    ///     Ok("dry run")
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub fn set_rollback(&mut self, rollback: bool) {
        let level = self.level;
        let state = self.state();
        state.rollback_mark = match (rollback, state.rollback_mark) {
            (true, Some(marked)) => Some(marked.min(level)),
            (true, None) => Some(level),
            (false, Some(marked)) if marked >= level => None,
            (false, kept) => kept,
        };
    }

    /// Whether this scope, or one enclosing it, is marked to roll back (see
    /// [`Tx::set_rollback`], [`Tx::atomic_without_savepoint`]).
    pub fn will_roll_back(&self) -> bool {
        self.state_ref().rollback_mark.is_some_and(|marked| marked <= self.level)
    }

    /// Whether this scope must roll back as it ends; clears the mark that says so.
    fn take_rollback_mark(&mut self) -> bool {
        let level = self.level;
        let state = self.state();
        if state.rollback_mark.is_some_and(|marked| marked >= level) {
            state.rollback_mark = None;
            true
        } else {
            false
        }
    }

    /// Opens a savepoint and returns its guard. Prefer [`Tx::atomic`], which cannot leave
    /// the savepoint unfinished.
    pub async fn savepoint(&mut self) -> Result<Tx<'_>> {
        let level = self.level + 1;
        let state = self.state();
        if state.abandoned {
            return Err(Error::AbandonedSavepoint);
        }
        state.conn().batch(AssertSqlSafe(format!("SAVEPOINT {}", savepoint_name(level)))).await?;
        state.hooks.enter(level);
        Ok(Tx { state: State::Borrowed(state), level, open: true })
    }

    /// Runs `f` in a savepoint: released when `f` returns `Ok`, rolled back when it returns
    /// `Err` (the enclosing transaction goes on, and the savepoint's hooks are discarded).
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.atomic(async |tx| {
    ///     let inner = tx.atomic(async |sp| {
    ///         sp.on_commit(async { println!("never runs") });
    ///         Err::<(), _>(oncommit::Error::app("changed my mind"))
    ///     }).await;
    ///     assert!(inner.is_err());
    ///     tx.on_commit(async { println!("runs after the outer commit") });
    ///     Ok(())
    /// }).await
    /// # }
    /// ```
    pub async fn atomic<T, F>(&mut self, mut f: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Tx<'_>) -> Result<T>,
    {
        let (mut source, mut attempts) = ScopeSource::Nested(self).start()?;
        let (mut sp, _) = source.begin(&attempts).await?;
        let result = f(&mut sp).await;
        attempts.finish(sp, result).await.expect("a savepoint is never retried")
    }

    /// Commits: the outermost transaction commits and then runs its hooks; a savepoint is
    /// released and its hooks join the enclosing scope's.
    ///
    /// Errors: [`Error::CommitRolledBack`] when an earlier statement had failed (nothing was
    /// committed), [`Error::CommitOutcomeUnknown`] when the connection broke mid-commit,
    /// [`Error::Hook`] when the data committed but a hook failed.
    ///
    /// A scope marked with [`Tx::set_rollback`] rolls back here instead, and returns `Ok`.
    pub async fn commit(mut self) -> Result<()> {
        if self.take_rollback_mark() {
            return if self.level == 1 { self.rollback_outermost().await } else { self.rollback_savepoint().await };
        }
        if self.level == 1 { self.commit_outermost().await } else { self.release_savepoint().await }
    }

    /// Runs `f` in this scope without a savepoint (Django's `atomic(savepoint=False)`):
    /// cheaper, but when `f` fails nothing can be undone on its own, so this scope is marked
    /// to roll back as it ends (see [`Tx::set_rollback`]) and the error is returned. Hooks
    /// registered in `f` belong to this scope.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.atomic(async |tx| {
    ///     let failed = tx.atomic_without_savepoint(async |tx| {
    ///         tx.on_commit(async { println!("never runs") });
    ///         Err::<(), _>(oncommit::Error::app("step two failed"))
    ///     }).await;
    ///     assert!(failed.is_err() && tx.will_roll_back());
    ///     Ok(())
    /// }).await?; // Ok, and nothing was committed
    /// # Ok(()) }
    /// ```
    pub async fn atomic_without_savepoint<T, F>(&mut self, mut f: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Tx<'_>) -> Result<T>,
    {
        let result = f(self).await;
        if result.is_err() {
            self.set_rollback(true);
        }
        result
    }

    /// Rolls back this scope: the whole transaction, or just this savepoint. Its hooks are
    /// discarded.
    pub async fn rollback(mut self) -> Result<()> {
        if self.level == 1 { self.rollback_outermost().await } else { self.rollback_savepoint().await }
    }

    async fn rollback_outermost(&mut self) -> Result<()> {
        self.state().ended("rolled_back");
        drop(self.end_hooks());
        let result = self.end(Ending::Rollback).await;
        self.open = false;
        result
    }

    async fn commit_outermost(&mut self) -> Result<()> {
        if self.state().abandoned {
            self.state().ended("failed");
            drop(self.end_hooks());
            self.end(Ending::Rollback).await.ok();
            self.open = false;
            return Err(Error::AbandonedSavepoint);
        }
        match self.end(Ending::Commit).await {
            Ok(()) => {
                self.open = false;
                let hooks = self.end_hooks();
                let state = self.state();
                state.ended("committed");
                // Give the connection (and the turn to write) back before the hooks run:
                // they may need them.
                state.conn = None;
                state.gate = None;
                std::mem::take(&mut state.deeds).run(&state.db);
                hooks.run().await
            }
            Err(err) => {
                self.open = false;
                self.state().ended("failed");
                drop(self.end_hooks());
                // A commit that failed because the server went away, or became read-only
                // (a failover), sends the pool looking for the current one.
                self.state().db.saw(&err);
                Err(match err {
                    Error::ConnectionLost(_) => Error::CommitOutcomeUnknown(Box::new(err)),
                    Error::InFailedTransaction => {
                        self.end(Ending::Rollback).await?;
                        Error::CommitRolledBack
                    }
                    other => {
                        // PostgreSQL ends the transaction when COMMIT fails, but sqlx still
                        // counts it open; SQLite may keep it open (a busy COMMIT); and a
                        // commit refused before it was sent left it open. End it in any case.
                        self.end(Ending::Rollback).await.ok();
                        other
                    }
                })
            }
        }
    }

    /// The outermost transaction is ending: takes its hooks (to run after a commit, or to
    /// drop), after leaving the registry of open guards, so that `db.on_commit` called from
    /// now on (by a hook, say) runs at once instead of joining a list nobody will run.
    fn end_hooks(&mut self) -> crate::hooks::Hooks {
        let state = self.state();
        state.registration = None;
        state.hooks.close()
    }

    /// Ends the transaction, then restores any per-transaction SQLite settings. A
    /// connection that breaks here is not returned to the pool.
    async fn end(&mut self, ending: Ending) -> Result<()> {
        let state = self.state();
        let unchecked = state.unchecked && on_backend!(state.db.backend(), const COMMIT_HIDES_FAILURE);
        let conn = state.conn();
        let result = match ending {
            // On PostgreSQL a COMMIT of a failed transaction succeeds with the tag ROLLBACK,
            // which sqlx does not show us. A SELECT first fails instead (25P02). Only needed
            // when statements ran that oncommit did not see succeed.
            Ending::Commit if unchecked => match conn.batch("SELECT 1").await {
                Ok(()) => conn.commit_tracked().await,
                Err(err) => Err(err),
            },
            Ending::Commit => conn.commit_tracked().await,
            Ending::Rollback => conn.rollback_tracked().await,
        };
        if let Err(err @ Error::ConnectionLost(_)) = &result {
            conn.close_on_drop();
            // The server went away under the transaction (a failover, perhaps).
            state.db.saw(err);
            return result;
        }
        if let Some(reset) = &state.reset_sql {
            let conn = state.conn.as_mut().expect("BUG: connection taken before reset");
            if conn.batch(AssertSqlSafe(reset.clone())).await.is_err() {
                conn.close_on_drop();
            }
        }
        result
    }

    async fn release_savepoint(&mut self) -> Result<()> {
        let level = self.level;
        let state = self.state();
        let name = savepoint_name(level);
        match state.conn().batch(AssertSqlSafe(format!("RELEASE SAVEPOINT {name}"))).await {
            Ok(()) => {
                state.hooks.merge_into_parent(level);
                self.open = false;
                Ok(())
            }
            Err(Error::InFailedTransaction) => {
                // Like a top-level COMMIT of a failed transaction: undo the savepoint's work
                // so the enclosing transaction can go on, and say nothing was committed.
                self.rollback_savepoint().await?;
                Err(Error::CommitRolledBack)
            }
            Err(err) => Err(err),
        }
    }

    async fn rollback_savepoint(&mut self) -> Result<()> {
        let level = self.level;
        let state = self.state();
        let name = savepoint_name(level);
        state.hooks.discard_from(level);
        let sql = format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}");
        state.conn().batch(AssertSqlSafe(sql)).await?;
        self.open = false;
        Ok(())
    }

    /// The deed of kind `D` to do once this transaction commits, made with `make` if there
    /// is none yet (see `after_commit`).
    pub(crate) fn after_commit<D: AfterCommit>(&mut self, make: impl FnOnce() -> D) -> &mut D {
        self.state().deeds.of(make)
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let level = self.level;
        match &mut self.state {
            State::Borrowed(state) => {
                state.abandoned = true;
                state.hooks.discard_from(level);
                tracing::warn!(level, "savepoint dropped unfinished; its transaction will refuse to commit");
            }
            State::Owned(state) => {
                state.ended("rolled_back");
                if let Some(conn) = state.conn.take() {
                    rollback_in_background(conn, state.reset_sql.take(), state.gate.take());
                }
            }
        }
    }
}

/// Rolls back a dropped transaction without blocking the dropper. If that cannot happen
/// (no runtime, or the runtime stops first), the connection is closed instead, which makes
/// the server roll back: it is never returned to the pool mid-transaction.
fn rollback_in_background(conn: PoolConn, reset_sql: Option<String>, gate: Option<WriteGate>) {
    struct CloseUnlessRolledBack(Option<PoolConn>);
    impl Drop for CloseUnlessRolledBack {
        fn drop(&mut self) {
            if let Some(conn) = &mut self.0 {
                conn.close_on_drop();
            }
        }
    }
    let mut guard = CloseUnlessRolledBack(Some(conn));
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // the guard closes the connection
    };
    runtime.spawn(async move {
        let Some(conn) = guard.0.as_mut() else { return };
        if conn.rollback_tracked().await.is_err() {
            return;
        }
        if let Some(reset) = reset_sql {
            if conn.batch(AssertSqlSafe(reset)).await.is_err() {
                return;
            }
        }
        drop(guard.0.take()); // back to the pool, clean
        drop(gate); // and only then may the next writer of this process go
    });
}
