//! A pool of connections to either database, chosen by URL: what [`Db`](crate::Db) stands
//! on. PostgreSQL's pool carries what follows its servers (host lists and failover, a
//! transaction pooler's per-transaction settings, where LISTEN goes); SQLite's is a file.

use std::sync::Arc;

#[cfg(feature = "postgres")]
use sqlx::Connection;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

#[cfg(feature = "postgres")]
use super::options::Pooler;
use super::options::{Backend, DbOptions, ExistingPool};
#[cfg(feature = "postgres")]
use super::postgres::{self as pg, PoolHandle, Servers};
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::conn::PoolConn;
use crate::error::{Error, Result};
use crate::redact::{redact, redact_credentials, scrub};

/// A pool of either database. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub(crate) enum Pool {
    #[cfg(feature = "postgres")]
    Postgres(PgPools),
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool, Writers),
}

/// SQLite has one writer at a time. This process's writers queue here, fairly, instead of
/// in SQLite's busy handler, which sleeps and polls (costing milliseconds per contended
/// write); other processes still meet the busy timeout. Shared with the derived pools.
type Writers = Arc<tokio::sync::Mutex<()>>;

/// This process's turn to write to a SQLite database (see [`Pool::write_gate`]).
pub(crate) type WriteGate = tokio::sync::OwnedMutexGuard<()>;

#[cfg(feature = "postgres")]
/// A PostgreSQL pool, with what follows its servers.
#[derive(Clone)]
pub(crate) struct PgPools {
    pool: PgPool,
    /// By URL: the URL's servers, the one in use followed through failovers. Shared with
    /// the pools derived from this one; `None` over a pool given by the caller.
    servers: Option<Arc<Servers>>,
    /// Keeps this pool among those `servers` points at the next server it finds.
    _follows: Option<Arc<PoolHandle>>,
    /// What opens each of oncommit's transactions after `BEGIN` behind a transaction
    /// pooler (`DEALLOCATE ALL`, this pool's session settings as `SET LOCAL`); `None`
    /// without one. Statements that would run in autocommit run in such a transaction.
    pooled_begin: Option<String>,
    /// Where LISTEN goes: the pool's own server, a direct URL beside a transaction pooler,
    /// or nowhere (workers poll).
    listen: Listen,
}

#[cfg(feature = "postgres")]
/// Where a worker's LISTEN connection goes.
#[derive(Clone)]
enum Listen {
    /// To the server the pool uses (no transaction pooler between).
    Pool,
    /// To a direct URL (`listen_url`) beside the pooled one.
    Direct(Arc<Servers>),
    /// Nowhere: a transaction pooler without a direct URL.
    Off,
}

#[cfg(feature = "postgres")]
/// The pool a worker's LISTEN connection comes from (see [`Pool::listen_pool`]).
pub(crate) struct ListenPool {
    pub(crate) pool: PgPool,
    /// Keeps it following the server through failovers.
    _follows: Option<Arc<PoolHandle>>,
}

