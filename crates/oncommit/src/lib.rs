#![doc = include_str!("../README.md")]
//!
//! # A map of the crate
//!
//! - [`Db`] (`db`): the facade: transactions, hooks, jobs, queues, over the driver's pool;
//!   migration sets and oncommit's own (`migrate`, with `defaults`).
//! - `driver`, at the bottom: what each database needs, behind one contract
//!   (`driver::contract`: every statement oncommit sends, and each database's dialect), one
//!   module per database holding its SQL and its quirks: connecting, host lists and
//!   failover, [`Pooler`] mode, NOTIFY (`driver::postgres`); file, WAL, busy timeout, the
//!   one writer (`driver::sqlite`). Also the pool chosen by URL (`driver::pool`), the
//!   connections ([`Conn`], `driver::conn`), the options ([`DbOptions`], [`Backend`],
//!   `driver::options`) and the migration runner (`driver::migrations`).
//!   `driver::conformance` runs the contract against each database and compares the
//!   migrated schema with the snapshot in `schema/`. The Cargo features `postgres` and
//!   `sqlite` (both default) choose which drivers are built.
//! - `queries`: running the driver's statements for `Db` (pool, write gate, timeouts), and
//!   the algorithms of several statements, each written once over the contract.
//! - [`Tx`], [`TxBuilder`] (`transaction`): scopes, savepoints, isolation, timeouts, retry.
//! - hooks (`hooks`): `on_commit` callbacks with Django's semantics.
//! - [`Lock`] (`lock`): row-lock clauses and deterministic-order locking.
//! - [`TransactionRetry`] (`retry`): when a transaction runs again.
//! - [`enum@Error`] (`error`): the one error type, with database errors classified.
//! - [`Task`], [`EnqueueOptions`] (`task`, `enqueue`): durable jobs, enqueued in the caller's transaction.
//! - [`Worker`], [`Periodic`], [`Shutdown`] (`worker`, `periodic`, `shutdown`): running them.
//! - [`admin`]: looking at and steering the jobs ([`Db::jobs`]), the queues ([`Db::queues`]:
//!   flow control of whole queues, across all workers) and the workers ([`Db::workers`]).
//! - [`Workflow`], [`Unique`] (`workflow`, `unique`): jobs that wait for others; jobs unique by content.
//! - [`guide`]: the guides of `docs/`.

// First: its macros (`on_driver!`, the SQL fragments) serve the modules below.
#[macro_use]
mod driver;
use driver::conn;

mod activity;
pub mod admin;
mod db;
/// What a job gets when neither its enqueue nor its task's declaration says: defined here
/// once, for the Rust side ([`TaskOptions`]'s default) and for the SQL
/// side, where the build script (`build.rs`) writes them into the migrations' `{{QUEUE}}`,
/// `{{PRIORITY}}` and `{{MAX_ATTEMPTS}}` (the jobs table's defaults, the insert trigger,
/// `oncommit.enqueue` and `oncommit.enqueue_many`).
///
/// Changing one changes fresh databases only, until a new migration includes again the
/// definitions that use it (see `migrations/README.md`).
pub mod defaults;
pub mod doctor;
mod enqueue;
mod error;
pub mod guide;
mod hook_capture;
mod hooks;
mod job;
mod job_row;
pub mod limits;
mod lock;
pub mod metrics;
pub mod migrate;
mod periodic;
mod queries;
mod redact;
mod retry;
mod retry_policy;
mod shutdown;
mod task;
mod trace;
pub mod transaction;
mod unique;
mod worker;
mod workflow;

pub use conn::{Conn, PoolConn};
pub use db::{Backend, Db, DbOptions, ExistingPool};
pub use driver::options::Pooler;
pub use enqueue::EnqueueOptions;
pub use error::{BoxError, Error, Result, SerializationKind};
pub use hook_capture::{CapturedHooks, capture_on_commit};
pub use hooks::HookOutput;
pub use job::{AttemptError, Job, JobId, JobState};
pub use lock::{Lock, LockStrength, LockWait};
pub use periodic::Periodic;
pub use queries::Parent;
pub use retry::TransactionRetry;
pub use retry_policy::RetryPolicy;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use task::{Task, TaskContext, TaskError, TaskOptions};
pub use transaction::{Committed, Isolation, ScopeMarker, Tx, TxBuilder};
pub use unique::Unique;
pub use worker::{Drained, Retention, Worker};
pub use workflow::{Step, Workflow, WorkflowIds, WorkflowJob};
