//! Capturing `on_commit` hooks in tests (Django's `captureOnCommitCallbacks`): the hooks of
//! transactions that commit inside a future are kept instead of run, to be counted and then
//! run when the test says.

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::hooks::{Hook, run_in_order};

tokio::task_local! {
    /// Where committed transactions of the current task put their hooks, while captured.
    static CAPTURE: Arc<Mutex<Vec<Hook>>>;
}

/// The `on_commit` hooks captured by [`capture_on_commit`], in the order they would have run.
#[must_use = "captured hooks run only when `run` is called"]
pub struct CapturedHooks {
    hooks: Vec<Hook>,
}

impl CapturedHooks {
    /// How many hooks were captured.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Whether no hook was captured (no transaction that committed registered one).
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Runs the hooks in order, as the commits would have: the first failure of a hook that
    /// is not robust stops the rest and is returned as [`Error::Hook`](crate::Error::Hook)
    /// (its `index` counts from the first captured hook); a robust hook's failure is logged.
    /// Hooks those hooks register run as they would outside a test.
    pub async fn run(self) -> Result<()> {
        run_in_order(self.hooks).await
    }
}

impl std::fmt::Debug for CapturedHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedHooks").field("len", &self.hooks.len()).finish()
    }
}

/// Runs `fut`, keeping the `on_commit` hooks of the transactions that commit in it instead
/// of running them (Django's `captureOnCommitCallbacks`); returns its output and the hooks.
///
/// Only the current task's commits are captured (a request served in it by
/// `tower::ServiceExt::oneshot` is, a task it spawns is not). Hooks of transactions that roll
/// back are discarded as always, and a hook registered outside any transaction runs at once,
/// as it does everywhere.
///
/// ```no_run
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// let (id, hooks) = oncommit::capture_on_commit(oncommit::atomic!(db, |tx| {
///     tx.on_commit(async { println!("welcome email sent") });
///     Ok(42)
/// }))
/// .await;
/// assert_eq!((id?, hooks.len()), (42, 1)); // committed, and nothing sent yet
/// hooks.run().await?; // now it is
/// # Ok(()) }
/// ```
pub async fn capture_on_commit<F: Future>(fut: F) -> (F::Output, CapturedHooks) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let output = CAPTURE.scope(captured.clone(), fut).await;
    let hooks = std::mem::take(&mut *captured.lock().unwrap_or_else(PoisonError::into_inner));
    (output, CapturedHooks { hooks })
}

/// After a commit: keeps `hooks` when the current task is capturing (returning `None`), or
/// hands them back to be run.
pub(crate) fn divert(hooks: Vec<Hook>) -> Option<Vec<Hook>> {
    match CAPTURE.try_with(Arc::clone) {
        Ok(captured) => {
            captured.lock().unwrap_or_else(PoisonError::into_inner).extend(hooks);
            None
        }
        Err(_) => Some(hooks),
    }
}
