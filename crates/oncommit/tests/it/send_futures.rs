//! Compile tests of the everyday shapes of transactional code where the future must be
//! `Send` (a spawned task, a hook, a handler), with `oncommit::atomic!`. Each one is also
//! run on both backends, so it is shown to do what it says, not only to compile: if a
//! change to the macro or to `Tx` made any of these futures `!Send` or stopped borrowed
//! captures from compiling, this file (and so the suite) would fail to build. The axum
//! handler is in `oncommit-axum/tests/layer.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oncommit::{Error, SerializationKind, TransactionRetry, Tx};
use oncommit_testing::backend_test;

use super::{committed_ids, create_items, insert};

/// Demands that `fut` be `Send`, as `tokio::spawn` and axum do, without spawning it, so the
/// future can borrow from the test.
fn send<F: Future + Send>(fut: F) -> F {
    fut
}

fn simulated_conflict() -> Error {
    Error::SerializationFailure { kind: SerializationKind::WriteConflict, message: "simulated".into() }
}

backend_test!(pooled async fn a_spawned_task_borrows_its_captures(t) {
    create_items(&t.db).await;
    let db = t.db.clone();
    let task = tokio::spawn(async move {
        let names = vec!["one".to_owned(), "two".to_owned()];
        let names = &names;
        let mut written = 0;
        oncommit::atomic!(db, |tx| {
            for (i, name) in names.iter().enumerate() {
                insert(tx, i as i64 + 1, name).await?;
                written += 1;
            }
            Ok(())
        })
        .await?;
        Ok::<_, Error>(written)
    });
    assert_eq!(task.await.unwrap().unwrap(), 2);
    assert_eq!(committed_ids(&t.db).await, [1, 2]);
});

backend_test!(pooled async fn borrowed_state_outlives_no_clone(t) {
    create_items(&t.db).await;
    // A borrow of a local (not 'static) inside a future that must be Send.
    let name = String::from("borrowed");
    let id = send(oncommit::atomic!(t.db, |tx| {
        insert(tx, 5, &name).await?;
        Ok(5)
    }))
    .await
    .unwrap();
    assert_eq!(id, 5);
    assert_eq!(name, "borrowed");
    assert_eq!(committed_ids(&t.db).await, [5]);
});

backend_test!(pooled async fn a_nested_scope_rolls_back_alone(t) {
    create_items(&t.db).await;
    let label = String::from("inner");
    let outcome = send(oncommit::atomic!(&t.db, |tx| {
        insert(tx, 1, "outer").await?;
        let inner = oncommit::atomic!(tx, |sp| {
            assert_eq!(sp.level(), 2);
            insert(sp, 2, &label).await?;
            Err::<(), _>(Error::app("the inner step fails"))
        })
        .await;
        assert!(inner.is_err());
        // A savepoint that commits keeps its rows.
        oncommit::atomic!(tx, |sp| insert(sp, 3, &label).await).await?;
        Ok(tx.level())
    }))
    .await;
    assert_eq!(outcome.unwrap(), 1);
    assert_eq!(committed_ids(&t.db).await, [1, 3]);
});

backend_test!(pooled async fn a_hook_that_transacts(t) {
    create_items(&t.db).await;
    // An mpsc sender, cloned per run: the block may run more than once, so (as in an
    // FnMut closure) it cannot move a capture out, and rustc says so.
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let db = t.db.clone();
    oncommit::atomic!(t.db, |tx| {
        insert(tx, 1, "first").await?;
        let (db, done) = (db.clone(), done.clone());
        tx.on_commit(async move {
            // Runs after the commit, in its own transaction, with a borrow of its own data.
            let name = String::from("written by the hook");
            let result = oncommit::atomic!(db, |tx| insert(tx, 2, &name).await).await;
            done.send(result).ok();
        });
        Ok(())
    })
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), finished.recv()).await.unwrap().unwrap().unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 2]);
});

backend_test!(pooled async fn a_retried_block_changes_its_captures(t) {
    create_items(&t.db).await;
    let mut runs = 0;
    let retry = TransactionRetry::default().base_delay(Duration::from_millis(1));
    let value = send(oncommit::atomic!(t.db.transaction().retry(retry), |tx| {
        runs += 1;
        insert(tx, i64::from(tx.attempt()), "attempt").await?;
        if tx.attempt() < 3 {
            return Err(simulated_conflict());
        }
        Ok(tx.attempt())
    }))
    .await
    .unwrap();
    assert_eq!((value, runs), (3, 3));
    // Each failed attempt was its own transaction, rolled back.
    assert_eq!(committed_ids(&t.db).await, [3]);
});

backend_test!(pooled async fn a_block_that_fails_without_retry_runs_once(t) {
    create_items(&t.db).await;
    let runs = Arc::new(AtomicU32::new(0));
    let err = oncommit::atomic!(t.db, |tx| {
        runs.fetch_add(1, Ordering::Relaxed);
        insert(tx, 1, "rolled back").await?;
        Err::<(), _>(simulated_conflict())
    })
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    assert!(committed_ids(&t.db).await.is_empty());
});

backend_test!(pooled async fn a_guard_is_a_scope_too(t) {
    create_items(&t.db).await;
    let mut guard = t.db.begin().await.unwrap();
    insert(&mut guard, 1, "outer").await.unwrap();
    send(oncommit::atomic!(guard, |sp| insert(sp, 2, "savepoint").await)).await.unwrap();
    send(helper(&mut guard)).await.unwrap();
    assert_eq!(guard.level(), 1);
    guard.commit().await.unwrap();
    assert_eq!(committed_ids(&t.db).await, [1, 2, 9]);
});

backend_test!(pooled async fn db_level_calls_inside_the_block_act_on_its_transaction(t) {
    create_items(&t.db).await;
    let (seen, mut hooks) = tokio::sync::mpsc::unbounded_channel();
    let db = t.db.clone();
    let err = oncommit::atomic!(t.db, |tx| {
        insert(tx, 1, "row").await?;
        let seen = seen.clone();
        // Code handed only the Db defers its hook to this transaction's commit.
        db.on_commit(async move { seen.send("after commit").map(drop) }).await?;
        assert!(hooks.try_recv().is_err(), "the hook ran before the commit");
        // And an autocommit enqueue here is refused (seed 000's race).
        Ok(db.enqueue_raw("noop", &serde_json::json!({}), Default::default()).await.unwrap_err())
    })
    .await
    .unwrap();
    assert!(matches!(err, Error::EnqueueOutsideTransaction), "{err:?}");
    assert_eq!(hooks.recv().await, Some("after commit"));
});

// A durable scope refuses to nest, through the macro as through the closure.
backend_test!(pooled async fn durable_refuses_to_nest(t) {
    let err = oncommit::atomic!(t.db, |_tx| {
        oncommit::atomic!(t.db.transaction().durable(), |_inner| Ok(())).await
    })
    .await
    .unwrap_err();
    assert!(matches!(err, Error::DurableNested), "{err:?}");
});

/// The macro's `tx` is the same `&mut Tx` a closure gets, so helpers take either.
async fn helper(tx: &mut Tx<'_>) -> oncommit::Result<()> {
    oncommit::atomic!(tx, |sp| insert(sp, 9, "helper").await).await
}
