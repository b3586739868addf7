//! [`AtomicRequestsLayer`]: runs each request in a transaction.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use oncommit::{Db, ScopeMarker};
use tower::{Layer, Service, ServiceExt};

use crate::error::{Error, RetryableFailure, Rollback};
use crate::request_tx::RequestTx;

/// Wraps a router so that each request runs in a transaction (begun when a handler first
/// uses its [`RequestTx`]). After the handler:
///
/// - a success (status below 400) commits, then the transaction's `on_commit` hooks run;
/// - a failure — status 400 or more, a panic (answered 500), or a [`Rollback`] extension —
///   rolls back: the request's enqueued jobs and hooks vanish with it;
/// - a commit that fails becomes an error response (409 for a conflict, 503 when the
///   outcome is unknown), never a silent success;
/// - with [`AtomicRequestsLayer::retry`], a request that failed on a serialization failure
///   or deadlock (its commit, or an [`Error`](crate::Error) marking [`RetryableFailure`]) runs
///   again whole, its body replayed — something Django does not offer.
#[derive(Debug, Clone)]
pub struct AtomicRequestsLayer {
    db: Db,
    /// Runs of one request in all (1: no re-run).
    attempts: u32,
    /// The largest body kept for re-runs.
    max_body: usize,
}

impl AtomicRequestsLayer {
    /// Per-request transactions on `db`, without re-runs.
    pub fn new(db: Db) -> Self {
        AtomicRequestsLayer { db, attempts: 1, max_body: 1 << 20 }
    }

    /// Runs a request up to `attempts` times in all while it fails retryably. Bodies are then
    /// buffered (up to [`AtomicRequestsLayer::max_body`]) so they can be replayed; without
    /// re-runs they stream through untouched.
    pub fn retry(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// With re-runs, the largest request body buffered (default 1 MiB); larger ones get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }
}

impl<S> Layer<S> for AtomicRequestsLayer {
    type Service = AtomicRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AtomicRequests { inner, config: self.clone() }
    }
}

/// The service made by [`AtomicRequestsLayer`].
#[derive(Debug, Clone)]
pub struct AtomicRequests<S> {
    inner: S,
    config: AtomicRequestsLayer,
}

impl<S> Service<Request> for AtomicRequests<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The ready clone goes into the future; a fresh clone stays for the next call.
        let fresh = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, fresh);
        let config = self.config.clone();
        Box::pin(async move { Ok(run(inner, config, request).await) })
    }
}

/// What one run of the handler came to.
enum Step {
    /// The response to send.
    Done(Response),
    /// It failed retryably and may run again.
    Again,
}

async fn run<S>(inner: S, config: AtomicRequestsLayer, request: Request) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    if config.attempts == 1 {
        // Nothing will be replayed: the body streams through, unbuffered and unbounded.
        return match handle(inner, &config.db, request, 1, false).await {
            Step::Done(response) => response,
            Step::Again => unreachable!("no re-run without retries"),
        };
    }
    let (parts, body) = request.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, config.max_body).await {
        Ok(bytes) => bytes,
        Err(_) => return Error::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let mut attempt = 1;
    loop {
        let request = Request::from_parts(parts.clone(), Body::from(body.clone()));
        match handle(inner.clone(), &config.db, request, attempt, attempt < config.attempts).await {
            Step::Done(response) => return response,
            Step::Again => {
                tracing::debug!(attempt, "re-running a request that failed retryably");
                attempt += 1;
            }
        }
    }
}

/// Runs the handler once in its own (lazily begun) transaction, then commits or rolls back.
async fn handle<S>(inner: S, db: &Db, mut request: Request, attempt: u32, may_retry: bool) -> Step
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let marker = ScopeMarker::new(db);
    let tx = RequestTx::new(db.clone(), attempt, marker.clone());
    request.extensions_mut().insert(tx.clone());
    let handled = AssertUnwindSafe(marker.run(inner.oneshot(request))).catch_unwind().await;
    let response = match handled {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_panic) => {
            tx.rollback().await;
            let error =
                Error::new(StatusCode::INTERNAL_SERVER_ERROR, "the handler panicked; its transaction was rolled back");
            return Step::Done(error.into_response());
        }
    };
    let failed = response.status().as_u16() >= 400 || response.extensions().get::<Rollback>().is_some();
    if failed {
        tx.rollback().await;
        if may_retry && response.extensions().get::<RetryableFailure>().is_some() {
            return Step::Again;
        }
        return Step::Done(response);
    }
    match tx.commit().await {
        Ok(_) => Step::Done(response),
        Err(err) if may_retry && err.is_retryable() => Step::Again,
        Err(oncommit::Error::Hook { index, source }) => {
            // The data is committed; the response stands, the hook's failure is logged.
            tracing::error!(index, error = %source, "an on_commit hook of a committed request failed");
            Step::Done(response)
        }
        Err(err) => Step::Done(Error::from(err).into_response()),
    }
}
