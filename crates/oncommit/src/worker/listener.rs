//! PostgreSQL LISTEN: wakes the fetchers when any process commits jobs, and stops running
//! jobs whose cancel was asked. A hint only: the poll interval guarantees progress when a
//! notification is lost (or when a connection pooler makes LISTEN unusable).

use std::sync::Arc;

use sqlx::postgres::PgListener;

use super::Shared;
use super::executor::Stop;
use crate::queries::{CANCEL_CHANNEL, JOBS_CHANNEL};
use crate::shutdown::Shutdown;

pub(crate) async fn listen(shared: Arc<Shared>, mut stop: Shutdown) {
    let Some(pool) = shared.db.pg_pool() else { return };
    let mut listener = loop {
        let connected = async {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen_all([JOBS_CHANNEL, CANCEL_CHANNEL]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => break listener,
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN failed; polling until it works");
                tokio::select! {
                    _ = stop.wait() => return,
                    _ = tokio::time::sleep(shared.config.poll_interval) => {}
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
                        shared.running.stop(id, Stop::Cancel);
                    }
                }
                Ok(Some(_)) => shared.db.wake(),
                // The connection was lost and re-made: notifications may have been missed.
                Ok(None) => shared.db.wake(),
                Err(err) => {
                    tracing::warn!(error = %err, "LISTEN connection failed");
                    tokio::select! {
                        _ = stop.wait() => return,
                        _ = tokio::time::sleep(shared.config.poll_interval) => {}
                    }
                }
            },
        }
    }
}
