//! Throwaway databases for tests of oncommit and of applications built on it.
//!
//! - [`TestDb::sqlite`]: a fresh SQLite file in a temporary directory.
//! - [`TestDb::postgres`]: a fresh database on the PostgreSQL server named by
//!   `ONCOMMIT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`). When the
//!   tests cannot log in there (nothing answers, or it refuses the role, as a fresh Debian
//!   server does over TCP) but PostgreSQL's server binaries are installed, a private trust
//!   cluster is started for the test process. When neither works the test **fails**:
//!   PostgreSQL tests are never skipped.
//! - [`PgBouncer`]: a transaction pooler in front of the test server, for tests of
//!   `pooler=transaction`.
//! - [`LogCapture`]: what the code under test logged.
//! - [`Cluster`]: a private server the test starts late, crashes or freezes.
//! - [`ReplicatedPair`]: a primary with a synchronous streaming standby, for failover tests.
//! - [`backend_test!`]: writes a test body once and runs it on both backends.
//! - [`eventually`], [`wait_for_job`], [`wait_until_blocked`]: waiting on events, not for
//!   guessed durations.
//! - [`assert_enqueued`], [`assert_not_enqueued`], [`enqueued`]: what the code under test
//!   enqueued, decoded as its task. `Worker::drain` runs it inside the test.
//! - [`capture_on_commit`]: keeps the `on_commit` hooks of the commits inside a future, to
//!   count them and run them when the test says (Django's `captureOnCommitCallbacks`).
//!
//! The guide: [`guide`].

mod assertions;

#[doc = include_str!("../../../docs/testing.md")]
pub mod guide {}
mod cluster;
mod logs;
mod node;
mod pgbouncer;
mod replication;

pub use logs::LogCapture;
pub use node::Cluster;
pub use pgbouncer::PgBouncer;
pub use replication::ReplicatedPair;

pub use assertions::{assert_enqueued, assert_not_enqueued, enqueued};
/// Re-exported from `oncommit`: keeps the `on_commit` hooks of a future's commits for the test to run.
pub use oncommit::{CapturedHooks, capture_on_commit};

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use oncommit::{Backend, Db};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The server tests use unless `ONCOMMIT_TEST_PG_URL` says otherwise.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test.
pub struct TestDb {
    /// The pool over it.
    pub db: Db,
    /// The URL it can be reached at (for a second process, such as the CLI).
    pub url: String,
    /// What to remove when the test passes.
    cleanup: Cleanup,
    /// Which of the test targets this is: `sqlite`, `postgres` or `pgbouncer`.
    target: &'static str,
}

enum Cleanup {
    /// Removed with the directory when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// Dropped from the server by [`TestDb::finish`]; a failed test leaves it for inspection.
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A throwaway database on `backend`.
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => TestDb::sqlite().await,
            Backend::Postgres => TestDb::postgres().await,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url).await.expect("open a SQLite test database");
        TestDb { db, url, cleanup: Cleanup::Sqlite(dir), target: "sqlite" }
    }

    /// A fresh database on the test PostgreSQL server.
    pub async fn postgres() -> TestDb {
        let admin_url = admin_url();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "oncommit_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test PostgreSQL server");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        let db = Db::connect(&url).await.expect("connect to the test database");
        TestDb { db, url, cleanup: Cleanup::Postgres { admin_url, name }, target: "postgres" }
    }

    /// A fresh database on the test PostgreSQL server, reached through a PgBouncer in
    /// transaction pooling mode (one per test process, started at first use, stopped with
    /// the process) with `?pooler=transaction`, and LISTEN on the direct URL: the third
    /// target of the tests written with `backend_test!(pooled …)`. `url` goes through the
    /// pooler too.
    pub async fn pooled() -> TestDb {
        let direct = TestDb::postgres().await;
        let bouncer = shared_pgbouncer();
        let name = match &direct.cleanup {
            Cleanup::Postgres { name, .. } => name.clone(),
            Cleanup::Sqlite(_) => unreachable!("a PostgreSQL database"),
        };
        let url = format!("{}?pooler=transaction", bouncer.url(&name));
        if let Some(pool) = direct.db.pg_pool() {
            pool.close().await;
        }
        // LISTEN on the direct URL, as a deployment behind a pooler is advised to.
        let options = oncommit::DbOptions { listen_url: Some(direct.url.clone()), ..oncommit::DbOptions::default() };
        let db = Db::connect_with(&url, options).await.expect("connect to the test database through PgBouncer");
        TestDb { db, url, cleanup: direct.cleanup, target: "pgbouncer" }
    }

    /// Which test target this is: `sqlite`, `postgres`, or `pgbouncer` (PostgreSQL through
    /// the pooler): for names that must differ between the targets of one test, which run
    /// at once in one process.
    pub fn target(&self) -> &'static str {
        self.target
    }

    /// The backend of this database.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Removes the database; call it at the end of a passing test.
    pub async fn finish(self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            if let Some(pool) = self.db.pg_pool() {
                pool.close().await;
            }
            if let Ok(mut admin) = PgConnection::connect(admin_url).await {
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut admin).await.ok();
            }
        }
    }
}

/// The test process's PgBouncer in front of the test server, for [`TestDb::pooled`].
fn shared_pgbouncer() -> &'static PgBouncer {
    static BOUNCER: OnceLock<PgBouncer> = OnceLock::new();
    BOUNCER.get_or_init(|| {
        PgBouncer::start(&admin_url(), &["max_client_conn = 1000", "default_pool_size = 20"])
            .unwrap_or_else(|e| panic!("start PgBouncer for the pooled tests: {e}"))
    })
}

