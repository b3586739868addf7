//! The testing kit applications use: `Worker::drain` runs what is waiting in the test's own
//! task, and `oncommit_testing`'s assertions read enqueued jobs back as their task type.

use std::time::Duration;

use oncommit::{EnqueueOptions, Worker};
use oncommit_testing::{assert_enqueued, assert_not_enqueued, backend_test, capture_on_commit, enqueued};

use super::tasks::{Echo, Flaky, Panics, create_runs, runs};

fn echo(key: &str) -> Echo {
    Echo { key: key.to_owned() }
}

backend_test!(pooled async fn drain_runs_what_is_waiting_and_assertions_read_jobs_back(t) {
    create_runs(&t.db).await;
    let first = t.db.enqueue(echo("a")).await.unwrap();
    t.db.enqueue(echo("b")).await.unwrap();
    t.db.enqueue_with(echo("tomorrow"), EnqueueOptions::new().delay(Duration::from_secs(86_400))).await.unwrap();
    let (job, task) = assert_enqueued::<Echo>(&t.db, |e| e.key == "a").await;
    assert_eq!((job.id, task.key.as_str()), (first, "a"));
    assert_not_enqueued::<Echo>(&t.db, |e| e.key == "never").await;
    assert_eq!(enqueued::<Echo>(&t.db).await.len(), 3);

    let worker = || Worker::new(t.db.clone()).register::<Echo>().register::<Flaky>().register::<Panics>();
    // A limit stops it, and says work was left.
    let drained = worker().drain(1).await.unwrap();
    assert_eq!((drained.ran, drained.completed, drained.limit_reached), (1, 1, true), "{drained:?}");
    let drained = worker().drain(100).await.unwrap();
    assert_eq!((drained.ran, drained.completed, drained.limit_reached), (1, 1, false), "{drained:?}");
    let keys: Vec<String> = runs(&t.db).await.into_iter().map(|(key, _, _)| key).collect();
    assert_eq!(keys, ["a", "b"], "claim order, each once, completed in its own transaction");
    // What is scheduled for later is left waiting.
    assert_enqueued::<Echo>(&t.db, |e| e.key == "tomorrow").await;
    assert_not_enqueued::<Echo>(&t.db, |e| e.key == "a").await;

    // Failures are counted by what they left: a retry for later, a failure for good.
    t.db.enqueue(Flaky { failures: 1 }).await.unwrap();
    t.db.enqueue(Panics).await.unwrap();
    let drained = worker().drain(100).await.unwrap();
    assert_eq!((drained.ran, drained.retryable, drained.failed), (2, 1, 1), "{drained:?}");
    assert_enqueued::<Flaky>(&t.db, |_| true).await;
});

backend_test!(pooled async fn drain_serves_only_its_queues(t) {
    create_runs(&t.db).await;
    t.db.enqueue_with(echo("other"), EnqueueOptions::new().queue("other")).await.unwrap();
    t.db.enqueue(echo("default")).await.unwrap();
    let drained = Worker::new(t.db.clone()).register::<Echo>().queue("other", 1).drain(10).await.unwrap();
    assert_eq!(drained.ran, 1);
    assert_enqueued::<Echo>(&t.db, |e| e.key == "default").await;
    assert_not_enqueued::<Echo>(&t.db, |e| e.key == "other").await;
});

/// What the hooks wrote, in order.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>);

impl Log {
    fn hook(&self, what: &'static str) -> impl Future<Output = ()> + Send + 'static {
        let log = self.clone();
        async move { log.0.lock().unwrap().push(what) }
    }
    fn seen(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

backend_test!(pooled async fn captured_hooks_wait_for_the_test_and_run_in_order(t) {
    let log = Log::default();
    // Boxed: three transactions, one nested, make a large future in a debug build.
    let (committed, hooks) = capture_on_commit(Box::pin(async {
        oncommit::atomic!(t.db, |tx| {
            tx.on_commit(log.hook("first"));
            // A rolled-back savepoint's hook is discarded, captured or not.
            let _ = oncommit::atomic!(tx, |sp| {
                sp.on_commit(log.hook("discarded"));
                Err::<(), _>(oncommit::Error::app("undo"))
            })
            .await;
            // Code handed only the Db joins the same transaction.
            tx.db().on_commit(log.hook("second")).await?;
            Ok(())
        })
        .await?;
        // A second transaction's hooks are captured after the first's.
        let mut guard = t.db.begin().await?;
        guard.on_commit(log.hook("third"));
        guard.commit().await?;
        // A transaction that rolls back leaves nothing to capture.
        oncommit::atomic!(t.db, |tx| {
            tx.on_commit(log.hook("never"));
            tx.set_rollback(true);
            Ok(())
        })
        .await
    }))
    .await;
    committed.unwrap();
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    assert!(log.seen().is_empty(), "a captured hook ran: {:?}", log.seen());
    hooks.run().await.unwrap();
    assert_eq!(log.seen(), ["first", "second", "third"]);
});

backend_test!(pooled async fn a_captured_hook_that_fails_stops_the_rest_unless_robust(t) {
    let log = Log::default();
    let ((), hooks) = capture_on_commit(async {
        let mut tx = t.db.begin().await.unwrap();
        tx.on_commit_robust(async { Err::<(), _>("robust, logged") });
        tx.on_commit(log.hook("runs"));
        tx.on_commit(async { Err::<(), _>("stops the rest") });
        tx.on_commit(log.hook("never"));
        tx.commit().await.unwrap();
    })
    .await;
    let err = hooks.run().await.unwrap_err();
    assert!(matches!(err, oncommit::Error::Hook { index: 2, .. }), "{err:?}");
    assert_eq!(log.seen(), ["runs"]);
});

backend_test!(pooled async fn outside_a_transaction_a_hook_runs_at_once_even_when_capturing(t) {
    let log = Log::default();
    let (result, hooks) = capture_on_commit(t.db.on_commit(log.hook("now"))).await;
    result.unwrap();
    assert!(hooks.is_empty());
    assert_eq!(log.seen(), ["now"]);
});

backend_test!(pooled async fn only_the_capturing_task_is_captured(t) {
    let log = Log::default();
    let db = t.db.clone();
    let other = log.clone();
    let ((), hooks) = capture_on_commit(async {
        let spawned = tokio::spawn(async move {
            oncommit::atomic!(db, |tx| {
                tx.on_commit(other.hook("spawned"));
                Ok(())
            })
            .await
        });
        spawned.await.unwrap().unwrap();
    })
    .await;
    assert!(hooks.is_empty());
    assert_eq!(log.seen(), ["spawned"]);
});
