//! [`RequestTx`]: the request's transaction, begun on first use with the route's options.

use std::sync::Arc;

use axum::Extension;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use oncommit::{Db, Isolation, ScopeMarker, Tx};
use tokio::sync::{Mutex, MutexGuard};

use crate::error::Error;

/// A route's transaction options, set with a route layer: [`isolation`] or [`non_atomic`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RouteTx {
    isolation: Option<Isolation>,
    non_atomic: bool,
}

/// Runs this route's requests at `level` (route layer: `.route_layer(isolation(…))`).
pub fn isolation(level: Isolation) -> Extension<RouteTx> {
    Extension(RouteTx { isolation: Some(level), non_atomic: false })
}

/// Takes this route out of per-request transactions (Django's `non_atomic_requests`): its
/// handler gets no [`RequestTx`] and manages its own transactions, for example long
/// requests that must commit in parts.
pub fn non_atomic() -> Extension<RouteTx> {
    Extension(RouteTx { isolation: None, non_atomic: true })
}

enum Slot {
    /// Nothing asked for the transaction yet: there is nothing to commit.
    NotBegun,
    Open(Tx<'static>),
    /// Committed or rolled back by the layer.
    Finished,
}

/// The request's transaction. Take it as a handler argument; [`RequestTx::begin`] opens it
/// on first use (later calls return the same transaction) and the layer commits or rolls it
/// back after the response.
#[derive(Clone)]
pub struct RequestTx {
    shared: Arc<Shared>,
}

struct Shared {
    db: Db,
    /// Which run of the request this is (re-run after a retryable failure).
    attempt: u32,
    route: std::sync::Mutex<RouteTx>,
    marker: ScopeMarker,
    slot: Mutex<Slot>,
}

/// The open transaction, locked for one handler at a time.
pub struct TxGuard<'a> {
    guard: MutexGuard<'a, Slot>,
}

impl std::ops::Deref for TxGuard<'_> {
    type Target = Tx<'static>;
    fn deref(&self) -> &Tx<'static> {
        match &*self.guard {
            Slot::Open(tx) => tx,
            _ => unreachable!("a guard exists only for an open transaction"),
        }
    }
}

impl std::ops::DerefMut for TxGuard<'_> {
    fn deref_mut(&mut self) -> &mut Tx<'static> {
        match &mut *self.guard {
            Slot::Open(tx) => tx,
            _ => unreachable!("a guard exists only for an open transaction"),
        }
    }
}

impl RequestTx {
    pub(crate) fn new(db: Db, attempt: u32, marker: ScopeMarker) -> RequestTx {
        RequestTx {
            shared: Arc::new(Shared {
                db,
                attempt,
                route: std::sync::Mutex::new(RouteTx::default()),
                marker,
                slot: Mutex::new(Slot::NotBegun),
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    /// Which run of the request this is, from 1 (see `AtomicRequestsLayer::retry`).
    pub fn attempt(&self) -> u32 {
        self.shared.attempt
    }

    /// The request's transaction, begun now if this is the first use.
    pub async fn begin(&self) -> Result<TxGuard<'_>, Error> {
        let mut guard = self.shared.slot.lock().await;
        if let Slot::NotBegun = *guard {
            let route = *self.shared.route.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut builder = self.shared.db.transaction();
            if let Some(level) = route.isolation {
                builder = builder.isolation(level);
            }
            *guard = Slot::Open(builder.begin().await?);
            self.shared.marker.set_open(true);
        }
        match *guard {
            Slot::Open(_) => Ok(TxGuard { guard }),
            _ => Err(Error::new(StatusCode::INTERNAL_SERVER_ERROR, "the request's transaction has already ended")),
        }
    }

    /// Commits the transaction if one was begun. Returns `Ok(false)` when there was none.
    pub(crate) async fn commit(&self) -> oncommit::Result<bool> {
        let tx = self.take().await;
        self.shared.marker.set_open(false);
        match tx {
            Some(tx) => tx.commit().await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Rolls the transaction back if one was begun.
    pub(crate) async fn rollback(&self) {
        let tx = self.take().await;
        self.shared.marker.set_open(false);
        if let Some(tx) = tx {
            if let Err(err) = tx.rollback().await {
                tracing::warn!(error = %err, "rolling back a request's transaction failed");
            }
        }
    }

    async fn take(&self) -> Option<Tx<'static>> {
        match std::mem::replace(&mut *self.shared.slot.lock().await, Slot::Finished) {
            Slot::Open(tx) => Some(tx),
            _ => None,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestTx {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let route = parts.extensions.get::<RouteTx>().copied().unwrap_or_default();
        if route.non_atomic {
            return Err(Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this route is non_atomic: it has no request transaction (use the Db directly)",
            ));
        }
        let tx = parts.extensions.get::<RequestTx>().cloned().ok_or_else(|| {
            Error::new(StatusCode::INTERNAL_SERVER_ERROR, "RequestTx needs the AtomicRequestsLayer on the router")
        })?;
        *tx.shared.route.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = route;
        Ok(tx)
    }
}