impl Pool {
    /// Connects to the database `url` names (see `Db::connect_with`); returns the pool and
    /// the URL with its password hidden.
    pub(crate) async fn connect(url: &str, options: &DbOptions) -> Result<(Pool, String)> {
        let display_url = redact(url);
        // A URL that cannot be understood shows nothing of its credentials, not even the
        // user: where it went wrong may be where the password seemed to end.
        let invalid = |reason: String| Error::InvalidUrl { url: redact_credentials(url), reason: scrub(&reason, url) };
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        let pool = match scheme {
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => {
                let (servers, mut conn) = pg::connect(url, options.pooler, invalid).await?;
                let pooler = servers.pooler();
                pg::warn_if_plaintext(&mut conn, &servers.current_options(), &display_url).await;
                conn.close().await.ok();
                let listen = match (&options.listen_url, pooler) {
                    (Some(listen), _) => Listen::Direct(Servers::new(listen_url(listen)?)),
                    (None, Pooler::Transaction) => Listen::Off,
                    (None, Pooler::None) => Listen::Pool,
                };
                let handle = servers.pool(pg_pool_options(options), |o| o);
                let pooled_begin = (pooler == Pooler::Transaction).then(|| pg::pooled_begin_suffix(&[]));
                Pool::Postgres(PgPools {
                    pool: handle.pool.clone(),
                    servers: Some(servers),
                    _follows: Some(handle),
                    pooled_begin,
                    listen,
                })
            }
            #[cfg(feature = "sqlite")]
            "sqlite" => {
                let opts = sqlite::connect(url, invalid).await?;
                Pool::Sqlite(sqlite_pool_options(options).connect_lazy_with(opts), Writers::default())
            }
            #[cfg(not(feature = "postgres"))]
            "postgres" | "postgresql" => return Err(invalid(not_built("postgres"))),
            #[cfg(not(feature = "sqlite"))]
            "sqlite" => return Err(invalid(not_built("sqlite"))),
            "" => return Err(invalid("expected sqlite://path or postgres://host/db".into())),
            other if other.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
                return Err(invalid(format!("unknown scheme `{other}` (expected sqlite:// or postgres://)")));
            }
            // libpq's `host=… password=…` form, or text with a `:` somewhere.
            _ => {
                return Err(invalid(
                    "not a URL (libpq's key=value form is not supported: use postgres://user@host/db)".into(),
                ));
            }
        };
        Ok((pool, display_url))
    }

    /// A pool the caller made; returns it with a URL that names it (no password).
    pub(crate) fn existing(pool: ExistingPool) -> (Pool, String) {
        match pool {
            #[cfg(feature = "postgres")]
            ExistingPool::Postgres(pool) => {
                let o = pool.connect_options();
                let url = format!(
                    "postgres://{}@{}:{}/{}",
                    o.get_username(),
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or_default()
                );
                let pools = PgPools { pool, servers: None, _follows: None, pooled_begin: None, listen: Listen::Pool };
                (Pool::Postgres(pools), url)
            }
            #[cfg(feature = "sqlite")]
            ExistingPool::Sqlite(p) => {
                let url = format!("sqlite://{}", p.connect_options().get_filename().display());
                (Pool::Sqlite(p, Writers::default()), url)
            }
        }
    }

    /// Another pool to the same database with `options`; on PostgreSQL its sessions carry
    /// `settings` (as startup parameters, or `SET LOCAL` in each transaction behind a
    /// transaction pooler, which refuses them).
    pub(crate) fn derive(&self, options: &DbOptions, settings: &[(&str, String)]) -> Pool {
        #[cfg(not(feature = "postgres"))]
        let _ = settings;
        match self {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pg) => {
                let pooled = pg.pooled_begin.is_some();
                let (pool, follows) = match &pg.servers {
                    Some(servers) => {
                        let startup: Vec<(String, String)> =
                            settings.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
                        let handle = servers.pool(pg_pool_options(options), move |o| tune_session(o, pooled, &startup));
                        (handle.pool.clone(), Some(handle))
                    }
                    None => {
                        let opts = tune_session((*pg.pool.connect_options()).clone(), false, settings);
                        (pg_pool_options(options).connect_lazy_with(opts), None)
                    }
                };
                Pool::Postgres(PgPools {
                    pool,
                    servers: pg.servers.clone(),
                    _follows: follows,
                    pooled_begin: pooled.then(|| pg::pooled_begin_suffix(settings)),
                    listen: pg.listen.clone(),
                })
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p, writers) => {
                let pool = sqlite_pool_options(options).connect_lazy_with((*p.connect_options()).clone());
                Pool::Sqlite(pool, writers.clone())
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(..) => Backend::Sqlite,
        }
    }

    #[cfg(feature = "postgres")]
    fn pg_pools(&self) -> Option<&PgPools> {
        match self {
            Pool::Postgres(pg) => Some(pg),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(..) => None,
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn pg(&self) -> Option<&PgPool> {
        self.pg_pools().map(|pg| &pg.pool)
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite(&self) -> Option<&SqlitePool> {
        match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p, _) => Some(p),
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => None,
        }
    }

    /// A connection in autocommit mode.
    pub(crate) async fn acquire(&self) -> Result<PoolConn> {
        Ok(match self {
            #[cfg(feature = "postgres")]
            Pool::Postgres(PgPools { pool, servers: Some(servers), .. }) if servers.chooses() => {
                // Boxed: every transaction's future would otherwise carry it.
                PoolConn::Postgres(Box::pin(pg::acquire_watching(pool, servers)).await?)
            }
            #[cfg(feature = "postgres")]
            Pool::Postgres(pg) => PoolConn::Postgres(pg.pool.acquire().await?),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p, _) => PoolConn::Sqlite(p.acquire().await?),
        })
    }

    /// What follows `BEGIN` in each transaction behind a transaction pooler; `None`
    /// without one.
    pub(crate) fn pooled_begin(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pg) => pg.pooled_begin.as_deref(),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(..) => None,
        }
    }

    #[cfg(feature = "postgres")]
    /// A pool of one connection for a worker's LISTEN, following the server through
    /// failovers: to the server this pool uses, or to the direct URL beside a transaction
    /// pooler. `None` where LISTEN cannot work (a transaction pooler and no direct URL;
    /// SQLite). Over a pool given by the caller, that pool itself.
    pub(crate) fn listen_pool(&self) -> Option<ListenPool> {
        let pg = self.pg_pools()?;
        let named = |o: PgConnectOptions| o.application_name("oncommit listener");
        let handle = match (&pg.listen, &pg.servers) {
            (Listen::Off, _) => return None,
            (Listen::Direct(servers), _) | (Listen::Pool, Some(servers)) => {
                servers.pool(PgPoolOptions::new().max_connections(1), named)
            }
            (Listen::Pool, None) => return Some(ListenPool { pool: pg.pool.clone(), _follows: None }),
        };
        Some(ListenPool { pool: handle.pool.clone(), _follows: Some(handle) })
    }

    #[cfg(feature = "postgres")]
    /// What wakes workers in other processes after commits (PostgreSQL's NOTIFY), on a
    /// connection of its own.
    pub(crate) fn notifier(&self) -> Option<Arc<super::postgres::notifier::Notifier>> {
        let pg = self.pg_pools()?;
        let options: Box<dyn Fn() -> PgConnectOptions + Send + Sync> = match &pg.servers {
            Some(servers) => {
                let servers = servers.clone();
                Box::new(move || servers.current_options())
            }
            None => {
                let options = (*pg.pool.connect_options()).clone();
                Box::new(move || options.clone())
            }
        };
        Some(Arc::new(super::postgres::notifier::Notifier::new(options, pg.pooled_begin.is_some())))
    }

    /// Looks at an error met on this pool: one that says the server is gone or no longer
    /// suits (a failover) starts the search for the one that does.
    pub(crate) fn saw(&self, err: &Error) {
        #[cfg(feature = "postgres")]
        if let Pool::Postgres(PgPools { servers: Some(servers), .. }) = self {
            servers.saw(err);
        }
        #[cfg(not(feature = "postgres"))]
        let _ = err;
    }

    /// On SQLite, waits (up to `wait`) for this process's turn to write; `None` on
    /// PostgreSQL, where writers do not exclude each other. Hold the guard for the write.
    pub(crate) async fn write_gate(&self, wait: std::time::Duration) -> Result<Option<WriteGate>> {
        let writers: Option<&Writers> = match self {
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_, writers) => Some(writers),
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => None,
        };
        let Some(gate) = writers.map(Arc::clone) else { return Ok(None) };
        let acquired = if wait.is_zero() {
            gate.try_lock_owned().ok()
        } else {
            tokio::time::timeout(wait, gate.lock_owned()).await.ok()
        };
        match acquired {
            Some(guard) => Ok(Some(guard)),
            None => Err(Error::Busy {
                message: format!("another writer of this process held the database for more than {wait:?}"),
            }),
        }
    }

    /// Waits for connections in use to come back, and closes them all.
    pub(crate) async fn close(&self) {
        match self {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pg) => pg.pool.close().await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p, _) => p.close().await,
        }
    }
}

