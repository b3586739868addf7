//! PostgreSQL: a URL's servers (host lists, `target_session_attrs`, following a failover)
//! and sessions that are safe behind a transaction pooler (`pooler=transaction`).
//!
//! Behind a transaction pooler a session lasts one transaction. So in that mode:
//! - no startup parameter a pooler refuses (`extra_float_digits`, `options`) is sent;
//! - every statement oncommit sends runs inside a transaction, which opens with
//!   `DEALLOCATE ALL` (the server session may hold statements another client prepared
//!   under the names this one is about to use) and prepares nothing that outlives it;
//! - what a worker sets per session elsewhere (timeouts, planner settings) is `SET LOCAL`
//!   in each transaction, and what cannot be (TCP keepalives of the server's socket, which
//!   faces the pooler) is left to the pooler;
//! - LISTEN, which needs a session, goes to a direct URL when one is given, else workers
//!   poll.

mod dependencies;
pub(crate) mod diagnostics;
mod dialect;
mod fair;
mod fleet;
#[macro_use]
mod jobs;
mod history;
pub(crate) mod notifier;
mod queues;
#[cfg_attr(not(test), allow(dead_code, reason = "read by the suite's snapshot test only, so far"))]
mod schema;
mod selected;
mod servers;
mod unique;
mod url;

use std::fmt::Write as _;
use std::sync::Arc;

pub(crate) use crate::driver::options::Pooler;
#[cfg(test)]
pub(crate) use fair::{FAIR_JOBS, FAIR_KEYS};
#[cfg(test)]
pub(crate) use fleet::ACTIVITY_SINCE;
pub(crate) use jobs::notify_on;
#[cfg(test)]
pub(crate) use jobs::{BOUNDS, CLAIM, COMPLETE, COUNT_UNFINISHED, QUEUE_LAG, WINDOWS};
#[cfg(test)]
pub(crate) use queues::QUEUE_SETTINGS;
pub(crate) use servers::{PoolHandle, Servers};
pub(crate) use url::{PgUrl, is_local};

use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::error::{Error, Result};

/// The PostgreSQL driver: its statements are the implementations of the contract's traits
/// (`jobs`, `fleet`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PostgresDriver;

impl crate::driver::contract::Driver for PostgresDriver {
    type Conn = sqlx::postgres::PgConnection;
}

/// How long a pool over a URL with a choice of servers waits for a connection before it
/// checks that its server is still there (see [`Servers`]).
const SUSPECT_AFTER: Duration = Duration::from_secs(1);

/// Settings a transaction pooler makes meaningless: they tune the server's socket, which
/// faces the pooler, not the client. The pooler's own keepalives and timeouts stand in.
const SOCKET_SETTINGS: &[&str] =
    &["tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count", "tcp_user_timeout"];

/// What follows `BEGIN` in every transaction oncommit opens through a transaction pooler:
/// `DEALLOCATE ALL`, then `settings` as `SET LOCAL`, all in the BEGIN's round trip.
pub(crate) fn pooled_begin_suffix(settings: &[(&str, String)]) -> String {
    let mut sql = String::from("; DEALLOCATE ALL");
    for (name, value) in settings.iter().filter(|(name, _)| !SOCKET_SETTINGS.contains(name)) {
        let _ = write!(sql, "; SET LOCAL {name} = '{}'", value.replace('\'', "''"));
    }
    sql
}

/// Connects as `url` says: finds its server (the first of its hosts that suits
/// `target_session_attrs`), and checks it can be used. Returns the servers, followed from
/// then on, and that first connection. `pooler`, when given, overrides the URL's `pooler`
/// parameter (`DbOptions::pooler`).
pub(crate) async fn connect(
    url: &str,
    pooler: Option<Pooler>,
    invalid: impl Fn(String) -> Error,
) -> Result<(Arc<Servers>, sqlx::PgConnection)> {
    let mut parsed = PgUrl::parse(url).map_err(&invalid)?;
    if let Some(pooler) = pooler {
        parsed.pooler = pooler;
    }
    check_tls_files(url).map_err(invalid)?;
    let servers = Servers::new(parsed);
    let conn = servers.find().await?;
    Ok((servers, conn))
}

/// Refuses `sslrootcert`, `sslcert` or `sslkey` naming a file that cannot be read: the
/// driver would report it as an unreachable server, without the file's name.
fn check_tls_files(url: &str) -> std::result::Result<(), String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for (key, path) in ::url::form_urlencoded::parse(query.as_bytes()) {
        if ["sslrootcert", "sslcert", "sslkey"].contains(&key.as_ref()) && path != "system" {
            std::fs::metadata(path.as_ref()).map_err(|e| format!("{key} file `{path}`: {e}"))?;
        }
    }
    Ok(())
}

/// A connection of `pool`, whose URL has a choice of servers. A crashed server refuses
/// connections, and sqlx retries those quietly until the acquire timeout: after a short
/// wait, the servers check whether theirs is still there.
pub(crate) async fn acquire_watching(
    pool: &sqlx::PgPool,
    servers: &Arc<Servers>,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
    let mut acquiring = std::pin::pin!(pool.acquire());
    match tokio::time::timeout(SUSPECT_AFTER, &mut acquiring).await {
        Ok(conn) => Ok(conn?),
        Err(_) => {
            servers.slow_to_connect();
            Ok(acquiring.await?)
        }
    }
}

/// Says so in the log when `sslmode=prefer` (the default) fell back to plaintext on a
/// connection that leaves the machine: the libpq rule is kept, but not silently.
pub(crate) async fn warn_if_plaintext(conn: &mut sqlx::PgConnection, opts: &PgConnectOptions, url: &str) {
    use sqlx::postgres::PgSslMode;
    if is_local(opts) || !matches!(opts.get_ssl_mode(), PgSslMode::Prefer) {
        return;
    }
    let encrypted: Option<bool> = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten();
    if encrypted == Some(false) {
        tracing::warn!(
            url,
            "connected without TLS: the server offers none, so sslmode=prefer fell back to plaintext; \
             add sslmode=require (or verify-full) to the URL to refuse that"
        );
    }
}
