#![doc = include_str!("../../../../docs/transactions.md")]

mod builder;
mod tx;

pub use builder::{Committed, Isolation, TxBuilder};
pub use tx::Tx;
