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

/// A handler error: an [`oncommit::Error`] (or a message) that becomes a response with an
/// honest status — 409 for conflicts a client may retry, 503 when the database is
/// unreachable or a commit's outcome is unknown, 500 otherwise — and a JSON body
/// `{"error": "…"}`.
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
        let status = match &err {
            e if e.is_retryable() || e.is_lock_not_available() || e.is_unique_violation() => StatusCode::CONFLICT,
            e if e.is_connection_lost() => StatusCode::SERVICE_UNAVAILABLE,
            oncommit::Error::PoolTimedOut | oncommit::Error::Unreachable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            oncommit::Error::StatementTimeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Error { status, message: err.to_string(), retryable: err.is_retryable() }
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
        if self.retryable {
            response.extensions_mut().insert(RetryableFailure);
        }
        response
    }
}
