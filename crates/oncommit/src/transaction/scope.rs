//! Which transaction the running code is inside, so that `Db` methods called there act on
//! it: `db.enqueue` is refused (it would race the open transaction, seed 000), `durable`
//! refuses to nest, and `db.on_commit` waits for that transaction's commit.
//!
//! Closure-form scopes are marked in a task-local around the closure's future. A guard
//! (`db.begin()`) cannot wrap the code that uses it, so it is recorded on the `Db` under the
//! tokio task that began it (or the thread, outside any task) until it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::db::Db;
use crate::hooks::{Hook, Pending};

tokio::task_local! {
    /// The scopes the current task runs inside, innermost last.
    static OPEN_SCOPES: Vec<Scope>;
}

#[derive(Clone)]
struct Scope {
    db: usize,
    /// Whether the scope's transaction is open (a web request opens its own lazily).
    open: Arc<AtomicBool>,
    /// Where `db.on_commit` puts its hooks; `None` for integrations that hold a guard,
    /// which is then found among the open guards.
    hooks: Option<Arc<Pending>>,
}

/// Marks a future as running inside a transaction scope of one [`Db`], for integrations
/// that hold a transaction on behalf of a whole unit of work (a web request) and open it
/// lazily: once [`ScopeMarker::set_open`] says it is open, `db.enqueue` is refused and
/// `durable` scopes refuse to run in that future, as inside a transaction closure.
#[derive(Clone)]
pub struct ScopeMarker {
    scope: Scope,
}

impl std::fmt::Debug for ScopeMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeMarker").field("open", &self.scope.open.load(Ordering::Relaxed)).finish()
    }
}

impl ScopeMarker {
    /// A marker for `db`, closed until [`ScopeMarker::set_open`].
    pub fn new(db: &Db) -> ScopeMarker {
        ScopeMarker { scope: Scope { db: db.id(), open: Arc::new(AtomicBool::new(false)), hooks: None } }
    }

    /// The scope of a closure-form transaction, open from the start.
    pub(crate) fn of_closure(db: &Db, hooks: Arc<Pending>) -> ScopeMarker {
        ScopeMarker { scope: Scope { db: db.id(), open: Arc::new(AtomicBool::new(true)), hooks: Some(hooks) } }
    }

    /// Says whether the scope's transaction is open now.
    pub fn set_open(&self, open: bool) {
        self.scope.open.store(open, Ordering::Relaxed);
    }

    /// Runs `fut` inside the scope.
    pub async fn run<F: Future>(&self, fut: F) -> F::Output {
        let mut scopes = OPEN_SCOPES.try_with(Clone::clone).unwrap_or_default();
        scopes.push(self.scope.clone());
        OPEN_SCOPES.scope(scopes, fut).await
    }
}

/// The innermost open scope on `db` of the current task that satisfies `also`.
fn innermost_open(db: &Db, also: impl Fn(&Scope) -> bool) -> Option<Scope> {
    OPEN_SCOPES
        .try_with(|scopes| {
            scopes.iter().rev().find(|s| s.db == db.id() && s.open.load(Ordering::Relaxed) && also(s)).cloned()
        })
        .ok()
        .flatten()
}

/// Whether the current code runs inside an open transaction scope on `db`.
pub(crate) fn in_scope_of(db: &Db) -> bool {
    innermost_open(db, |_| true).is_some() || db.open_guards().holds_one()
}

/// Hands `hook` to the innermost open transaction of `db` the current code runs inside, to
/// run after its commit; gives it back when there is none (it is then to run at once).
pub(crate) fn defer_hook(db: &Db, hook: Hook) -> Result<(), Hook> {
    match innermost_open(db, |s| s.hooks.is_some()).and_then(|s| s.hooks) {
        Some(pending) => pending.push_innermost(hook),
        None => db.open_guards().defer(hook),
    }
}

/// Who holds a guard: the tokio task that began it, or the thread outside any task
/// (`block_on`, `#[tokio::main]`'s body).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    Task(tokio::task::Id),
    Thread(std::thread::ThreadId),
}

impl Owner {
    fn current() -> Owner {
        match tokio::task::try_id() {
            Some(id) => Owner::Task(id),
            None => Owner::Thread(std::thread::current().id()),
        }
    }
}

/// The open guard-form transactions of one database (shared by the pools derived from it).
#[derive(Default)]
pub(crate) struct OpenGuards {
    entries: Mutex<Vec<(Owner, u64, Arc<Pending>)>>,
    next: AtomicU64,
}

impl OpenGuards {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Owner, u64, Arc<Pending>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a guard begun by the current task, until the registration drops.
    pub(crate) fn register(self: &Arc<Self>, hooks: Arc<Pending>) -> Registration {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((Owner::current(), token, hooks));
        Registration { guards: self.clone(), token }
    }

    fn holds_one(&self) -> bool {
        let owner = Owner::current();
        self.lock().iter().any(|(o, _, _)| *o == owner)
    }

    /// Adds `hook` to the newest guard of the current task. Under the registry's lock, so
    /// that the guard cannot end in between (it deregisters before closing its hooks).
    fn defer(&self, hook: Hook) -> Result<(), Hook> {
        let owner = Owner::current();
        let entries = self.lock();
        match entries.iter().rev().find(|(o, _, _)| *o == owner) {
            Some((_, _, pending)) => pending.push_innermost(hook),
            None => Err(hook),
        }
    }
}

/// A guard's place among the open guards; dropping it removes it.
pub(crate) struct Registration {
    guards: Arc<OpenGuards>,
    token: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.guards.lock().retain(|(_, token, _)| *token != self.token);
    }
}
