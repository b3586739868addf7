//! PostgreSQL LISTEN: wakes the claim loops of the queue a NOTIFY names, and stops running
//! jobs whose cancel was asked. A hint only: the maintenance tick finds work every poll
//! interval when a notification is lost (or a connection pooler makes LISTEN unusable).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::Shared;
use super::held::Stop;
use super::outage::Backoff;
use crate::queries::{CANCEL_CHANNEL, JOBS_CHANNEL};
use crate::shutdown::Shutdown;

pub(crate) async fn listen(shared: Arc<Shared>, mut stop: Shutdown) {
    if !on_backend!(shared.services.backend(), const NOTIFIES) {
        return;
    }
    let Some(listen) = shared.services.listen_pool() else {
        tracing::info!(
            poll_interval = ?shared.config.poll_interval,
            "behind a transaction pooler without a listen URL: this worker polls for new jobs \
             (a job waits up to the poll interval; give --listen-url for wake-ups)"
        );
        return;
    };
    let pool = &listen.pool;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    let mut listener = loop {
        let connected = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen_all([JOBS_CHANNEL, CANCEL_CHANNEL]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => break listener,
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN failed; the worker polls until it works");
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
        }
    };
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            received = listener.try_recv() => match received {
                Ok(Some(n)) if n.channel() == CANCEL_CHANNEL => {
                    if let Ok(id) = n.payload().parse::<i64>() {
                        shared.held.stop(id, Stop::Cancel);
                    }
                }
                Ok(Some(n)) => {
                    backoff.reset();
                    shared.wakers.wake(n.payload());
                }
                // The connection was lost and re-made: notifications may have been missed.
                Ok(None) => shared.wakers.wake_all(),
                Err(err) => {
                    tracing::debug!(error = %err, "LISTEN connection failed");
                    tokio::select! {
                        _ = stop.wait() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            },
        }
    }
}
