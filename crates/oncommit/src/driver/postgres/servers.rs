//! Which server of a URL's host list oncommit talks to, and following it when it changes.
//!
//! libpq tries the hosts in order and keeps the first whose role suits
//! `target_session_attrs`. sqlx knows one host per pool, so this does that choosing: at
//! connect, and again whenever a connection shows that the current server is gone or no
//! longer suits (refused, lost, read-only, in recovery). Then every pool made here is
//! pointed at the server found (sqlx's `Pool::set_connect_options`), and the connections
//! opened before the switch are dropped as they come back (`before_acquire`). A server that
//! does not suit is never handed out: each new connection is checked (`after_connect`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Row};

use super::url::{PgUrl, TargetSessionAttrs};
use crate::driver::options::Backend;
use crate::driver::options::Pooler;
use crate::error::{Error, Result, Target};

/// How long the search for a suitable server goes on after a loss before it rests until the
/// next failure is seen.
const SEARCH_FOR: Duration = Duration::from_secs(120);

/// A URL's servers and the one in use.
pub(crate) struct Servers {
    url: PgUrl,
    /// The index in `url.hosts` of the server in use.
    current: AtomicUsize,
    /// When the server in use last changed: connections older than this were opened to the
    /// previous one.
    switched: Mutex<Instant>,
    /// Every pool made here, to point at the next server found. Weak: a pool dropped by its
    /// owner is not kept open by this list.
    pools: Mutex<Vec<Weak<PoolHandle>>>,
    /// Whether a search for the server is under way (at most one at a time).
    searching: AtomicBool,
}

/// A pool made by [`Servers::pool`]; the `Db` holds the strong reference.
pub(crate) struct PoolHandle {
    pub(crate) pool: PgPool,
    /// The settings the pool's sessions carry beyond the URL's (application name, startup
    /// `options`), re-applied when it is pointed at another server.
    tune: Box<dyn Fn(PgConnectOptions) -> PgConnectOptions + Send + Sync>,
}

impl Servers {
    pub(crate) fn new(url: PgUrl) -> Arc<Servers> {
        Arc::new(Servers {
            url,
            current: AtomicUsize::new(0),
            switched: Mutex::new(Instant::now()),
            pools: Mutex::new(Vec::new()),
            searching: AtomicBool::new(false),
        })
    }

    pub(crate) fn pooler(&self) -> Pooler {
        self.url.pooler
    }

    /// Whether there is anything to choose: several hosts, or a role to check.
    pub(crate) fn chooses(&self) -> bool {
        self.url.hosts.len() > 1 || self.url.target != TargetSessionAttrs::Any
    }

    /// The connect options of the server in use.
    pub(crate) fn current_options(&self) -> PgConnectOptions {
        self.url.for_host(self.current.load(Ordering::Relaxed))
    }

    /// The server in use, for messages.
    pub(crate) fn current_host(&self) -> String {
        self.url.hosts[self.current.load(Ordering::Relaxed)].to_string()
    }

    /// Opens one connection to the first server that suits, makes it the one in use, and
    /// returns it. The error names every server tried and why each was passed over.
    pub(crate) async fn find(&self) -> Result<PgConnection> {
        let passes: &[TargetSessionAttrs] = match self.url.target {
            TargetSessionAttrs::PreferStandby => &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any],
            other => &[other],
        };
        let mut tried = Vec::new();
        let mut first_error = None;
        for &wanted in passes {
            for i in 0..self.url.hosts.len() {
                let host = &self.url.hosts[i];
                match self.open(i).await {
                    Ok(mut conn) => match role(&mut conn).await {
                        Ok((read_only, in_recovery)) if wanted.accepts(read_only, in_recovery) => {
                            self.use_server(i);
                            return Ok(conn);
                        }
                        Ok((read_only, in_recovery)) => {
                            let what = if in_recovery {
                                "a standby"
                            } else if read_only {
                                "read-only"
                            } else {
                                "a primary"
                            };
                            tried.push(format!("{host} is {what}"));
                        }
                        Err(err) => tried.push(format!("{host}: {err}")),
                    },
                    Err(err) => {
                        tried.push(format!("{host}: {err}"));
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        let target = self.url.target();
        match first_error {
            // One server, one failure: the typed error of that failure (unreachable,
            // refused credentials, missing database, a pooler met unannounced).
            Some(err) if self.url.hosts.len() == 1 && tried.len() == 1 => Err(err),
            _ => Err(Error::NoServer { target, wanted: self.url.target.name(), tried: tried.join("; ") }),
        }
    }

    /// A connection to host `i`, within the URL's `connect_timeout`.
    async fn open(&self, i: usize) -> Result<PgConnection> {
        let options = self.url.for_host(i);
        let shown = format!("{}/{}", self.url.hosts[i], options.get_database().unwrap_or_default());
        let target = Target { backend: Backend::Postgres, target: &shown };
        let connecting = options.connect();
        let connected = match self.url.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connecting)
                .await
                .map_err(|_| Error::TimedOut { what: "connecting (connect_timeout)", after: limit })?,
            None => connecting.await,
        };
        connected.map_err(|e| target.connect_error(e))
    }

    fn use_server(&self, i: usize) {
        let before = self.current.swap(i, Ordering::Relaxed);
        if before == i {
            return;
        }
        *self.switched.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|weak| match weak.upgrade() {
            Some(handle) => {
                handle.pool.set_connect_options((handle.tune)(self.url.for_host(i)));
                true
            }
            None => false,
        });
    }

