#![doc = include_str!("../../../../docs/transactions.md")]

mod after_commit;
mod atomic_macro;
mod attempts;
mod builder;
mod scope;
mod tx;

pub(crate) use after_commit::AfterCommit;
#[doc(hidden)]
pub use attempts::{Attempts, Inside, IntoScope, ScopeSource, body, run_in};
pub use builder::{Committed, Isolation, TxBuilder};
pub use scope::ScopeMarker;
pub(crate) use scope::{OpenGuards, defer_hook, in_scope_of};
pub use tx::Tx;
