//! Row locks: `FOR UPDATE` and friends without gluing strings by hand, and locking a set of
//! rows in one deterministic order (the cure for the deadlock of opposite lock orders).
//!
//! SQLite has no row locks. A writing transaction there holds the database write lock from
//! its `BEGIN IMMEDIATE`, so no other writer can touch any row until it ends: the clause is
//! left out, `NOWAIT` and `SKIP LOCKED` have nothing to act on, and a second writer waits at
//! its `BEGIN` (up to the busy timeout, or [`TxBuilder::lock_timeout`](crate::TxBuilder::lock_timeout)).

use sqlx::AssertSqlSafe;

use crate::Backend;
use crate::error::Result;
use crate::transaction::Tx;

pub use crate::driver::options::{Lock, LockStrength, LockWait};

impl Lock {
    fn new(strength: LockStrength) -> Lock {
        Lock { strength, wait: LockWait::Wait, of: Vec::new() }
    }

    /// `FOR UPDATE`.
    pub fn update() -> Lock {
        Lock::new(LockStrength::Update)
    }

    /// `FOR NO KEY UPDATE`.
    pub fn no_key_update() -> Lock {
        Lock::new(LockStrength::NoKeyUpdate)
    }

    /// `FOR SHARE`.
    pub fn share() -> Lock {
        Lock::new(LockStrength::Share)
    }

    /// `FOR KEY SHARE`.
    pub fn key_share() -> Lock {
        Lock::new(LockStrength::KeyShare)
    }

    /// `NOWAIT`: fail at once if a row is locked.
    pub fn nowait(mut self) -> Lock {
        self.wait = LockWait::NoWait;
        self
    }

    /// `SKIP LOCKED`: leave locked rows out.
    pub fn skip_locked(mut self) -> Lock {
        self.wait = LockWait::SkipLocked;
        self
    }

    /// `OF table`: lock only the rows of this table (or alias); may be called several times.
    /// The name is quoted, so it cannot inject SQL.
    pub fn of(mut self, table: &str) -> Lock {
        self.of.push(table.to_owned());
        self
    }

    /// The clause for `backend`, with a leading space (empty on SQLite).
    pub fn clause(&self, backend: Backend) -> String {
        on_backend!(backend, lock_clause(self))
    }

    /// `select` followed by this clause, ready for `sqlx::query`. Taking a `&'static str`
    /// keeps the query free of runtime-built SQL.
    pub fn apply(&self, backend: Backend, select: &'static str) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!("{select}{}", self.clause(backend)))
    }
}

impl Tx<'_> {
    /// Locks the rows of `table` whose integer column `key` is in `keys`, **in ascending key
    /// order**, and returns the keys locked (fewer with `SKIP LOCKED`, or when rows are
    /// missing). Two transactions that lock overlapping sets this way never deadlock on
    /// them, whatever order their callers listed the keys in.
    ///
    /// `table` and `key` are quoted identifiers.
    pub async fn lock_in_order(&mut self, table: &str, key: &str, keys: &[i64], lock: &Lock) -> Result<Vec<i64>> {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let (table, key) = (quote(table), quote(key));
        let clause = lock.clause(self.backend());
        let locked = on_driver!(self.conn(), rows_lock_in_order(&table, &key, keys, &clause))?;
        Ok(locked)
    }
}
