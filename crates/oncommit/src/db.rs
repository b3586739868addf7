//! [`Db`]: a connection pool over PostgreSQL or SQLite, chosen by URL.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use crate::conn::PoolConn;
use crate::driver::postgres::{self as pg, PoolHandle, Pooler, Servers};
use crate::driver::sqlite;
use crate::error::{Error, Result};
use crate::hooks::{self, Hook, HookOutput};
use crate::migrate::{self, MigrationSet};
use crate::redact::{redact, redact_credentials, scrub};
use crate::transaction::{OpenGuards, Tx, TxBuilder, defer_hook};
use futures_util::FutureExt;

/// This process's turn to write to a SQLite database (see `Db::write_gate`).
pub(crate) type WriteGate = tokio::sync::OwnedMutexGuard<()>;

/// The URL used when neither `DATABASE_URL` nor `--database-url` is given.
pub const DEFAULT_URL: &str = "sqlite://oncommit.db";

/// How long a SQLite connection waits for another connection's write lock before `BUSY`.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// PostgreSQL: the production backend, shared by many workers on many machines.
    Postgres,
    /// SQLite: the embedded default, one file, no server.
    Sqlite,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        })
    }
}

/// A pool of connections to one database. Cheap to clone: clones share the pool.
///
/// ```no_run
/// # async fn demo() -> oncommit::Result<()> {
/// let db = oncommit::Db::connect("sqlite://app.db").await?;
/// db.migrate().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    pool: Pool,
    /// The URL with its password hidden, for messages and logs.
    display_url: String,
    /// Tells pools apart in the task-local that marks open transactions (see `durable`).
    id: usize,
    /// Bumped when jobs were committed by this process: wakes its workers at once, without
    /// waiting for a poll or (on PostgreSQL) the NOTIFY round trip. A counter, not an event,
    /// so a wake that comes while a worker is busy is not lost.
    wake: Arc<tokio::sync::watch::Sender<u64>>,
    /// Set on a worker's own pool (see [`Db::own_pool`]): the longest any of oncommit's own
    /// statements may wait for its answer.
    query_timeout: Option<Duration>,
    /// Wakes workers in other processes after commits (PostgreSQL; see `notifier`). Shared
    /// with the pools derived from this one.
    notifier: Option<Arc<crate::notifier::Notifier>>,
    /// SQLite has one writer at a time. Writers of this process queue here, fairly, instead
    /// of in SQLite's busy handler, which sleeps and polls (costing milliseconds per
    /// contended write). Other processes still meet the busy timeout.
    sqlite_writers: Arc<tokio::sync::Mutex<()>>,
    /// The guard-form transactions open on this database, by the task that holds them (see
    /// `transaction::scope`). Shared with the pools derived from this one.
    guards: Arc<OpenGuards>,
    /// The last count of finished jobs per queue and state, and when it was taken: a
    /// metrics scrape counts them at most once a minute (see [`Db::job_gauges`]). Shared with
    /// the pools derived from this one.
    finished_counts: Arc<tokio::sync::Mutex<Option<FinishedCounts>>>,
    /// PostgreSQL by URL: the URL's servers, the one in use followed through failovers.
    /// Shared with the pools derived from this one; `None` over a pool given by the caller.
    servers: Option<Arc<Servers>>,
    /// Keeps this pool among those `servers` points at the next server it finds.
    _follows: Option<Arc<PoolHandle>>,
    /// What opens each of oncommit's transactions after `BEGIN` behind a transaction
    /// pooler (`DEALLOCATE ALL`, this pool's session settings as `SET LOCAL`); `None`
    /// without one. Statements that would run in autocommit run in such a transaction.
    pooled_begin: Option<String>,
    /// Where LISTEN goes (PostgreSQL): the pool's own server, a direct URL beside a
    /// transaction pooler, or nowhere (workers poll).
    listen: Listen,
}

/// The pool a worker's LISTEN connection comes from (see [`Db::listen_pool`]).
pub(crate) struct ListenPool {
    pub(crate) pool: PgPool,
    /// Keeps it following the server through failovers.
    _follows: Option<Arc<PoolHandle>>,
}

