//! Wakes workers in other processes (PostgreSQL `NOTIFY`) once enqueuing transactions have
//! committed.
//!
//! Not inside the enqueuing transaction: a transaction that NOTIFYs holds the server's
//! notify lock from its commit until its WAL is flushed, so enqueuing commits waited for
//! each other's flushes (one job per transaction ran at a third of a plain `INSERT`'s rate).
//! Not on the committing connection either: a NOTIFY after each commit still cost each
//! request a round trip and a quarter of its rate. So a pool's notifier sends them from a
//! connection of its own, in transactions that write nothing, and what commits while one
//! is in flight goes out together in the next: one NOTIFY per queue per round trip however
//! many commits, and no wait at all for the committing request.
//!
//! Best effort by design: a wake-up that cannot be sent (the database is unreachable) is
//! dropped, and the workers find the jobs at their next poll.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::mpsc;

use super::notify_on;
use crate::driver::JOBS_CHANNEL;

/// Longest wait for one round of wake-ups.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the notifier keeps its connection without a wake-up to send: a process that
/// stopped enqueueing gives it back to the server's budget.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the notifier connects: the server the pool uses now (it may have changed since
/// the last connection, through a failover).
type OptionsSource = Arc<dyn Fn() -> PgConnectOptions + Send + Sync>;

pub(crate) struct Notifier {
    /// How to open its connection.
    options: OptionsSource,
    /// Behind a transaction pooler: each NOTIFY in a transaction of its own that clears the
    /// session's prepared statements first (see `driver::postgres`).
    pooled: bool,
    /// Queues to wake, to the sending task; started with the first wake-up.
    queue: OnceLock<mpsc::UnboundedSender<Vec<String>>>,
}

impl Notifier {
    pub(crate) fn new(options: impl Fn() -> PgConnectOptions + Send + Sync + 'static, pooled: bool) -> Notifier {
        Notifier { options: Arc::new(options), pooled, queue: OnceLock::new() }
    }

    /// Wakes the workers of `queues` soon; returns at once.
    pub(crate) fn wake(&self, queues: Vec<String>) {
        if queues.is_empty() {
            return;
        }
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(send(self.options.clone(), self.pooled, rx));
            tx
        });
        // The sender ended only with its runtime: then the workers' poll finds the jobs.
        queue.send(queues).ok();
    }
}

/// Sends the wake-ups until the pool is dropped (every sender gone). Unbounded, but each
/// waiting entry is one commit's queue names, and they are drained at every round trip.
async fn send(options: OptionsSource, pooled: bool, mut wakes: mpsc::UnboundedReceiver<Vec<String>>) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let first = match tokio::time::timeout(IDLE_TIMEOUT, wakes.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => break,
            Err(_) => {
                if let Some(c) = conn.take() {
                    c.close().await.ok();
                }
                continue;
            }
        };
        let mut queues: BTreeSet<String> = first.into_iter().collect();
        while let Ok(more) = wakes.try_recv() {
            queues.extend(more);
        }
        if conn.is_none() {
            match PgConnection::connect_with(&options().application_name("oncommit notifier")).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot connect to wake the workers; they will poll");
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let queues: Vec<String> = queues.into_iter().collect();
        // Bounded: a connection that stopped answering is replaced, not waited on.
        let sent = tokio::time::timeout(SEND_TIMEOUT, notify(c, pooled, &queues)).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::debug!(?sent, "could not wake the workers; they will poll");
            conn = None;
        }
    }
    if let Some(c) = conn {
        c.close().await.ok();
    }
}

/// One round of wake-ups; behind a transaction pooler, in a transaction whose session is
/// cleared of prepared statements first.
async fn notify(c: &mut PgConnection, pooled: bool, queues: &[String]) -> crate::Result<()> {
    if !pooled {
        return notify_on(c, JOBS_CHANNEL, queues).await;
    }
    sqlx::raw_sql("BEGIN; DEALLOCATE ALL").execute(&mut *c).await?;
    let sent = notify_on(c, JOBS_CHANNEL, queues).await;
    let end = if sent.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::raw_sql(end).execute(&mut *c).await?;
    sent
}
