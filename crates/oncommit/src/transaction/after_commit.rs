//! What the layers above transactions ask to happen once a transaction commits, before the
//! user's `on_commit` hooks run: the job queue wakes its workers this way. The transaction
//! core knows these only by this trait; it runs them and forgets them.
//!
//! Unlike a user's hook, one of these is merged across the transaction: a layer asks for
//! its own kind once ([`Tx::after_commit`](super::Tx)) and adds to it, so a transaction that
//! enqueues a thousand jobs wakes the workers once. It cannot fail, and it must return at
//! once (hand slow work to a task).

use std::any::Any;

use crate::db::Db;

/// A deed to do once the transaction has committed, the connection and the write turn
/// given back.
pub(crate) trait AfterCommit: Any + Send {
    /// Does it; called once, after the commit on `db` succeeded (never after a rollback).
    fn committed(self: Box<Self>, db: &Db);

    /// Itself, to find a deed of its kind and add to it.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The deeds of one transaction, at most one of each kind.
#[derive(Default)]
pub(crate) struct Deeds(Vec<Box<dyn AfterCommit>>);

impl Deeds {
    /// The deed of kind `D`, made with `make` if the transaction has none yet.
    pub(crate) fn of<D: AfterCommit>(&mut self, make: impl FnOnce() -> D) -> &mut D {
        let found = self.0.iter_mut().position(|deed| deed.as_any_mut().is::<D>());
        let index = match found {
            Some(index) => index,
            None => {
                self.0.push(Box::new(make()));
                self.0.len() - 1
            }
        };
        self.0[index].as_any_mut().downcast_mut::<D>().expect("a deed of the kind its type id names")
    }

    /// Does every deed, in the order their kinds were first asked for.
    pub(crate) fn run(self, db: &Db) {
        for deed in self.0 {
            deed.committed(db);
        }
    }
}
