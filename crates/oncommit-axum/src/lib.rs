//! Per-request transactions for axum — Django's `ATOMIC_REQUESTS`, done so that a task can
//! never run before the data it is about — and oncommit's dashboard.
//!
//! - [`AtomicRequestsLayer`] (`layer`): each request's transaction commits when the handler
//!   succeeds and rolls back when it fails (status ≥ 400, a panic, or [`Rollback`]); a
//!   request that failed on a serialization failure or deadlock can be re-run whole.
//! - [`RequestTx`] (`request_tx`): the extractor for the request's transaction, begun on
//!   first use with the route's options ([`isolation`], [`non_atomic`]).
//! - [`dashboard`]: the page, JSON API and Prometheus metrics, as a router to nest.
//! - [`Error`] (`error`): a handler error that becomes an honest status (409 for conflicts,
//!   503 for a lost connection) and marks the request for re-running when that can help.
//!
//! ```no_run
//! use axum::{Router, routing::post};
//! use oncommit_axum::{AtomicRequestsLayer, RequestTx};
//!
//! async fn create(tx: RequestTx) -> Result<String, oncommit_axum::Error> {
//!     let mut tx = tx.begin().await?;
//!     let id: i64 = sqlx::query_scalar("INSERT INTO data (name) VALUES ('Dummy') RETURNING id")
//!         .fetch_one(tx.postgres()?)
//!         .await
//!         .map_err(oncommit::Error::from)?;
//!     Ok(format!("pk: {id}"))
//! }
//!
//! # async fn app(db: oncommit::Db) {
//! let app: Router = Router::new().route("/data", post(create)).layer(AtomicRequestsLayer::new(db));
//! # }
//! ```

pub mod dashboard;
mod error;
pub mod guide {
    #![doc = include_str!("../../../docs/web.md")]
}
mod layer;
mod request_tx;

pub use error::{Error, RetryableFailure, Rollback};
pub use layer::{AtomicRequests, AtomicRequestsLayer};
pub use request_tx::{RequestTx, RouteTx, TxGuard, isolation, non_atomic};