/// The server process id of a PostgreSQL connection (for [`wait_until_blocked`]).
pub async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.expect("read pg_backend_pid()")
}

/// Waits until `check` yields a value, and returns it: the one place tests wait for
/// something another task or process does (a job's state, a row). Between checks it yields
/// and pauses briefly, so the thing waited for gets the CPU; after 30 s it panics, naming
/// `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// Waits until the PostgreSQL backend `pid` is waiting for a lock held by another session,
/// as `pg_blocking_pids` reports it. This is the event a lock test waits on instead of
/// sleeping for a guessed time.
pub async fn wait_until_blocked(db: &Db, pid: i32) {
    let pool = db.pg_pool().expect("wait_until_blocked needs PostgreSQL");
    eventually(&format!("backend {pid} to be blocked"), || async {
        let blocked: bool = sqlx::query_scalar("SELECT cardinality(pg_blocking_pids($1)) > 0")
            .bind(pid)
            .fetch_one(pool)
            .await
            .expect("query pg_blocking_pids");
        blocked.then_some(())
    })
    .await
}

/// Waits until job `id` satisfies `ok`, and returns it.
pub async fn wait_for_job(
    db: &Db,
    id: oncommit::JobId,
    what: &str,
    ok: impl Fn(&oncommit::Job) -> bool,
) -> oncommit::Job {
    eventually(&format!("job {id} to be {what}"), || async {
        db.jobs().get(id).await.expect("read the job").filter(|job| ok(job))
    })
    .await
}

/// The URL of the maintenance database on the test server: the one `ONCOMMIT_TEST_PG_URL`
/// names (default [`DEFAULT_PG_URL`]) when the tests can log in there, else a private trust
/// cluster started for this test process. Says on stderr which, and why, once per process.
/// Panics when no server can be had.
pub fn admin_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let configured = std::env::var("ONCOMMIT_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
        match cluster::choose_server(&configured) {
            Ok((url, note)) => {
                eprintln!("oncommit-testing: {note}");
                url
            }
            Err(why) => {
                panic!("no PostgreSQL server for the tests: {why}. Start PostgreSQL or set ONCOMMIT_TEST_PG_URL.")
            }
        }
    })
    .clone()
}

/// Starts a private PostgreSQL cluster for this test process that also listens on
/// `listen_addresses` (PostgreSQL's comma-separated list, loopback included) and trusts
/// clients from `trusted` (CIDR), for tests whose clients live elsewhere (a network
/// namespace). Returns the URL of its `postgres` database over loopback; the cluster stops
/// when the test process exits.
pub fn private_cluster(listen_addresses: &str, trusted: &str) -> Result<String, String> {
    cluster::start_cluster(listen_addresses, Some(trusted))
}

/// Starts a private PostgreSQL cluster with `ssl = on` for this test process: its server
/// certificate names `localhost` (not `127.0.0.1`) and is signed by a CA made for it.
/// Returns the URL of its `postgres` database over 127.0.0.1, without `sslmode`, and the
/// paths of that CA and of an unrelated one; the cluster stops when the process exits.
pub fn tls_cluster() -> Result<TlsCluster, String> {
    let (url, dir) = cluster::start_tls()?;
    Ok(TlsCluster { url, ca: dir.join("ca.pem"), other_ca: dir.join("other-ca.pem") })
}

/// A private cluster that speaks TLS (see [`tls_cluster`]).
#[derive(Debug, Clone)]
pub struct TlsCluster {
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub url: String,
    /// The CA that signed the server's certificate, for `sslrootcert`.
    pub ca: std::path::PathBuf,
    /// A CA that signed nothing the server has: `verify-ca` with it must fail.
    pub other_ca: std::path::PathBuf,
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Writes a test once and runs it on both backends, each on its own throwaway database,
/// on a multi-threaded runtime (concurrency tests need real parallelism):
///
/// ```
/// oncommit_testing::backend_test!(async fn hooks_run_after_commit(t) {
///     t.db.atomic(async |tx| { tx.on_commit(async {}); Ok(()) }).await.unwrap();
/// });
/// # fn main() {}
/// ```
///
/// expands to a module `hooks_run_after_commit` with tests `sqlite` and `postgres`. The
/// database is removed when the body returns; a failing test leaves it for inspection.
/// `backend_test!(pooled async fn …)` adds a third, `pgbouncer`: PostgreSQL through PgBouncer
/// in transaction pooling mode ([`TestDb::pooled`]).
#[macro_export]
macro_rules! backend_test {
    (pooled $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block) => {
        $crate::backend_test!(@module [pgbouncer] $(#[$meta])* async fn $name($t) $body);
    };
    ($(#[$meta:meta])* async fn $name:ident($t:ident) $body:block) => {
        $crate::backend_test!(@module [] $(#[$meta])* async fn $name($t) $body);
    };
    (@module [$($pooled:ident)?] $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn case($t: &$crate::TestDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = $crate::TestDb::sqlite().await;
                case(&t).await;
                t.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let t = $crate::TestDb::postgres().await;
                case(&t).await;
                t.finish().await;
            }

            $(
                /// Through PgBouncer in transaction pooling mode (`TestDb::pooled`).
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $pooled() {
                    let t = $crate::TestDb::pooled().await;
                    case(&t).await;
                    t.finish().await;
                }
            )?
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_swapped() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/p?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
