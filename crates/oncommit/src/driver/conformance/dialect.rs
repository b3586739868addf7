//! The contract's `Dialect` and `Sessions`: how a transaction opens, row locks, the
//! migration record, and the statements on a session.

use std::time::Duration;

use oncommit_testing::backend_test;

use super::open;
use crate::Backend;
use crate::driver::contract::BeginSettings;
use crate::driver::options::{Isolation, Lock};

/// Runs `sql` (statements separated by `;`) on `tx`'s connection.
async fn exec(tx: &mut crate::Tx<'_>, sql: &str) -> crate::Result<()> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    crate::with_conn!(tx.own_conn(), c => sqlx::raw_sql(sql).execute(c).await.map(|_| ()))?;
    Ok(())
}

backend_test!(pooled async fn a_transaction_opens_as_the_settings_ask(t) {
    let db = open(t).await;
    let mut tx = db.begin().await.unwrap();
    exec(&mut tx, "CREATE TABLE socks (id BIGINT PRIMARY KEY); INSERT INTO socks VALUES (1), (2), (3)").await.unwrap();
    tx.commit().await.unwrap();

    let settings = BeginSettings {
        isolation: Some(Isolation::Serializable),
        read_only: true,
        lock_timeout: Some(Duration::from_secs(1)),
        statement_timeout: None,
        pooled: db.pooled_begin(),
    };
    let (begin, reset) = on_backend!(db.backend(), begin_sql(&settings)).unwrap();
    let mut conn = db.acquire().await.unwrap();
    conn.batch(sqlx::AssertSqlSafe(begin)).await.unwrap();
    assert!(conn.batch("INSERT INTO socks VALUES (4)").await.is_err(), "a read-only transaction refuses writes");
    conn.batch("ROLLBACK").await.ok();
    if let Some(reset) = reset {
        conn.batch(sqlx::AssertSqlSafe(reset)).await.unwrap();
    }
    drop(conn);

    // A statement timeout is either honoured or refused with a typed error, never ignored.
    let timed = BeginSettings { statement_timeout: Some(Duration::from_secs(5)), read_only: false, ..settings };
    if let Err(err) = on_backend!(db.backend(), begin_sql(&timed)) {
        assert!(matches!(err, crate::Error::Unsupported { .. }), "{err}");
    }

    // The migration record lists what was applied. Read in a transaction: behind a
    // transaction pooler, a statement outside one may be prepared on one server session and
    // executed on another ("prepared statement sqlx_s_1 does not exist").
    let migrations = on_backend!(db.backend(), const MIGRATIONS);
    let mut tx = db.begin().await.unwrap();
    let mut applied: Vec<i64> =
        crate::with_conn!(tx.own_conn(), c => sqlx::query_scalar(migrations.applied).bind("oncommit").fetch_all(c).await)
            .unwrap();
    tx.commit().await.unwrap();
    applied.sort_unstable();
    let expected: Vec<i64> =
        on_backend!(db.backend(), migrations(&crate::migrate::ONCOMMIT)).iter().map(|m| m.version).collect();
    assert_eq!(applied, expected, "every migration of the set, once");
    assert!(!on_backend!(db.backend(), const SYSTEM_NAME).is_empty());
});

backend_test!(pooled async fn rows_lock_in_key_order_and_sessions_take_their_settings(t) {
    let db = open(t).await;
    let mut tx = db.begin().await.unwrap();
    exec(&mut tx, "CREATE TABLE socks (id BIGINT PRIMARY KEY); INSERT INTO socks VALUES (1), (2), (3)").await.unwrap();
    tx.commit().await.unwrap();

    let clause = on_backend!(db.backend(), lock_clause(&Lock::update()));
    assert_eq!(clause.is_empty(), (db.backend() == crate::Backend::Sqlite), "a row lock, or the write lock");
    let mut tx = db.begin().await.unwrap();
    let locked = on_driver!(tx.own_conn(), rows_lock_in_order("\"socks\"", "\"id\"", &[3, 1, 2, 42], &clause)).unwrap();
    assert_eq!(locked, [1, 2, 3], "in key order, missing keys left out");
    on_driver!(tx.own_conn(), transaction_idle_limit(Duration::from_secs(30))).unwrap();
    on_driver!(tx.own_conn(), sleepers_wake(&["q".to_owned()])).unwrap();
    exec(&mut tx, "UPDATE socks SET id = id").await.unwrap();
    tx.commit().await.unwrap();

    if !(db.backend() == crate::Backend::Sqlite) {
        // SKIP LOCKED leaves out what another transaction holds.
        let mut holder = db.begin().await.unwrap();
        let held = on_driver!(holder.own_conn(), rows_lock_in_order("\"socks\"", "\"id\"", &[1], &clause)).unwrap();
        assert_eq!(held, [1]);
        let skip = on_backend!(db.backend(), lock_clause(&Lock::update().skip_locked()));
        let mut tx = db.begin().await.unwrap();
        let free = on_driver!(tx.own_conn(), rows_lock_in_order("\"socks\"", "\"id\"", &[1, 2, 3], &skip)).unwrap();
        assert_eq!(free, [2, 3]);
        tx.commit().await.unwrap();
        holder.commit().await.unwrap();
    }

    // The vacuum duty's view of the table: PostgreSQL's, which may vacuum it (the tests'
    // role is a superuser), outside a transaction; nothing behind a transaction pooler,
    // where VACUUM cannot run, nor on SQLite, which reclaims space itself.
    let upkeep = crate::queries::table_upkeep(&db).await.unwrap();
    if db.backend() == Backend::Postgres && db.pooled_begin().is_none() {
        let upkeep = upkeep.expect("PostgreSQL tells the jobs table's upkeep");
        assert!(upkeep.permitted && !upkeep.vacuuming, "{upkeep:?}");
        crate::queries::table_vacuum(&db, false).await.unwrap();
        crate::queries::table_vacuum(&db, true).await.unwrap();
        let vacuumed = crate::queries::table_upkeep(&db).await.unwrap().unwrap();
        assert!(vacuumed.vacuumed_ago.is_some(), "{vacuumed:?}");
    } else {
        assert_eq!(upkeep, None);
    }
});

backend_test!(pooled async fn a_failed_statement_poisons_the_transaction_where_the_dialect_says(t) {
    let db = open(t).await;
    let backend = db.backend();
    assert!(!on_backend!(backend, cannot_open("23505")), "a unique violation is not a file that cannot be opened");
    let mut conn = db.acquire().await.unwrap();
    conn.batch("BEGIN").await.unwrap();
    assert!(conn.batch("SELECT * FROM no_such_table").await.is_err());
    let next = conn.batch("SELECT 1").await;
    assert_eq!(
        next.is_err(),
        on_backend!(backend, const COMMIT_HIDES_FAILURE),
        "after a failure, PostgreSQL refuses every statement until the end (and its COMMIT rolls back)"
    );
    conn.batch("ROLLBACK").await.unwrap();
});
