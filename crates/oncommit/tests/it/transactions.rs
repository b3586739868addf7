//! Transaction scopes: commit, rollback, guards, savepoints, durable, read-only, timeouts,
//! failed and lost commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use oncommit::{Backend, Db, DbOptions, Error, Isolation, SerializationKind};
use oncommit_testing::{TestDb, backend_pid, backend_test};

use super::{committed_ids, create_items, ids_on, insert};

backend_test!(pooled async fn closure_commits_on_ok_and_rolls_back_on_err(t) {
    create_items(&t.db).await;
    t.db.atomic(async |tx| insert(tx, 1, "kept").await).await.unwrap();
    let err = t
        .db
        .atomic(async |tx| {
            insert(tx, 2, "discarded").await?;
            Err::<(), _>(Error::app("the view failed"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "the view failed");
    assert_eq!(committed_ids(&t.db).await, vec![1]);
});

backend_test!(pooled async fn uncommitted_rows_are_invisible_to_other_connections(t) {
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 1, "pending").await.unwrap();
    // A SQLite reader does not wait for the writer in WAL mode; a PostgreSQL one neither.
    assert_eq!(committed_ids(&t.db).await, Vec::<i64>::new());
    tx.commit().await.unwrap();
    assert_eq!(committed_ids(&t.db).await, vec![1]);
});

backend_test!(pooled async fn a_dropped_guard_rolls_back_and_its_connection_is_reused_clean(t) {
    create_items(&t.db).await;
    // One connection, so the next transaction must get the very connection the guard had.
    let db = Db::connect_with(&t.url, DbOptions { max_connections: 1, ..DbOptions::default() }).await.unwrap();
    {
        let mut tx = db.begin().await.unwrap();
        insert(&mut tx, 1, "dropped").await.unwrap();
    }
    db.atomic(async |tx| insert(tx, 2, "after").await).await.unwrap();
    assert_eq!(committed_ids(&db).await, vec![2]);
});

backend_test!(pooled async fn a_panicking_closure_rolls_back(t) {
    create_items(&t.db).await;
    let db = t.db.clone();
    let joined = tokio::spawn(async move {
        db.atomic(async |tx| {
            insert(tx, 1, "doomed").await?;
            panic!("the view crashed");
            #[allow(unreachable_code)]
            Ok(())
        })
        .await
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    t.db.atomic(async |tx| insert(tx, 2, "after").await).await.unwrap();
    assert_eq!(committed_ids(&t.db).await, vec![2]);
});

backend_test!(pooled async fn savepoints_roll_back_alone(t) {
    create_items(&t.db).await;
    t.db
        .atomic(async |tx| {
            insert(tx, 1, "outer").await?;
            let inner = tx
                .atomic(async |sp| {
                    assert_eq!(sp.level(), 2);
                    insert(sp, 2, "inner").await?;
                    // A failing statement inside the savepoint: PostgreSQL aborts it, and
                    // rolling back to the savepoint lets the outer transaction go on.
                    insert(sp, 1, "duplicate").await
                })
                .await;
            assert!(inner.unwrap_err().is_unique_violation());
            insert(tx, 3, "outer again").await
        })
        .await
        .unwrap();
    assert_eq!(committed_ids(&t.db).await, vec![1, 3]);
});

backend_test!(pooled async fn released_savepoints_still_roll_back_with_the_outer_transaction(t) {
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    let mut sp = tx.savepoint().await.unwrap();
    insert(&mut sp, 1, "inner").await.unwrap();
    let mut deeper = sp.savepoint().await.unwrap();
    assert_eq!(deeper.level(), 3);
    insert(&mut deeper, 2, "deeper").await.unwrap();
    deeper.commit().await.unwrap();
    sp.commit().await.unwrap();
    assert_eq!(ids_on(tx.conn()).await, vec![1, 2]);
    tx.rollback().await.unwrap();
    assert_eq!(committed_ids(&t.db).await, Vec::<i64>::new());
});

backend_test!(pooled async fn an_abandoned_savepoint_guard_blocks_the_commit(t) {
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 1, "outer").await.unwrap();
    {
        let mut sp = tx.savepoint().await.unwrap();
        insert(&mut sp, 2, "inner").await.unwrap();
        // dropped without commit or rollback
    }
    assert!(matches!(tx.savepoint().await.map(drop), Err(Error::AbandonedSavepoint)));
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::AbandonedSavepoint), "{err:?}");
    assert_eq!(committed_ids(&t.db).await, Vec::<i64>::new());
});

backend_test!(pooled async fn durable_scopes_refuse_to_nest(t) {
    let db = t.db.clone();
    t.db
        .atomic(async move |_tx| {
            let err = db.transaction().durable().run(async |_| Ok(())).await.unwrap_err();
            assert!(matches!(err, Error::DurableNested), "{err:?}");
            Ok(())
        })
        .await
        .unwrap();
    t.db.transaction().durable().run(async |_| Ok(())).await.unwrap();
});

backend_test!(pooled async fn read_only_transactions_refuse_writes_and_leave_the_connection_writable(t) {
    create_items(&t.db).await;
    let db = Db::connect_with(&t.url, DbOptions { max_connections: 1, ..DbOptions::default() }).await.unwrap();
    let err = db.transaction().read_only().run(async |tx| insert(tx, 1, "nope").await).await.unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    db.atomic(async |tx| insert(tx, 2, "yes").await).await.unwrap();
    assert_eq!(committed_ids(&db).await, vec![2]);
});

backend_test!(pooled async fn options_that_make_no_sense_are_refused(t) {
    let err = t.db.transaction().retry(oncommit::TransactionRetry::default()).begin().await.map(drop).unwrap_err();
    assert!(matches!(err, Error::InvalidTransactionOptions(_)), "{err:?}");
    let timed = t.db.transaction().statement_timeout(Duration::from_millis(50)).begin().await.map(drop);
    match t.backend() {
        Backend::Postgres => timed.unwrap(),
        Backend::Sqlite => assert!(matches!(timed, Err(Error::Unsupported { .. })), "{timed:?}"),
    }
});

backend_test!(pooled async fn lock_timeout_bounds_the_wait_for_a_writer(t) {
    create_items(&t.db).await;
    t.db.atomic(async |tx| insert(tx, 1, "row").await).await.unwrap();
    let mut holder = t.db.begin().await.unwrap();
    oncommit::with_conn!(holder.conn(), c => {
        sqlx::query("UPDATE items SET name = 'held' WHERE id = 1").execute(c).await.unwrap();
    });
    let err = t
        .db
        .transaction()
        .lock_timeout(Duration::from_millis(50))
        .run(async |tx| {
            oncommit::with_conn!(tx.conn(), c => {
                sqlx::query("UPDATE items SET name = 'second' WHERE id = 1").execute(c).await?;
            });
            Ok(())
        })
        .await
        .unwrap_err();
    match t.backend() {
        Backend::Postgres => assert!(err.is_lock_not_available(), "{err:?}"),
        // SQLite's second writer waits at BEGIN IMMEDIATE for the database write lock.
        Backend::Sqlite => assert!(matches!(err, Error::Busy { .. }), "{err:?}"),
    }
    holder.commit().await.unwrap();
});

#[tokio::test]
async fn statement_timeout_cancels_slow_statements() {
    let t = TestDb::postgres().await;
    let err =
        t.db.transaction()
            .statement_timeout(Duration::from_millis(50))
            .run(async |tx| {
                sqlx::query("SELECT pg_sleep(5)").execute(tx.postgres()?).await?;
                Ok(())
            })
            .await
            .unwrap_err();
    assert!(matches!(err, Error::StatementTimeout { .. }), "{err:?}");
    t.finish().await;
}

#[tokio::test]
async fn a_commit_answered_with_rollback_is_an_error() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    let err =
        t.db.atomic(async |tx| {
            insert(tx, 1, "first").await?;
            // The classic swallowed error: the transaction is now aborted.
            let _ = insert(tx, 1, "duplicate").await;
            tx.on_commit(async {
                if true {
                    panic!("a hook of a rolled-back transaction ran")
                }
            });
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitRolledBack), "{err:?}");
    assert_eq!(committed_ids(&t.db).await, Vec::<i64>::new());
    t.finish().await;
}

