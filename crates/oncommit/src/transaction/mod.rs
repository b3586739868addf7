//! Transaction scopes: the outermost transaction and savepoints inside it, their options,
//! and the retry loop. The guide is `docs/transactions.md`.

mod builder;
mod tx;

pub use builder::{Committed, Isolation, TxBuilder};
pub use tx::Tx;
