#![doc = include_str!("../../../../docs/transactions.md")]

mod builder;
mod scope;
mod tx;

pub use builder::{Committed, Isolation, TxBuilder};
pub use scope::ScopeMarker;
pub(crate) use scope::{OpenGuards, defer_hook, in_scope_of};
pub use tx::Tx;