/// Why a URL of a database this build leaves out is refused.
#[cfg(not(all(feature = "postgres", feature = "sqlite")))]
fn not_built(feature: &str) -> String {
    format!("this oncommit was built without the `{feature}` feature (enable it in Cargo.toml)")
}

#[cfg(feature = "postgres")]
/// The direct URL for LISTEN beside a pooled one, refused if it names a pooler too.
fn listen_url(listen: &str) -> Result<pg::PgUrl> {
    let invalid =
        |reason: String| Error::InvalidUrl { url: redact_credentials(listen), reason: scrub(&reason, listen) };
    let parsed = pg::PgUrl::parse(listen).map_err(invalid)?;
    if parsed.pooler == Pooler::Transaction {
        return Err(Error::InvalidUrl {
            url: redact(listen),
            reason: "the LISTEN URL must reach PostgreSQL directly, not through a transaction pooler".into(),
        });
    }
    Ok(parsed)
}

#[cfg(feature = "postgres")]
fn pg_pool_options(o: &DbOptions) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(o.max_connections)
        .acquire_timeout(o.acquire_timeout)
        .idle_timeout(o.idle_timeout)
}

#[cfg(feature = "sqlite")]
fn sqlite_pool_options(o: &DbOptions) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(o.max_connections)
        .acquire_timeout(o.acquire_timeout)
        .idle_timeout(o.idle_timeout)
}

#[cfg(feature = "postgres")]
/// A session of a derived pool: a worker's settings travel as the startup parameter
/// `options`, except behind a transaction pooler, which refuses it (they go into each
/// transaction instead, see `pooled_begin`).
fn tune_session(opts: PgConnectOptions, pooled: bool, settings: &[(impl AsRef<str>, String)]) -> PgConnectOptions {
    if settings.is_empty() {
        return opts;
    }
    let opts = opts.application_name("oncommit worker");
    if pooled {
        opts
    } else {
        opts.options(settings.iter().map(|(name, value)| (name.as_ref().to_owned(), value.clone())))
    }
}