#[tokio::test]
async fn a_connection_lost_at_commit_is_outcome_unknown() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 1, "in flight").await.unwrap();
    let pid = backend_pid(tx.postgres().unwrap()).await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(t.db.pg_pool().unwrap()).await.unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::CommitOutcomeUnknown(_)), "{err:?}");
    assert!(err.is_connection_lost() && !err.is_retryable());
    // The pool replaces the broken connection.
    t.db.atomic(async |tx| insert(tx, 2, "after").await).await.unwrap();
    assert_eq!(committed_ids(&t.db).await, vec![2]);
    t.finish().await;
}

#[tokio::test]
async fn a_connection_lost_mid_transaction_is_connection_lost() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    let pid = backend_pid(tx.postgres().unwrap()).await;
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(t.db.pg_pool().unwrap()).await.unwrap();
    let err: Error = insert(&mut tx, 1, "lost").await.unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    drop(tx);
    t.finish().await;
}

#[tokio::test]
async fn repeatable_read_keeps_one_snapshot_while_read_committed_does_not() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    for (level, sees_new_row) in
        [(oncommit::Isolation::ReadCommitted, true), (oncommit::Isolation::RepeatableRead, false)]
    {
        let mut reader = t.db.transaction().isolation(level).begin().await.unwrap();
        let before = ids_on(reader.conn()).await.len();
        t.db.atomic(async |tx| insert(tx, before as i64 + 100, "concurrent").await).await.unwrap();
        let after = ids_on(reader.conn()).await.len();
        assert_eq!(after == before + 1, sees_new_row, "{level:?}");
        reader.commit().await.unwrap();
    }
    t.finish().await;
}

