//! Connecting by URL, typed connection errors, migrations.

use oncommit::{Backend, Db, Error};
use oncommit_testing::{admin_url, with_database};

#[tokio::test]
async fn malformed_urls_are_invalid_url_errors() {
    for url in [
        "nonsense",
        "mysql://localhost/db",
        "postgres://host:notaport/db",
        "sqlite::memory:",
        "sqlite://x.db?mode=memory",
        // No file named: each connection would get its own temporary database.
        "sqlite://",
        "sqlite:",
        "sqlite://?mode=rwc",
    ] {
        let err = Db::connect(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn passwords_never_appear_in_errors() {
    let err = Db::connect("postgres://u:hunter2@127.0.0.1:1/db").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let err = Db::connect("mysql://u:hunter2@x/db").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = Db::connect("postgres://u@127.0.0.1:1/db?password=hunter2&sslmode=disable").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    let err = Db::connect("postgres://u@127.0.0.1:1/db?password=hunter2&application_name=x&bogus=1").await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_at_once() {
    let started = std::time::Instant::now();
    let err = Db::connect("postgres://postgres@127.0.0.1:1/postgres").await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { backend: Backend::Postgres, .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    // The pool's own retry loop would take its 30 s acquire timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn an_unknown_role_is_an_authentication_error() {
    let url = admin_url().replacen("postgres@", "no_such_role@", 1);
    let err = Db::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_database_is_reported() {
    let url = with_database(&admin_url(), "oncommit_no_such_database");
    let err = Db::connect(&url).await.unwrap_err();
    assert!(matches!(err, Error::DatabaseUnavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn an_unopenable_sqlite_file_is_reported() {
    let err = Db::connect("sqlite:///no/such/dir/x.db").await.unwrap_err();
    assert!(matches!(err, Error::DatabaseUnavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn sqlite_files_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let db = Db::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    assert!(path.exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(db.sqlite_pool().unwrap()).await.unwrap();
    assert_eq!(mode, "wal");
}

oncommit_testing::backend_test!(async fn migrate_is_idempotent_and_concurrent(t) {
    let (a, b) = tokio::join!(t.db.migrate(), t.db.migrate());
    a.unwrap();
    b.unwrap();
    t.db.migrate().await.unwrap();
    let mut conn = t.db.acquire().await.unwrap();
    // oncommit keeps its bookkeeping to itself: never an application's `_sqlx_migrations`.
    let tables: Vec<String> = oncommit::with_conn!(conn.conn(), c => {
        match t.backend() {
            Backend::Postgres => sqlx::query_scalar(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                 WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
            ).fetch_all(c).await.unwrap(),
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
            ).fetch_all(c).await.unwrap(),
        }
    });
    assert!(tables.iter().all(|t| t.starts_with("oncommit")), "{tables:?}");
    assert!(!tables.iter().any(|t| t.contains("_sqlx_migrations")), "{tables:?}");
});
