//! Row locks: waiting, NOWAIT, SKIP LOCKED, deadlocks and deterministic-order locking.
//! "B is blocked" is read from `pg_blocking_pids`, never guessed with a sleep.

use std::time::Duration;

use oncommit::{Backend, Db, Error, Lock, Tx};
use oncommit_testing::{TestDb, backend_pid, backend_test, wait_until_blocked};
use tokio::sync::oneshot;

use super::{create_items, insert};

async fn items_1_to_3(db: &Db) {
    create_items(db).await;
    db.atomic(async |tx| {
        for id in 1..=3 {
            insert(tx, id, "sock").await?;
        }
        Ok(())
    })
    .await
    .unwrap();
}

async fn lock_one(tx: &mut Tx<'_>, id: i64, lock: &Lock) -> oncommit::Result<Option<i64>> {
    let sql = lock.apply(tx.backend(), "SELECT id FROM items WHERE id = $1");
    Ok(oncommit::with_conn!(tx.conn(), c => {
        sqlx::query_scalar(sql).bind(id).fetch_optional(c).await?
    }))
}

backend_test!(pooled async fn for_update_makes_the_next_writer_wait(t) {
    items_1_to_3(&t.db).await;
    let mut a = t.db.begin().await.unwrap();
    assert_eq!(lock_one(&mut a, 1, &Lock::update()).await.unwrap(), Some(1));
    match t.backend() {
        Backend::Postgres => {
            let db = t.db.clone();
            let (pid_tx, pid_rx) = oneshot::channel();
            let b = tokio::spawn(async move {
                let mut b = db.begin().await?;
                pid_tx.send(backend_pid(b.postgres()?).await).ok();
                let got = lock_one(&mut b, 1, &Lock::update()).await?;
                b.commit().await?;
                Ok::<_, Error>(got)
            });
            wait_until_blocked(&t.db, pid_rx.await.unwrap()).await;
            a.commit().await.unwrap();
            assert_eq!(b.await.unwrap().unwrap(), Some(1));
        }
        Backend::Sqlite => {
            // No row locks: the second writer cannot even begin while A holds the write lock.
            let err = t.db.transaction().lock_timeout(Duration::ZERO).begin().await.map(drop).unwrap_err();
            assert!(matches!(err, Error::Busy { .. }), "{err:?}");
            a.commit().await.unwrap();
            let mut b = t.db.transaction().lock_timeout(Duration::ZERO).begin().await.unwrap();
            assert_eq!(lock_one(&mut b, 1, &Lock::update()).await.unwrap(), Some(1));
            b.commit().await.unwrap();
        }
    }
});

#[tokio::test]
async fn nowait_fails_at_once_with_lock_not_available() {
    let t = TestDb::postgres().await;
    items_1_to_3(&t.db).await;
    let mut a = t.db.begin().await.unwrap();
    lock_one(&mut a, 1, &Lock::update()).await.unwrap();
    let mut b = t.db.begin().await.unwrap();
    let err = lock_one(&mut b, 1, &Lock::update().nowait()).await.unwrap_err();
    assert!(err.is_lock_not_available(), "{err:?}");
    assert_eq!(err.code(), Some("55P03"));
    // A shared lock does not conflict with KEY SHARE.
    lock_one(&mut a, 2, &Lock::share()).await.unwrap();
    b.rollback().await.unwrap();
    let mut c = t.db.begin().await.unwrap();
    assert_eq!(lock_one(&mut c, 2, &Lock::key_share().nowait()).await.unwrap(), Some(2));
    c.rollback().await.unwrap();
    a.rollback().await.unwrap();
    t.finish().await;
}

backend_test!(pooled async fn skip_locked_leaves_locked_rows_out(t) {
    items_1_to_3(&t.db).await;
    if t.backend() == Backend::Sqlite {
        // Nothing else can hold a lock while this transaction holds the write lock.
        let mut tx = t.db.begin().await.unwrap();
        let got = tx.lock_in_order("items", "id", &[3, 1, 2], &Lock::update().skip_locked()).await.unwrap();
        assert_eq!(got, vec![1, 2, 3]);
        tx.commit().await.unwrap();
        return;
    }
    let mut a = t.db.begin().await.unwrap();
    lock_one(&mut a, 2, &Lock::no_key_update()).await.unwrap();
    let mut b = t.db.begin().await.unwrap();
    let got = b.lock_in_order("items", "id", &[3, 2, 1], &Lock::update().skip_locked()).await.unwrap();
    assert_eq!(got, vec![1, 3]);
    b.rollback().await.unwrap();
    a.rollback().await.unwrap();
});

/// The seed's scenario: A locks 1 then 2, B locks 2 then 1. Returns each side's outcome.
async fn opposite_order(db: &Db, ordered: bool) -> [oncommit::Result<()>; 2] {
    let (a_first_tx, a_first) = oneshot::channel::<i32>();
    let (b_first_tx, b_first) = oneshot::channel::<()>();
    let lock = Lock::update();
    let (db_a, db_b, lock_a, lock_b) = (db.clone(), db.clone(), lock.clone(), lock.clone());
    let a = tokio::spawn(async move {
        let mut tx = db_a.begin().await?;
        let pid = backend_pid(tx.postgres()?).await;
        if ordered {
            tx.lock_in_order("items", "id", &[1, 2], &lock_a).await?;
            a_first_tx.send(pid).ok();
        } else {
            lock_one(&mut tx, 1, &lock_a).await?;
            a_first_tx.send(pid).ok();
            b_first.await.ok();
            lock_one(&mut tx, 2, &lock_a).await?;
        }
        tx.commit().await
    });
    let db_watch = db.clone();
    let b = tokio::spawn(async move {
        let a_pid = a_first.await.expect("A reports its pid");
        let mut tx = db_b.begin().await?;
        if ordered {
            tx.lock_in_order("items", "id", &[2, 1], &lock_b).await?;
        } else {
            lock_one(&mut tx, 2, &lock_b).await?;
            b_first_tx.send(()).ok();
            wait_until_blocked(&db_watch, a_pid).await;
            lock_one(&mut tx, 1, &lock_b).await?;
        }
        tx.commit().await
    });
    [a.await.expect("A ran"), b.await.expect("B ran")]
}

#[tokio::test]
async fn opposite_lock_orders_deadlock_and_exactly_one_side_is_aborted() {
    let t = TestDb::postgres().await;
    items_1_to_3(&t.db).await;
    let outcomes = opposite_order(&t.db, false).await;
    let deadlocks: Vec<&Error> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(deadlocks.len(), 1, "{outcomes:?}");
    let err = deadlocks[0];
    assert!(err.is_deadlock() && err.is_retryable(), "{err:?}");
    let Error::Deadlock { detail, .. } = err else { unreachable!() };
    assert!(detail.as_deref().unwrap_or_default().contains("blocked by process"), "{detail:?}");
    t.finish().await;
}

#[tokio::test]
async fn locking_in_key_order_never_deadlocks() {
    let t = TestDb::postgres().await;
    items_1_to_3(&t.db).await;
    let outcomes = opposite_order(&t.db, true).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    t.finish().await;
}