#[tokio::test]
async fn a_unique_violation_names_its_constraint_and_aborts_the_transaction() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 1, "first").await.unwrap();
    let err = insert(&mut tx, 1, "again").await.unwrap_err();
    let Error::UniqueViolation { constraint, .. } = &err else { panic!("{err:?}") };
    assert_eq!(constraint.as_deref(), Some("items_pkey"));
    assert_eq!(err.code(), Some("23505"));
    let err = insert(&mut tx, 2, "after the failure").await.unwrap_err();
    assert!(matches!(err, Error::InFailedTransaction), "{err:?}");
    tx.rollback().await.unwrap();
    t.finish().await;
}

/// Why writing scopes use `BEGIN IMMEDIATE`: a deferred transaction that read first and
/// writes after another connection committed fails with `SQLITE_BUSY_SNAPSHOT` at once,
/// whatever the busy timeout. oncommit reports it as the serialization failure it is.
#[tokio::test]
async fn a_stale_sqlite_snapshot_is_a_serialization_failure() {
    let t = TestDb::sqlite().await;
    create_items(&t.db).await;
    t.db.atomic(async |tx| insert(tx, 1, "row").await).await.unwrap();
    let pool = t.db.sqlite_pool().unwrap();
    let mut deferred = pool.acquire().await.unwrap();
    sqlx::raw_sql("BEGIN DEFERRED").execute(&mut *deferred).await.unwrap();
    sqlx::query("SELECT name FROM items").fetch_all(&mut *deferred).await.unwrap();
    t.db.atomic(async |tx| insert(tx, 2, "concurrent").await).await.unwrap();
    let err: Error =
        sqlx::query("UPDATE items SET name = 'stale' WHERE id = 1").execute(&mut *deferred).await.unwrap_err().into();
    assert!(err.is_serialization_failure() && err.is_retryable(), "{err:?}");
    assert!(matches!(err, Error::SerializationFailure { kind: SerializationKind::WriteConflict, .. }), "{err:?}");
    sqlx::raw_sql("ROLLBACK").execute(&mut *deferred).await.unwrap();
    t.finish().await;
}

/// PostgreSQL reports both as 40001; oncommit says which one it was.
#[tokio::test]
async fn serialization_failures_say_whether_a_write_conflicted_or_ssi_found_a_cycle() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    t.db.atomic(async |tx| {
        insert(tx, 1, "one").await?;
        insert(tx, 2, "two").await
    })
    .await
    .unwrap();
    let update = async |tx: &mut oncommit::Tx<'_>, id: i64| -> oncommit::Result<()> {
        sqlx::query("UPDATE items SET name = name || '!' WHERE id = $1").bind(id).execute(tx.postgres()?).await?;
        Ok(())
    };

    // Repeatable read: the row changed after this transaction's snapshot.
    let mut a = t.db.transaction().isolation(Isolation::RepeatableRead).begin().await.unwrap();
    ids_on(a.conn()).await;
    t.db.atomic(async |b| update(b, 1).await).await.unwrap();
    let err = update(&mut a, 1).await.unwrap_err();
    assert!(matches!(err, Error::SerializationFailure { kind: SerializationKind::WriteConflict, .. }), "{err:?}");
    assert!(err.to_string().contains("write conflict"), "{err}");
    a.rollback().await.unwrap();

    // Serializable write skew: each reads both rows and writes a different one.
    let mut a = t.db.transaction().isolation(Isolation::Serializable).begin().await.unwrap();
    let mut b = t.db.transaction().isolation(Isolation::Serializable).begin().await.unwrap();
    ids_on(a.conn()).await;
    ids_on(b.conn()).await;
    update(&mut a, 1).await.unwrap();
    update(&mut b, 2).await.unwrap();
    a.commit().await.unwrap();
    let err = b.commit().await.unwrap_err();
    assert!(matches!(err, Error::SerializationFailure { kind: SerializationKind::Dependency, .. }), "{err:?}");
    t.finish().await;
}

