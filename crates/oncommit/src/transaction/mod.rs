#![doc = include_str!("../../../../docs/transactions.md")]

mod builder;
mod tx;

pub(crate) use builder::in_scope_of;
pub use builder::{Committed, Isolation, ScopeMarker, TxBuilder};
pub use tx::Tx;
