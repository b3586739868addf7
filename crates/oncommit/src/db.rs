//! [`Db`]: a connection pool over PostgreSQL or SQLite, chosen by URL.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::PgPool;
#[cfg(feature = "sqlite")]
use sqlx::sqlite::SqlitePool;

use crate::conn::PoolConn;
use crate::driver::options::Pooler;
use crate::driver::options::SQLITE_BUSY_TIMEOUT;
pub use crate::driver::options::{Backend, DbOptions, ExistingPool};
#[cfg(feature = "postgres")]
use crate::driver::pool::ListenPool;
use crate::driver::pool::Pool;
use crate::error::{Error, Result};
use crate::hooks::{self, Hook, HookOutput};
use crate::migrate::{self, MigrationSet, SchemaStatus};
use crate::transaction::{OpenGuards, Tx, TxBuilder, defer_hook};

pub(crate) use crate::driver::pool::WriteGate;

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
    #[cfg(feature = "postgres")]
    notifier: Option<Arc<crate::driver::postgres::notifier::Notifier>>,
    /// The guard-form transactions open on this database, by the task that holds them (see
    /// `transaction::scope`). Shared with the pools derived from this one.
    guards: Arc<OpenGuards>,
    /// The last count of finished jobs per queue and state, and when it was taken: a
    /// metrics scrape counts them at most once a minute (see [`Queues::overview`](crate::admin::Queues::overview)). Shared with
    /// the pools derived from this one.
    finished_counts: Arc<tokio::sync::Mutex<Option<FinishedCounts>>>,
}