    /// A pool over the server in use, following it; `tune` adds the pool's own settings to
    /// the URL's.
    pub(crate) fn pool(
        self: &Arc<Servers>,
        mut options: PgPoolOptions,
        tune: impl Fn(PgConnectOptions) -> PgConnectOptions + Send + Sync + 'static,
    ) -> Arc<PoolHandle> {
        if self.chooses() {
            let me = Arc::downgrade(self);
            options = options.after_connect(move |conn, _| {
                let me = me.clone();
                Box::pin(async move {
                    let Some(servers) = me.upgrade() else { return Ok(()) };
                    let (read_only, in_recovery) =
                        role(conn).await.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                    let wanted = servers.url.target.in_use();
                    if wanted.accepts(read_only, in_recovery) {
                        return Ok(());
                    }
                    servers.lost(&format!("it is {}", if in_recovery { "in recovery" } else { "read-only" }));
                    Err(sqlx::Error::Protocol(format!("the server is not {}", wanted.name())))
                })
            });
            let me = Arc::downgrade(self);
            options = options.before_acquire(move |_, meta| {
                let me = me.clone();
                Box::pin(async move {
                    let Some(servers) = me.upgrade() else { return Ok(true) };
                    let switched = *servers.switched.lock().unwrap_or_else(|e| e.into_inner());
                    Ok(meta.age < switched.elapsed())
                })
            });
        }
        let tune: Box<dyn Fn(PgConnectOptions) -> PgConnectOptions + Send + Sync> = Box::new(tune);
        let pool = options.connect_lazy_with(tune(self.current_options()));
        let handle = Arc::new(PoolHandle { pool, tune });
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|weak| weak.strong_count() > 0);
        pools.push(Arc::downgrade(&handle));
        drop(pools);
        handle
    }

    /// Looks at an error met on a connection: when it says the server in use is gone or no
    /// longer suits, the search for one that does begins.
    pub(crate) fn saw(self: &Arc<Servers>, err: &Error) {
        if !self.chooses() {
            return;
        }
        let why = match err {
            Error::ConnectionLost(_)
            | Error::PoolTimedOut
            | Error::TimedOut { .. }
            | Error::CommitOutcomeUnknown(_) => "it stopped answering",
            Error::Database { code: Some(code), .. } if code == "25006" => "it is read-only",
            _ => return,
        };
        self.lost(why);
    }

    /// A pool of this URL gave no connection for a while: the server in use may be gone
    /// (a crashed primary refuses connections, and sqlx retries those quietly until its
    /// acquire timeout). Checks, and searches if so.
    pub(crate) fn slow_to_connect(self: &Arc<Servers>) {
        if self.chooses() {
            self.lost("no connection could be had from it");
        }
    }

    /// Starts the search for a server that suits, unless one is under way. The server in
    /// use is checked first: a pool that was only busy is no failover.
    fn lost(self: &Arc<Servers>, why: &str) {
        if self.searching.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.searching.store(false, Ordering::Release);
            return;
        };
        let why = why.to_owned();
        let me = Arc::downgrade(self);
        runtime.spawn(async move {
            let Some(servers) = me.upgrade() else { return };
            let current = servers.current.load(Ordering::Relaxed);
            if servers.suits(current).await {
                servers.searching.store(false, Ordering::Release);
                return;
            }
            let lost = servers.url.hosts[current].to_string();
            tracing::warn!(host = %lost, wanted = servers.url.target.name(), "lost the database server: {why}; looking for one that suits");
            drop(servers);
            let started = Instant::now();
            let mut delay = Duration::from_millis(100);
            loop {
                let Some(servers) = me.upgrade() else { return };
                match servers.find().await {
                    Ok(conn) => {
                        drop(conn);
                        tracing::warn!(host = %servers.current_host(), "found the database server");
                        servers.searching.store(false, Ordering::Release);
                        return;
                    }
                    Err(err) if started.elapsed() > SEARCH_FOR => {
                        tracing::warn!(error = %err, "no server suits yet; looking again at the next failure");
                        servers.searching.store(false, Ordering::Release);
                        return;
                    }
                    Err(err) => tracing::debug!(error = %err, "no server suits yet"),
                }
                drop(servers);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// Whether host `i` answers now, in a role that suits.
    async fn suits(&self, i: usize) -> bool {
        let wanted = self.url.target.in_use();
        match self.open(i).await {
            Ok(mut conn) => {
                role(&mut conn).await.is_ok_and(|(read_only, in_recovery)| wanted.accepts(read_only, in_recovery))
            }
            Err(_) => false,
        }
    }
}

/// A server's role: whether its sessions are read-only, and whether it is in recovery. A
/// simple query (no prepared statement), so it is safe through any pooler.
async fn role(conn: &mut PgConnection) -> Result<(bool, bool)> {
    let row = sqlx::raw_sql("SELECT current_setting('transaction_read_only') = 'on', pg_is_in_recovery()")
        .fetch_one(conn)
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}
