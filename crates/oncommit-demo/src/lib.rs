//! The seeds' application on oncommit: the tables of `shared/seeds/`, and their concurrency
//! scenarios run for real so their outcomes can be shown (`oncommit demo …`) and tested.
//!
//! - [`schema`]: the application's tables (`data`, `socks`), in its own namespace.
//! - [`select_for_update`]: seed 004 — a second `FOR UPDATE` waits for the first.
//! - [`deadlock`]: seed 004 — opposite lock orders deadlock; retry and ordered locking cure it.
//! - [`isolation`]: seed 004 — lost update and write skew under each isolation level.
//! - [`tasks`]: the application's background tasks (`do_stuff`, `record`, `sleep`, `fail`, `noop`).
//! - [`race`]: seed 000 — a job dispatched before its data commits finds nothing.
//! - [`web`]: the application over HTTP (`oncommit serve`), with the dashboard.

mod app;
pub mod deadlock;
pub mod isolation;
pub mod race;
pub mod schema;
pub mod select_for_update;
mod session;
pub mod tasks;
pub mod web;
