//! `on_commit` hooks with Django's semantics.
//!
//! - Inside a transaction a hook runs after the **outermost** commit, in registration order.
//! - A hook registered inside a savepoint that rolls back is discarded; the outer ones stay.
//! - If the transaction rolls back, or its commit fails, no hook runs.
//! - Outside any transaction a hook runs at once.
//! - A failing hook (error or panic) stops the hooks after it and its error reaches the
//!   caller as [`Error::Hook`], which says the data *is* committed; a `robust` hook's failure
//!   is logged and the rest still run.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures_util::FutureExt;

use crate::error::{BoxError, Error, Result};

/// What a hook may return: nothing, or a `Result` whose error is reported.
pub trait HookOutput: Send + 'static {
    /// Turns the hook's return value into success or its error.
    fn into_result(self) -> Result<(), BoxError>;
}

impl HookOutput for () {
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError> + Send + 'static> HookOutput for Result<(), E> {
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

type HookFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// One registered callback.
pub(crate) struct Hook {
    body: HookFuture,
    /// Whether a failure is logged (and the rest still run) instead of stopping the run.
    robust: bool,
}

impl Hook {
    pub(crate) fn new<R: HookOutput>(fut: impl Future<Output = R> + Send + 'static, robust: bool) -> Hook {
        Hook { body: Box::pin(async move { fut.await.into_result() }), robust }
    }

    async fn call(self) -> Result<(), BoxError> {
        let outcome = AssertUnwindSafe(self.body).catch_unwind().await;
        outcome.unwrap_or_else(|panic| Err(panic_message(panic).into()))
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    format!("hook panicked: {text}")
}

/// The hooks of one transaction, each tagged with the scope level it was registered at.
#[derive(Default)]
pub(crate) struct Hooks {
    pending: Vec<(u32, Hook)>,
}

impl Hooks {
    pub(crate) fn push(&mut self, level: u32, hook: Hook) {
        self.pending.push((level, hook));
    }

    /// The savepoint at `level` rolled back: its hooks, and those of savepoints inside it, go.
    pub(crate) fn discard_from(&mut self, level: u32) {
        self.pending.retain(|(l, _)| *l < level);
    }

    /// The savepoint at `level` was released: its hooks now belong to the enclosing scope.
    pub(crate) fn merge_into_parent(&mut self, level: u32) {
        for (l, _) in &mut self.pending {
            if *l >= level {
                *l = level - 1;
            }
        }
    }

    /// Runs every hook in registration order, after the outermost commit (or keeps them,
    /// when a test captures them: see `hook_capture`).
    pub(crate) async fn run(self) -> Result<()> {
        let hooks = self.pending.into_iter().map(|(_, hook)| hook).collect();
        match crate::hook_capture::divert(hooks) {
            Some(hooks) => run_in_order(hooks).await,
            None => Ok(()),
        }
    }
}

/// Runs `hooks` in order: a robust hook's failure is logged, any other stops the rest.
pub(crate) async fn run_in_order(hooks: Vec<Hook>) -> Result<()> {
    for (index, hook) in hooks.into_iter().enumerate() {
        let robust = hook.robust;
        if let Err(source) = hook.call().await {
            if robust {
                tracing::error!(index, error = %source, "robust on_commit hook failed; the transaction is committed");
            } else {
                return Err(Error::Hook { index, source });
            }
        }
    }
    Ok(())
}

/// The hooks of one open transaction, shared with `Db::on_commit`, which reaches them from
/// the transaction's scope without holding the `Tx`.
pub(crate) struct Pending {
    inner: Mutex<PendingInner>,
}

struct PendingInner {
    hooks: Hooks,
    /// The innermost open scope: where a hook registered through the `Db` belongs.
    level: u32,
    /// The transaction has ended: a hook offered now must run at once (or not at all).
    closed: bool,
}

impl Pending {
    pub(crate) fn new() -> Pending {
        Pending { inner: Mutex::new(PendingInner { hooks: Hooks::default(), level: 1, closed: false }) }
    }

    /// The lock is never held across an await, so a poisoned one only means a panic in a
    /// hook constructor; the list itself is intact.
    fn lock(&self) -> MutexGuard<'_, PendingInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn push(&self, level: u32, hook: Hook) {
        self.lock().hooks.push(level, hook);
    }

    /// Adds `hook` to the innermost open scope; hands it back when the transaction has ended.
    pub(crate) fn push_innermost(&self, hook: Hook) -> std::result::Result<(), Hook> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(hook);
        }
        let level = inner.level;
        inner.hooks.push(level, hook);
        Ok(())
    }

    /// The scope at `level` is now the innermost open one.
    pub(crate) fn enter(&self, level: u32) {
        self.lock().level = level;
    }

    /// The savepoint at `level` rolled back: its hooks go, its parent is innermost again.
    pub(crate) fn discard_from(&self, level: u32) {
        let mut inner = self.lock();
        inner.hooks.discard_from(level);
        inner.level = level - 1;
    }

    /// The savepoint at `level` was released: its hooks belong to the parent, now innermost.
    pub(crate) fn merge_into_parent(&self, level: u32) {
        let mut inner = self.lock();
        inner.hooks.merge_into_parent(level);
        inner.level = level - 1;
    }

    /// The transaction ended: takes the hooks (to run after a commit, or to drop).
    pub(crate) fn close(&self) -> Hooks {
        let mut inner = self.lock();
        inner.closed = true;
        std::mem::take(&mut inner.hooks)
    }
}

/// Outside a transaction: runs `hook` at once; a robust one's failure is logged.
pub(crate) async fn run_hook_now(hook: Hook) -> Result<()> {
    let robust = hook.robust;
    match hook.call().await {
        Err(source) if robust => {
            tracing::error!(error = %source, "robust on_commit hook failed");
            Ok(())
        }
        outcome => outcome.map_err(|source| Error::Hook { index: 0, source }),
    }
}