/// Where a worker's LISTEN connection goes.
#[derive(Clone)]
pub(crate) enum Listen {
    /// To the server the pool uses (no transaction pooler between).
    Pool,
    /// To a direct URL (`listen_url`) beside the pooled one.
    Direct(Arc<Servers>),
    /// Nowhere: a transaction pooler without a direct URL, or SQLite.
    Off,
}

/// A count of the finished jobs per queue and state, and when it was taken.
pub(crate) type FinishedCounts = (std::time::Instant, Vec<crate::StateCount>);

#[derive(Clone)]
pub(crate) enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A sqlx pool of either backend, for [`Db::from_pool`].
#[derive(Debug, Clone)]
pub enum ExistingPool {
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A SQLite pool.
    Sqlite(SqlitePool),
}

impl From<PgPool> for ExistingPool {
    fn from(pool: PgPool) -> Self {
        ExistingPool::Postgres(pool)
    }
}

impl From<SqlitePool> for ExistingPool {
    fn from(pool: SqlitePool) -> Self {
        ExistingPool::Sqlite(pool)
    }
}

/// Options for [`Db::connect_with`].
///
/// ```no_run
/// # async fn demo() -> oncommit::Result<()> {
/// use oncommit::{Db, DbOptions, Pooler};
/// let options = DbOptions {
///     pooler: Some(Pooler::Transaction),
///     listen_url: Some("postgres://app@db-direct:5432/app".into()),
///     ..DbOptions::default()
/// };
/// let db = Db::connect_with("postgres://app@pgbouncer:6432/app", options).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long to wait for a free connection before [`Error::PoolTimedOut`].
    pub acquire_timeout: Duration,
    /// What sits between oncommit and PostgreSQL; `None` takes the URL's `pooler`
    /// parameter (absent: nothing). See [`Pooler`].
    pub pooler: Option<Pooler>,
    /// A direct PostgreSQL URL for LISTEN, beside a pooled URL: a transaction pooler cannot
    /// deliver notifications. Without it, workers behind such a pooler poll.
    pub listen_url: Option<String>,
    /// How long a connection may stay unused in the pool before it is closed (default
    /// 10 minutes): shorter gives a server's connection budget back sooner when a process
    /// goes quiet.
    pub idle_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            pooler: None,
            listen_url: None,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

impl DbOptions {
    /// The sqlx pool options these stand for.
    fn pg_pool(&self) -> sqlx::postgres::PgPoolOptions {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
    }

    fn sqlite_pool(&self) -> SqlitePoolOptions {
        SqlitePoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .idle_timeout(self.idle_timeout)
    }
}

impl Db {
    /// Connects to `sqlite://path` (created if missing, WAL, busy timeout) or `postgres://…`.
    ///
    /// PostgreSQL URLs take libpq's TLS parameters, over rustls: `sslmode` (`disable`,
    /// `prefer` — the default: TLS when the server offers it —, `require`, `verify-ca`,
    /// `verify-full`), `sslrootcert` (the CA to trust instead of the public roots) and
    /// `sslcert`/`sslkey` for client certificates. A TLS failure is [`Error::Tls`]. One
    /// departure from libpq: a server on this machine (loopback, Unix socket) is spoken to
    /// in plaintext unless the URL (or `PGSSLMODE`) names an `sslmode`.
    ///
    /// Fails at once with a typed error when the URL is malformed
    /// ([`Error::InvalidUrl`]), the server cannot be reached ([`Error::Unreachable`]), the
    /// credentials are refused ([`Error::AuthenticationFailed`]) or the database does not
    /// exist ([`Error::DatabaseUnavailable`]).
    pub async fn connect(url: &str) -> Result<Db> {
        Db::connect_with(url, DbOptions::default()).await
    }

