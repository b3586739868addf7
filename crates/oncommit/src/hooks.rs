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

type SyncFn = Box<dyn FnOnce() -> Result<(), BoxError> + Send>;
type AsyncFut = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

enum Body {
    Sync(SyncFn),
    Async(AsyncFut),
}

/// One registered callback.
pub(crate) struct Hook {
    body: Body,
    /// Whether a failure is logged (and the rest still run) instead of stopping the run.
    robust: bool,
}

impl Hook {
    pub(crate) fn sync<R: HookOutput>(f: impl FnOnce() -> R + Send + 'static, robust: bool) -> Hook {
        Hook { body: Body::Sync(Box::new(move || f().into_result())), robust }
    }

    pub(crate) fn future<R: HookOutput>(fut: impl Future<Output = R> + Send + 'static, robust: bool) -> Hook {
        Hook { body: Body::Async(Box::pin(async move { fut.await.into_result() })), robust }
    }

    async fn call(self) -> Result<(), BoxError> {
        let outcome = match self.body {
            Body::Sync(f) => std::panic::catch_unwind(AssertUnwindSafe(f)),
            Body::Async(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        };
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

    /// Runs every hook in registration order, after the outermost commit.
    pub(crate) async fn run(self) -> Result<()> {
        for (index, (_, hook)) in self.pending.into_iter().enumerate() {
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
}

/// Outside a transaction: runs `f` at once.
pub(crate) fn run_now<R: HookOutput>(f: impl FnOnce() -> R) -> Result<()> {
    std::panic::catch_unwind(AssertUnwindSafe(|| f().into_result()))
        .unwrap_or_else(|panic| Err(panic_message(panic).into()))
        .map_err(|source| Error::Hook { index: 0, source })
}

/// Outside a transaction: awaits `fut` at once.
pub(crate) async fn run_now_async<R: HookOutput>(fut: impl Future<Output = R> + Send + 'static) -> Result<()> {
    Hook::future(fut, false).call().await.map_err(|source| Error::Hook { index: 0, source })
}
