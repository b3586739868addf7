//! What the closure form ([`TxBuilder::run`], [`Tx::atomic`]) and the [`atomic!`](crate::atomic!)
//! macro share: opening a scope for an attempt, and ending it as the attempt's result says
//! (commit, roll back, or roll back and try again).
//!
//! The macro needs this split into steps because it cannot hand the user's code to a
//! function: the code is pasted into the caller's own `async` block, so its future is an
//! ordinary concrete type that rustc can prove `Send` (see the macro's docs for why a
//! closure's future cannot be, today).

use std::time::Instant;

use tracing::Instrument;

use super::builder::TxBuilder;
use super::scope::ScopeMarker;
use super::tx::Tx;
use crate::db::Db;
use crate::error::Result;
use crate::retry::TransactionRetry;

/// Where a scope is opened: a new outermost transaction (with its options and retry), or a
/// savepoint inside an open one.
#[doc(hidden)]
pub enum ScopeSource<'s, 'p> {
    /// A new transaction, begun afresh for each attempt.
    Outermost(TxBuilder<'s>),
    /// A savepoint in this open scope; run once (a savepoint is not retried on its own:
    /// the errors worth retrying abort the whole transaction).
    Nested(&'s mut Tx<'p>),
}

/// Counts attempts and decides, after each, whether another runs.
#[doc(hidden)]
pub struct Attempts {
    /// When to run again after a retryable error; `None` for a savepoint, which is never
    /// retried on its own.
    retry: Option<TransactionRetry>,
    attempt: u32,
    started: Instant,
}

impl<'s, 'p> ScopeSource<'s, 'p> {
    /// Splits into what opens each attempt's scope and what counts the attempts (two
    /// values, so that a savepoint guard borrowing the first can be handed to the second).
    pub fn start(self) -> Result<(Self, Attempts)> {
        let retry = match &self {
            ScopeSource::Outermost(b) => {
                b.check_durable()?;
                Some(b.retry_policy())
            }
            ScopeSource::Nested(_) => None,
        };
        Ok((self, Attempts { retry, attempt: 1, started: Instant::now() }))
    }

    /// Opens the scope for the next attempt, and the marker that makes `db.on_commit`,
    /// `db.enqueue` and `durable` inside it act on it (none for a savepoint: the enclosing
    /// transaction's marker already covers it).
    pub async fn begin(&mut self, attempts: &Attempts) -> Result<(Tx<'_>, Inside)> {
        match self {
            ScopeSource::Outermost(builder) => {
                let mut tx = builder.begin_attempt(attempts.attempt).await?;
                let marker = ScopeMarker::of_closure(builder.db(), tx.pending_hooks());
                let span = tx.span();
                Ok((tx, Inside { marker: Some(marker), span: Some(span) }))
            }
            ScopeSource::Nested(tx) => Ok((tx.savepoint().await?, Inside { marker: None, span: None })),
        }
    }
}

impl Attempts {
    /// The attempt now running (1-based).
    pub fn number(&self) -> u32 {
        self.attempt
    }

    /// Ends `tx` as `result` says: commits on `Ok`, rolls back on `Err`. Returns `None`
    /// when the error is retryable and the retry policy allows another attempt (after
    /// waiting its backoff), else the final result.
    pub async fn finish<T>(&mut self, tx: Tx<'_>, result: Result<T>) -> Option<Result<T>> {
        // A savepoint's span is its transaction's, which it already runs in.
        let span = tx.span();
        let outcome = async {
            match result {
                Ok(value) => tx.commit().await.map(|()| value),
                Err(err) => {
                    if let Err(rollback_err) = tx.rollback().await {
                        tracing::warn!(error = %rollback_err, "rolling back after a failed attempt failed");
                    }
                    Err(err)
                }
            }
        }
        .instrument(span)
        .await;
        let (err, retry) = match (outcome, self.retry) {
            (Err(err), Some(retry)) if err.is_retryable() && retry.allows(self.attempt, self.started.elapsed()) => {
                (err, retry)
            }
            (outcome, _) => return Some(outcome),
        };
        let delay = retry.delay_after(self.attempt);
        tracing::debug!(attempt = self.attempt, ?delay, error = %err, "retrying transaction");
        tokio::time::sleep(delay).await;
        self.attempt += 1;
        None
    }
}

/// What an attempt's code runs inside: the scope marker and the span of a new transaction
/// (a savepoint runs inside its transaction's).
#[doc(hidden)]
pub struct Inside {
    marker: Option<ScopeMarker>,
    span: Option<tracing::Span>,
}

/// Runs `fut` inside the scope and span of `inside`.
#[doc(hidden)]
pub async fn run_in<F: Future>(inside: Inside, fut: F) -> F::Output {
    // Entering no span leaves the current one current.
    let fut = fut.instrument(inside.span.unwrap_or_else(tracing::Span::none));
    match inside.marker {
        Some(marker) => marker.run(fut).await,
        None => fut.await,
    }
}

/// Fixes the output of the macro's `async` block to [`Result`], so `?` inside it converts
/// errors into [`Error`](crate::Error) without annotations.
#[doc(hidden)]
pub fn body<T, F: Future<Output = Result<T>>>(fut: F) -> F {
    fut
}

/// What [`atomic!`](crate::atomic!) accepts as its first argument: a [`Db`] (or a reference
/// to one), a [`TxBuilder`] with options, or an open [`Tx`] (a savepoint in it).
#[doc(hidden)]
pub trait IntoScope<'s, 'p> {
    /// Where the macro's scope is opened.
    fn into_scope(self) -> ScopeSource<'s, 'p>;
}

impl<'s> IntoScope<'s, 'static> for &'s Db {
    fn into_scope(self) -> ScopeSource<'s, 'static> {
        ScopeSource::Outermost(self.transaction())
    }
}

impl<'s> IntoScope<'s, 'static> for &'s mut Db {
    fn into_scope(self) -> ScopeSource<'s, 'static> {
        ScopeSource::Outermost(self.transaction())
    }
}

impl<'s> IntoScope<'s, 'static> for TxBuilder<'s> {
    fn into_scope(self) -> ScopeSource<'s, 'static> {
        ScopeSource::Outermost(self)
    }
}

impl<'s, 'p> IntoScope<'s, 'p> for &'s mut Tx<'p> {
    fn into_scope(self) -> ScopeSource<'s, 'p> {
        ScopeSource::Nested(self)
    }
}