    /// [`Db::connect`] with pool options.
    ///
    /// A PostgreSQL URL may also name:
    /// - several servers, as libpq does (`postgres://app@h1:5432,h2:5432/app`, or `host=h1,h2`
    ///   and `port=` parameters), with `target_session_attrs` (`any`, `read-write`,
    ///   `primary`, `read-only`, `standby`, `prefer-standby`) and `connect_timeout`
    ///   (seconds per server): the first that suits is used, and when it is lost or stops
    ///   suiting (a failover) the pool finds the one that does;
    /// - `pooler=transaction`, for a transaction pooler in front (PgBouncer, Supavisor, RDS
    ///   Proxy; see [`Pooler`]).
    pub async fn connect_with(url: &str, options: DbOptions) -> Result<Db> {
        let display_url = redact(url);
        // A URL that cannot be understood shows nothing of its credentials, not even the
        // user: where it went wrong may be where the password seemed to end.
        let invalid = |reason: String| Error::InvalidUrl { url: redact_credentials(url), reason: scrub(&reason, url) };
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" => {
                let (servers, mut conn) = pg::connect(url, options.pooler, invalid).await?;
                let pooler = servers.pooler();
                pg::warn_if_plaintext(&mut conn, &servers.current_options(), &display_url).await;
                conn.close().await.ok();
                let listen = match (&options.listen_url, pooler) {
                    (Some(listen), _) => {
                        let shown = redact(listen);
                        let invalid = |reason: String| Error::InvalidUrl {
                            url: redact_credentials(listen),
                            reason: scrub(&reason, listen),
                        };
                        let parsed = pg::PgUrl::parse(listen).map_err(invalid)?;
                        if parsed.pooler == Pooler::Transaction {
                            return Err(Error::InvalidUrl {
                                url: shown,
                                reason:
                                    "the LISTEN URL must reach PostgreSQL directly, not through a transaction pooler"
                                        .into(),
                            });
                        }
                        Listen::Direct(Servers::new(parsed))
                    }
                    (None, Pooler::Transaction) => Listen::Off,
                    (None, Pooler::None) => Listen::Pool,
                };
                let handle = servers.pool(options.pg_pool(), |o| o);
                let pooled_begin = (pooler == Pooler::Transaction).then(|| pg::pooled_begin_suffix(&[]));
                let pool = Pool::Postgres(handle.pool.clone());
                Ok(Db::assemble(pool, display_url, Some(servers), Some(handle), pooled_begin, listen))
            }
            "sqlite" => {
                let opts = sqlite::connect(url, invalid).await?;
                let pool = options.sqlite_pool().connect_lazy_with(opts);
                Ok(Db::assemble(Pool::Sqlite(pool), display_url, None, None, None, Listen::Off))
            }
            "" => Err(invalid("expected sqlite://path or postgres://host/db".into())),
            other if other.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
                Err(invalid(format!("unknown scheme `{other}` (expected sqlite:// or postgres://)")))
            }
            // libpq's `host=… password=…` form, or text with a `:` somewhere.
            _ => {
                Err(invalid("not a URL (libpq's key=value form is not supported: use postgres://user@host/db)".into()))
            }
        }
    }

    /// A `Db` over a pool your application already has, so oncommit shares its connections
    /// and its settings: `Db::from_pool(pg_pool.clone())` or `Db::from_pool(sqlite_pool)`.
    /// Nothing is checked or opened here; the first use connects.
    ///
    /// A SQLite pool should be in WAL mode with a busy timeout, as [`Db::connect`] sets up:
    /// oncommit's workers write while your requests do.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = sqlx::PgPool::connect("postgres://app@localhost/app").await?;
    /// let db = oncommit::Db::from_pool(pool.clone());
    /// db.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(pool: impl Into<ExistingPool>) -> Db {
        let (pool, display_url) = match pool.into() {
            ExistingPool::Postgres(p) => {
                let o = p.connect_options();
                let url = format!(
                    "postgres://{}@{}:{}/{}",
                    o.get_username(),
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or_default()
                );
                (Pool::Postgres(p), url)
            }
            ExistingPool::Sqlite(p) => {
                let url = format!("sqlite://{}", p.connect_options().get_filename().display());
                (Pool::Sqlite(p), url)
            }
        };
        let listen = if matches!(pool, Pool::Postgres(_)) { Listen::Pool } else { Listen::Off };
        Db::assemble(pool, display_url, None, None, None, listen)
    }

    fn assemble(
        pool: Pool,
        display_url: String,
        servers: Option<Arc<Servers>>,
        follows: Option<Arc<PoolHandle>>,
        pooled_begin: Option<String>,
        listen: Listen,
    ) -> Db {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(tokio::sync::watch::channel(0).0);
        let sqlite_writers = Arc::default();
        let notifier = match &pool {
            Pool::Postgres(p) => {
                let options: Box<dyn Fn() -> PgConnectOptions + Send + Sync> = match &servers {
                    Some(servers) => {
                        let servers = servers.clone();
                        Box::new(move || servers.current_options())
                    }
                    None => {
                        let options = (*p.connect_options()).clone();
                        Box::new(move || options.clone())
                    }
                };
                Some(Arc::new(crate::notifier::Notifier::new(options, pooled_begin.is_some())))
            }
            Pool::Sqlite(_) => None,
        };
        let guards = Arc::default();
        let inner = DbInner {
            pool,
            display_url,
            id,
            wake,
            query_timeout: None,
            notifier,
            sqlite_writers,
            guards,
            finished_counts: Arc::default(),
            servers,
            _follows: follows,
            pooled_begin,
            listen,
        };
        Db { inner: Arc::new(inner) }
    }

    /// The cache of finished-job counts (see [`Db::job_gauges`]).
    pub(crate) fn finished_counts(&self) -> &tokio::sync::Mutex<Option<FinishedCounts>> {
        &self.inner.finished_counts
    }

    /// Which backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self.inner.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// The URL this pool was made from, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.inner.display_url
    }

    /// The underlying sqlx pool, when this is PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        match &self.inner.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// The underlying sqlx pool, when this is SQLite.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner.pool {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    /// Applies oncommit's own migrations (idempotent, safe to run from several processes).
    pub async fn migrate(&self) -> Result<()> {
        migrate::run(self, &migrate::ONCOMMIT).await
    }

    /// Applies an application's own migration set, recorded under its own name.
    pub async fn migrate_set(&self, set: &MigrationSet) -> Result<()> {
        migrate::run(self, set).await
    }

    /// Takes a connection in autocommit mode (each statement commits by itself).
    pub async fn acquire(&self) -> Result<PoolConn> {
        Ok(match (&self.inner.pool, &self.inner.servers) {
            (Pool::Postgres(p), Some(servers)) if servers.chooses() => {
                // Boxed: every transaction's future would otherwise carry it.
                PoolConn::Postgres(Box::pin(pg::acquire_watching(p, servers)).await?)
            }
            (Pool::Postgres(p), _) => PoolConn::Postgres(p.acquire().await?),
            (Pool::Sqlite(p), _) => PoolConn::Sqlite(p.acquire().await?),
        })
    }

    /// Options for a new outermost transaction: isolation, read-only, durable, timeouts,
    /// retry. Finish with [`TxBuilder::run`] (closure) or [`TxBuilder::begin`] (guard).
    pub fn transaction(&self) -> TxBuilder<'_> {
        TxBuilder::new(self)
    }

    /// Runs `f` in a transaction with default options: commits when it returns `Ok`, rolls
    /// back when it returns `Err` or panics, then runs the `on_commit` hooks.
    ///
    /// Where the future must be `Send` (`tokio::spawn`, an axum handler, a hook) and the
    /// closure borrows its captures, rustc cannot yet prove this one is: write the same
    /// code with [`atomic!`](crate::atomic!) there.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// let id: i64 = db
    ///     .atomic(async |tx| {
    ///         let id = oncommit::with_conn!(tx.conn(), c => {
    ///             sqlx::query_scalar("INSERT INTO data (name) VALUES ('Dummy') RETURNING id")
    ///                 .fetch_one(c)
    ///                 .await?
    ///         });
    ///         tx.on_commit(move || println!("row {id} committed"));
    ///         Ok(id)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn atomic<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&mut Tx<'_>) -> Result<T>,
    {
        self.transaction().run(f).await
    }

    /// Begins a transaction with default options and returns its guard: call
    /// [`Tx::commit`]; dropping it rolls back.
    pub async fn begin(&self) -> Result<Tx<'static>> {
        self.transaction().begin().await
    }

    /// Runs `f` after the commit of the transaction the calling code is inside (Django's
    /// `transaction.on_commit`): a transaction closure on this database, a guard begun by
    /// the same task, or a web request's transaction. It joins that transaction's innermost
    /// open scope, so a savepoint that rolls back discards it. Outside any transaction it
    /// runs at once, and then its error is returned.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.atomic(async |tx| {
    ///     // Deep in code that was handed only the Db:
    ///     tx.db().on_commit(|| println!("runs after the commit, never before"))?;
    ///     Ok(())
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub fn on_commit<R: HookOutput>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<()> {
        self.hook_now_or_later(Hook::sync(f, false))
    }

    /// Like [`Db::on_commit`], but a failure is logged, and the transaction's later hooks
    /// still run (Django's `robust=True`).
    pub fn on_commit_robust<R: HookOutput>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<()> {
        self.hook_now_or_later(Hook::sync(f, true))
    }

    /// The async form of [`Db::on_commit`]: `fut` is awaited after the commit, or at once
    /// outside any transaction.
    pub async fn on_commit_async<R: HookOutput>(&self, fut: impl Future<Output = R> + Send + 'static) -> Result<()> {
        self.hook_after_commit(Hook::future(fut, false)).await
    }

    /// Like [`Db::on_commit_async`], but a failure is logged and the later hooks still run.
    pub async fn on_commit_async_robust<R: HookOutput>(
        &self,
        fut: impl Future<Output = R> + Send + 'static,
    ) -> Result<()> {
        self.hook_after_commit(Hook::future(fut, true)).await
    }

    /// Defers `hook` to the commit of the transaction the calling code is inside, or runs it
    /// now when there is none.
    async fn hook_after_commit(&self, hook: Hook) -> Result<()> {
        match defer_hook(self, hook) {
            Ok(()) => Ok(()),
            Err(hook) => hooks::run_hook_now(hook).await,
        }
    }

    /// [`Db::hook_after_commit`] for a hook made from a closure, which runs in one poll.
    fn hook_now_or_later(&self, hook: Hook) -> Result<()> {
        self.hook_after_commit(hook).now_or_never().expect("a hook made from a closure finishes at once")
    }

    /// Another pool to the same database, sized on its own: for work that must never
    /// wait for a connection held by the rest of the application (a side channel, a
    /// scenario that needs two sessions at once). It shares this pool's wake-ups and SQLite
    /// write gate, and counts as the same database for [`Error::EnqueueOutsideTransaction`].
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// use std::time::Duration;
    /// let side = db.another_pool(oncommit::DbOptions {
    ///     max_connections: 2,
    ///     acquire_timeout: Duration::from_secs(5),
    ///     ..oncommit::DbOptions::default()
    /// });
    /// side.acquire().await?;
    /// # Ok(()) }
    /// ```
    pub fn another_pool(&self, options: DbOptions) -> Db {
        self.derived(options, None, &[])
    }

    /// A pool for a worker's own statements: tasks cannot take its connections, so leases
    /// are renewed however busy they are. Each of oncommit's statements on it waits at most
    /// `query_timeout` for its answer; on PostgreSQL its sessions also carry `settings`
    /// (server-side timeouts and keepalives). A connection unused for `idle_timeout` is
    /// closed: an idle worker keeps only what its periodic statements use.
    pub(crate) fn own_pool(
        &self,
        max_connections: u32,
        query_timeout: Duration,
        idle_timeout: Duration,
        settings: &[(&str, String)],
    ) -> Db {
        let options =
            DbOptions { max_connections, acquire_timeout: query_timeout, idle_timeout, ..DbOptions::default() };
        self.derived(options, Some(query_timeout), settings)
    }

    fn derived(&self, options: DbOptions, query_timeout: Option<Duration>, settings: &[(&str, String)]) -> Db {
        let inner = &self.inner;
        let mut follows = None;
        let pool = match (&inner.pool, &inner.servers) {
            (Pool::Postgres(_), Some(servers)) => {
                let pooled = inner.pooled_begin.is_some();
                let startup: Vec<(String, String)> =
                    settings.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
                let handle = servers.pool(options.pg_pool(), move |o| tune_session(o, pooled, &startup));
                let pool = handle.pool.clone();
                follows = Some(handle);
                Pool::Postgres(pool)
            }
            (Pool::Postgres(p), None) => {
                let opts = tune_session((*p.connect_options()).clone(), false, settings);
                Pool::Postgres(options.pg_pool().connect_lazy_with(opts))
            }
            (Pool::Sqlite(p), _) => {
                Pool::Sqlite(options.sqlite_pool().connect_lazy_with((*p.connect_options()).clone()))
            }
        };
        // Behind a transaction pooler the session settings go into each transaction.
        let pooled_begin = inner.pooled_begin.as_ref().map(|_| pg::pooled_begin_suffix(settings));
        Db {
            inner: Arc::new(DbInner {
                pool,
                display_url: inner.display_url.clone(),
                id: inner.id,
                wake: inner.wake.clone(),
                query_timeout,
                notifier: inner.notifier.clone(),
                sqlite_writers: inner.sqlite_writers.clone(),
                guards: inner.guards.clone(),
                finished_counts: inner.finished_counts.clone(),
                servers: inner.servers.clone(),
                _follows: follows,
                pooled_begin,
                listen: inner.listen.clone(),
            }),
        }
    }

    /// What follows `BEGIN` in each transaction behind a transaction pooler; `None`
    /// without one.
    pub(crate) fn pooled_begin(&self) -> Option<&str> {
        self.inner.pooled_begin.as_deref()
    }

    /// What sits between this pool and PostgreSQL.
    pub fn pooler(&self) -> Pooler {
        if self.inner.pooled_begin.is_some() { Pooler::Transaction } else { Pooler::None }
    }

    /// A pool of one connection for a worker's LISTEN, following the server through
    /// failovers: to the server this pool uses, or to the direct URL beside a transaction
    /// pooler. `None` where LISTEN cannot work (a transaction pooler and no direct URL;
    /// SQLite). Over a pool given by the caller, that pool itself.
    pub(crate) fn listen_pool(&self) -> Option<ListenPool> {
        let named = |o: PgConnectOptions| o.application_name("oncommit listener");
        let handle = match (&self.inner.listen, &self.inner.servers, &self.inner.pool) {
            (Listen::Off, _, _) => return None,
            (Listen::Direct(servers), _, _) | (Listen::Pool, Some(servers), _) => {
                servers.pool(sqlx::postgres::PgPoolOptions::new().max_connections(1), named)
            }
            (Listen::Pool, None, Pool::Postgres(p)) => return Some(ListenPool { pool: p.clone(), _follows: None }),
            (Listen::Pool, None, Pool::Sqlite(_)) => return None,
        };
        Some(ListenPool { pool: handle.pool.clone(), _follows: Some(handle) })
    }

    /// Looks at an error oncommit met on this pool: one that says the server is gone or no
    /// longer suits (a failover) starts the search for the one that does.
    pub(crate) fn saw(&self, err: &Error) {
        if let Some(servers) = &self.inner.servers {
            servers.saw(err);
        }
    }

    /// The bound on oncommit's own statements, on a worker's own pool.
    pub(crate) fn query_timeout(&self) -> Option<Duration> {
        self.inner.query_timeout
    }

    /// Closes the pool: waits for connections in use to come back, closes them all.
    pub(crate) async fn close(&self) {
        match &self.inner.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    pub(crate) fn id(&self) -> usize {
        self.inner.id
    }

    pub(crate) fn open_guards(&self) -> &Arc<OpenGuards> {
        &self.inner.guards
    }

    /// On SQLite, waits (up to `wait`) for this process's turn to write; `None` on
    /// PostgreSQL, where writers do not exclude each other. Hold the guard for the write.
    pub(crate) async fn write_gate(&self, wait: Duration) -> Result<Option<WriteGate>> {
        if !on_backend!(self.backend(), const ONE_WRITER) {
            return Ok(None);
        }
        let gate = self.inner.sqlite_writers.clone();
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

    /// [`Db::write_gate`] with the default busy timeout, for oncommit's own writes.
    pub(crate) async fn writing(&self) -> Result<Option<WriteGate>> {
        self.write_gate(SQLITE_BUSY_TIMEOUT).await
    }

    /// Wakes this process's workers: new jobs were committed.
    pub(crate) fn wake(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the workers of `queues` in other processes (PostgreSQL NOTIFY), once the jobs
    /// are committed; returns at once.
    pub(crate) fn wake_other_processes(&self, queues: Vec<String>) {
        if let Some(notifier) = &self.inner.notifier {
            notifier.wake(queues);
        }
    }

    /// A receiver that changes whenever [`Db::wake`] is called.
    pub(crate) fn wake_receiver(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("url", &self.inner.display_url).finish()
    }
}

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