/// A count of the finished jobs per queue and state, and when it was taken.
pub(crate) type FinishedCounts = (std::time::Instant, Vec<crate::queries::StateCount>);

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
        let (pool, display_url) = Pool::connect(url, &options).await?;
        Ok(Db::assemble(pool, display_url))
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
        let (pool, display_url) = Pool::existing(pool.into());
        Db::assemble(pool, display_url)
    }

    fn assemble(pool: Pool, display_url: String) -> Db {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let inner = DbInner {
            #[cfg(feature = "postgres")]
            notifier: pool.notifier(),
            pool,
            display_url,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            wake: Arc::new(tokio::sync::watch::channel(0).0),
            query_timeout: None,
            guards: Arc::default(),
            finished_counts: Arc::default(),
        };
        Db { inner: Arc::new(inner) }
    }

    /// The cache of finished-job counts (see [`Queues::overview`](crate::admin::Queues::overview)).
    pub(crate) fn finished_counts(&self) -> &tokio::sync::Mutex<Option<FinishedCounts>> {
        &self.inner.finished_counts
    }

    /// Which backend this pool talks to.
    pub fn backend(&self) -> Backend {
        self.inner.pool.backend()
    }

    /// The URL this pool was made from, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.inner.display_url
    }

    /// The underlying sqlx pool, when this is PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn pg_pool(&self) -> Option<&PgPool> {
        self.inner.pool.pg()
    }

    /// The underlying sqlx pool, when this is SQLite.
    #[cfg(feature = "sqlite")]
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        self.inner.pool.sqlite()
    }

    /// Applies oncommit's own migrations (idempotent, safe to run from several processes).
    pub async fn migrate(&self) -> Result<()> {
        self.migrate_set(&migrate::ONCOMMIT).await
    }

    /// Applies an application's own migration set, recorded under its own name.
    pub async fn migrate_set(&self, set: &MigrationSet) -> Result<()> {
        let _turn = self.writing().await?;
        let mut conn = self.acquire().await?;
        crate::driver::migrations::run(&mut conn, self.pooled_begin(), set).await
    }

    /// What the database's schema is to this binary, read only: whether oncommit's
    /// migrations are applied up to the version it knows (see [`SchemaStatus::check`]).
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        let mut conn = self.acquire().await?;
        let (applied, compatible_from) =
            crate::driver::migrations::recorded(&mut conn, self.pooled_begin(), &migrate::ONCOMMIT).await?;
        let expected = on_backend!(self.backend(), migrations(&migrate::ONCOMMIT)).last().map_or(0, |m| m.version);
        Ok(SchemaStatus { applied, expected, compatible_from })
    }

    /// Takes a connection in autocommit mode (each statement commits by itself).
    pub async fn acquire(&self) -> Result<PoolConn> {
        self.inner.pool.acquire().await
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
    ///         tx.on_commit(async move { println!("row {id} committed") });
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

    /// Awaits `hook` after the commit of the transaction the calling code is inside
    /// (Django's `transaction.on_commit`): a transaction closure on this database, a guard
    /// begun by the same task, or a web request's transaction. It joins that transaction's
    /// innermost open scope, so a savepoint that rolls back discards it. Outside any
    /// transaction it runs at once, and then its error is returned.
    ///
    /// ```no_run
    /// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
    /// db.atomic(async |tx| {
    ///     // Deep in code that was handed only the Db:
    ///     tx.db().on_commit(async { println!("runs after the commit, never before") }).await?;
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn on_commit<R: HookOutput>(&self, hook: impl Future<Output = R> + Send + 'static) -> Result<()> {
        self.hook_after_commit(Hook::new(hook, false)).await
    }

    /// Like [`Db::on_commit`], but a failure is logged, and the transaction's later hooks
    /// still run (Django's `robust=True`).
    pub async fn on_commit_robust<R: HookOutput>(&self, hook: impl Future<Output = R> + Send + 'static) -> Result<()> {
        self.hook_after_commit(Hook::new(hook, true)).await
    }

    /// Defers `hook` to the commit of the transaction the calling code is inside, or runs it
    /// now when there is none.
    async fn hook_after_commit(&self, hook: Hook) -> Result<()> {
        match defer_hook(self, hook) {
            Ok(()) => Ok(()),
            Err(hook) => hooks::run_hook_now(hook).await,
        }
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
        Db {
            inner: Arc::new(DbInner {
                pool: inner.pool.derive(&options, settings),
                display_url: inner.display_url.clone(),
                id: inner.id,
                wake: inner.wake.clone(),
                query_timeout,
                #[cfg(feature = "postgres")]
                notifier: inner.notifier.clone(),
                guards: inner.guards.clone(),
                finished_counts: inner.finished_counts.clone(),
            }),
        }
    }

    /// What follows `BEGIN` in each transaction behind a transaction pooler; `None`
    /// without one.
    pub(crate) fn pooled_begin(&self) -> Option<&str> {
        self.inner.pool.pooled_begin()
    }

    /// What sits between this pool and PostgreSQL.
    pub fn pooler(&self) -> Pooler {
        if self.pooled_begin().is_some() { Pooler::Transaction } else { Pooler::None }
    }

    /// A pool of one connection for a worker's LISTEN, following the server through
    /// failovers: to the server this pool uses, or to the direct URL beside a transaction
    /// pooler. `None` where LISTEN cannot work (a transaction pooler and no direct URL;
    /// SQLite). Over a pool given by the caller, that pool itself.
    #[cfg(feature = "postgres")]
    pub(crate) fn listen_pool(&self) -> Option<ListenPool> {
        self.inner.pool.listen_pool()
    }

    /// Looks at an error oncommit met on this pool: one that says the server is gone or no
    /// longer suits (a failover) starts the search for the one that does.
    pub(crate) fn saw(&self, err: &Error) {
        self.inner.pool.saw(err);
    }

    /// The bound on oncommit's own statements, on a worker's own pool.
    pub(crate) fn query_timeout(&self) -> Option<Duration> {
        self.inner.query_timeout
    }

    /// Closes the pool: waits for connections in use to come back, closes them all.
    pub(crate) async fn close(&self) {
        self.inner.pool.close().await;
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
        self.inner.pool.write_gate(wait).await
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
        #[cfg(feature = "postgres")]
        if let Some(notifier) = &self.inner.notifier {
            notifier.wake(queues);
        }
        #[cfg(not(feature = "postgres"))]
        drop(queues);
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
