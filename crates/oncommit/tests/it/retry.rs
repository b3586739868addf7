//! Automatic retry of serialization failures and deadlocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oncommit::{Error, Isolation, TransactionRetry};
use oncommit_testing::{TestDb, backend_test};
use tokio::sync::Barrier;

use super::{committed_ids, create_items, insert};

fn quick() -> TransactionRetry {
    TransactionRetry::default().base_delay(Duration::from_millis(1)).max_attempts(5)
}

#[tokio::test]
async fn a_real_serialization_failure_is_retried_until_both_commit() {
    let t = TestDb::postgres().await;
    create_items(&t.db).await;
    let barrier = Arc::new(Barrier::new(2));
    let run = |id: i64| {
        let (db, barrier) = (t.db.clone(), barrier.clone());
        tokio::spawn(async move {
            db.transaction()
                .isolation(Isolation::Serializable)
                // Room for more than one overlap: on a loaded machine the retries of both
                // sides can meet again, and SSI then rightly aborts one once more.
                .retry(TransactionRetry::default().base_delay(Duration::from_millis(5)).max_attempts(10))
                .run_reported(async move |tx| {
                    // Both read the same snapshot, then both write: SSI must abort one.
                    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM items").fetch_one(tx.postgres()?).await?;
                    if tx.attempt() == 1 {
                        barrier.wait().await;
                    }
                    insert(tx, id, &format!("saw {seen}")).await?;
                    Ok(seen)
                })
                .await
        })
    };
    let (a, b) = (run(1), run(2));
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    let mut attempts = [a.attempts, b.attempts];
    attempts.sort();
    // One side commits on its first attempt; the other is retried.
    assert_eq!(attempts[0], 1, "{attempts:?}");
    assert!(attempts[1] >= 2, "{attempts:?}");
    // The retried side saw the other's row: the outcome is serializable.
    let mut seen = [a.value, b.value];
    seen.sort();
    assert_eq!(seen, [0, 1]);
    assert_eq!(committed_ids(&t.db).await, vec![1, 2]);
    t.finish().await;
}

backend_test!(pooled async fn retries_stop_at_max_attempts_with_the_last_error(t) {
    let runs = AtomicU32::new(0);
    let err = t
        .db
        .transaction()
        .retry(quick().max_attempts(3))
        .run(async |_tx| {
            runs.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(Error::Deadlock { message: "simulated".into(), detail: None })
        })
        .await
        .unwrap_err();
    assert!(err.is_deadlock());
    assert_eq!(runs.load(Ordering::Relaxed), 3);
});

backend_test!(pooled async fn errors_that_are_not_retryable_are_not_retried(t) {
    create_items(&t.db).await;
    let runs = AtomicU32::new(0);
    let err = t
        .db
        .transaction()
        .retry(quick())
        .run(async |tx| {
            runs.fetch_add(1, Ordering::Relaxed);
            insert(tx, 1, "a").await?;
            insert(tx, 1, "a again").await
        })
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
    assert_eq!(runs.load(Ordering::Relaxed), 1);
});
