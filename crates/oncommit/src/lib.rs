#![doc = include_str!("../README.md")]
//!
//! # A map of the crate
//!
//! - [`Db`] (`db`): a pool over PostgreSQL or SQLite, chosen by URL; migrations (`migrate`).
//! - [`Tx`], [`TxBuilder`] (`transaction`): scopes, savepoints, isolation, timeouts, retry.
//! - hooks (`hooks`): `on_commit` callbacks with Django's semantics.
//! - [`Lock`] (`lock`): row-lock clauses and deterministic-order locking.
//! - [`Retry`] (`retry`): when a transaction runs again.
//! - [`enum@Error`] (`error`): the one error type, with database errors classified.

mod conn;
mod db;
mod error;
mod hooks;
mod lock;
pub mod migrate;
mod retry;
pub mod transaction;

pub use conn::{Conn, PoolConn};
pub use db::{Backend, DEFAULT_URL, Db, DbOptions, SQLITE_BUSY_TIMEOUT};
pub use error::{BoxError, Error, Result};
pub use hooks::HookOutput;
pub use lock::{Lock, LockStrength, LockWait};
pub use retry::Retry;
pub use transaction::{Committed, Isolation, Tx, TxBuilder};