backend_test!(pooled async fn set_rollback_rolls_a_scope_back_without_an_error(t) {
    create_items(&t.db).await;
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let value = t
        .db
        .atomic(async move |tx| {
            insert(tx, 1, "kept").await?;
            tx.atomic(async |sp| {
                insert(sp, 2, "dry run").await?;
                sp.set_rollback(true);
                assert!(sp.will_roll_back());
                Ok(())
            })
            .await?;
            assert!(!tx.will_roll_back(), "the mark was the savepoint's");
            let r = r.clone();
            tx.on_commit(async move { r.store(true, Ordering::SeqCst) });
            Ok("done")
        })
        .await
        .unwrap();
    assert_eq!(value, "done");
    assert_eq!(committed_ids(&t.db).await, [1]);
    assert!(ran.load(Ordering::SeqCst));

    // The outermost scope: nothing is committed, no hook runs, and the closure's value comes back.
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let value = t
        .db
        .atomic(async move |tx| {
            insert(tx, 3, "dropped").await?;
            let r = r.clone();
            tx.on_commit(async move { r.store(true, Ordering::SeqCst) });
            tx.set_rollback(true);
            Ok(7)
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(committed_ids(&t.db).await, [1]);
    assert!(!ran.load(Ordering::SeqCst));

    // Taken back: commits after all. A guard's commit obeys the mark too.
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 4, "kept after all").await.unwrap();
    tx.set_rollback(true);
    tx.set_rollback(false);
    tx.commit().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    insert(&mut tx, 5, "not kept").await.unwrap();
    tx.set_rollback(true);
    tx.commit().await.unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 4]);
});

backend_test!(pooled async fn a_failure_without_a_savepoint_marks_the_enclosing_scope(t) {
    create_items(&t.db).await;
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    t.db.atomic(async move |tx| {
        insert(tx, 1, "outer").await?;
        let err = tx
            .atomic_without_savepoint(async |same| {
                insert(same, 2, "inner").await?;
                let r = r.clone();
                same.on_commit(async move { r.store(true, Ordering::SeqCst) });
                Err::<(), _>(Error::app("inner step failed"))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("inner step failed"));
        assert!(tx.will_roll_back());
        Ok(())
    })
    .await
    .unwrap();
    assert!(committed_ids(&t.db).await.is_empty(), "the whole transaction rolled back");
    assert!(!ran.load(Ordering::SeqCst));

    // Inside a savepoint, only that savepoint goes.
    t.db.atomic(async |tx| {
        insert(tx, 1, "outer").await?;
        tx.atomic(async |sp| {
            sp.atomic_without_savepoint(async |same| {
                insert(same, 2, "inner").await?;
                Err::<(), _>(Error::app("inner step failed"))
            })
            .await
            .ok();
            Ok(())
        })
        .await
    })
    .await
    .unwrap();
    assert_eq!(committed_ids(&t.db).await, [1]);
    // And when it succeeds, it is simply part of the scope.
    t.db.atomic(async |tx| tx.atomic_without_savepoint(async |same| insert(same, 3, "fine").await).await).await.unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 3]);
});

#[test]
fn isolation_levels_display_as_postgresql_spells_them() {
    let shown: Vec<String> = Isolation::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["read committed", "repeatable read", "serializable"]);
}

// sqlx's own `begin()` on oncommit's connection: a savepoint, never a second `BEGIN` whose
// `COMMIT` would end the outer transaction early.
backend_test!(pooled async fn sqlx_begin_on_a_transactions_connection_opens_a_savepoint(t) {
    create_items(&t.db).await;
    // One connection: whatever a test leaves on it, the next transaction meets.
    let db = Db::connect_with(&t.url, DbOptions { max_connections: 1, ..DbOptions::default() }).await.unwrap();

    let mut tx = db.begin().await.unwrap();
    insert(&mut tx, 1, "outer").await.unwrap();
    oncommit::with_conn!(tx.conn(), c => {
        let mut inner = sqlx::Connection::begin(c).await.unwrap();
        sqlx::query("INSERT INTO items (id, name) VALUES (2, 'inner')").execute(&mut *inner).await.unwrap();
        inner.commit().await.unwrap(); // releases its savepoint, commits nothing
    });
    assert!(committed_ids(&t.db).await.is_empty(), "the inner commit ended the outer transaction");
    oncommit::with_conn!(tx.conn(), c => {
        let mut inner = sqlx::Connection::begin(c).await.unwrap();
        sqlx::query("INSERT INTO items (id, name) VALUES (3, 'undone')").execute(&mut *inner).await.unwrap();
        inner.rollback().await.unwrap(); // undoes its own work only
    });
    tx.commit().await.unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 2]);

    // A sqlx transaction left open when the scope ends: the commit is refused, nothing of
    // the scope is kept, and the connection goes back to the pool clean.
    let mut tx = db.begin().await.unwrap();
    insert(&mut tx, 4, "outer").await.unwrap();
    oncommit::with_conn!(tx.conn(), c => {
        let inner = sqlx::Connection::begin(c).await.unwrap();
        std::mem::forget(inner);
    });
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::AbandonedSavepoint), "{err:?}");
    assert_eq!(committed_ids(&db).await, [1, 2]);
    db.atomic(async |tx| insert(tx, 5, "after").await).await.unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 2, 5]);
});
