//! [`Error`]: what a handler returns when its transaction work fails.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A response extension: the request failed in a way that running it again may fix
/// (serialization failure, deadlock, SQLite busy). [`AtomicRequestsLayer`](crate::AtomicRequestsLayer)
/// re-runs such requests when told to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryableFailure;

/// A response extension: roll the request's transaction back even though the status says
/// success (for example a dry run).
#[derive(Debug, Clone, Copy)]
pub struct Rollback;

/// What a 503 answer's `Retry-After` says, in seconds: the database's unavailability is
/// usually a pool drained by a burst or a failover under way, both over within seconds.
const RETRY_AFTER_SECS: &str = "1";

/// A handler error: an [`oncommit::Error`] (or a message) that becomes a response with an
/// honest status — 409 for conflicts a client may retry, 503 (with `Retry-After: 1`) when
/// the database is unreachable or busy or a commit's outcome is unknown, 500 otherwise —
/// and a JSON body `{"error": "…"}`.
///
/// The database's own text (a server message, a constraint name, a host) never reaches the
/// client: it is logged, and the client gets a stable message for its class of failure.
/// Messages written by the application ([`Error::new`]) and oncommit's refusals of a misuse
/// (an enqueue outside the transaction, an invalid option) are passed on as they are.
#[derive(Debug)]
pub struct Error {
    status: StatusCode,
    message: String,
    retryable: bool,
}

impl Error {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error { status, message: message.into(), retryable: false }
    }

    /// The status the response will have.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<oncommit::Error> for Error {
    fn from(err: oncommit::Error) -> Self {
        use oncommit::Error as E;
        let (status, message): (StatusCode, std::borrow::Cow<'static, str>) = match &err {
            // oncommit's own words about a misuse: they help the developer and hold no data.
            E::EnqueueOutsideTransaction
            | E::InvalidOption { .. }
            | E::InvalidArgs { .. }
            | E::InvalidTransactionOptions(_) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string().into()),
            e if e.is_retryable() => {
                (StatusCode::CONFLICT, "the request conflicted with a concurrent one; try again".into())
            }
            e if e.is_lock_not_available() => {
                (StatusCode::CONFLICT, "data the request needs is locked by another; try again".into())
            }
            e if e.is_unique_violation() => (StatusCode::CONFLICT, "the request conflicts with existing data".into()),
            E::CommitOutcomeUnknown(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database connection was lost at commit: whether the request took effect is unknown".into(),
            ),
            e if e.is_connection_lost() => (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable".into()),
            E::PoolTimedOut | E::Unreachable { .. } | E::TimedOut { .. } | E::StatementTimeout { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "the database is busy or unavailable; try again".into())
            }
            E::CommitRolledBack => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string().into()),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error (the server logged it)".into()),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %err, "request failed");
        } else {
            tracing::warn!(error = %err, status = status.as_u16(), "request failed");
        }
        Error { status, message: message.into_owned(), retryable: err.is_retryable() }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        oncommit::Error::from(err).into()
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A client (or a load balancer) is told when to come back, not left to guess.
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if self.retryable {
            response.extensions_mut().insert(RetryableFailure);
        }
        response
    }
}
