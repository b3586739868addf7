//! The testing kit applications use: `Worker::drain` runs what is waiting in the test's own
//! task, and `oncommit_testing`'s assertions read enqueued jobs back as their task type.

use std::time::Duration;

use oncommit::{EnqueueOptions, Worker};
use oncommit_testing::{assert_enqueued, assert_not_enqueued, backend_test, enqueued};

use super::tasks::{Echo, Flaky, Panics, create_runs, runs};

fn echo(key: &str) -> Echo {
    Echo { key: key.to_owned() }
}

backend_test!(async fn drain_runs_what_is_waiting_and_assertions_read_jobs_back(t) {
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

backend_test!(async fn drain_serves_only_its_queues(t) {
    create_runs(&t.db).await;
    t.db.enqueue_with(echo("other"), EnqueueOptions::new().queue("other")).await.unwrap();
    t.db.enqueue(echo("default")).await.unwrap();
    let drained = Worker::new(t.db.clone()).register::<Echo>().queue("other", 1).drain(10).await.unwrap();
    assert_eq!(drained.ran, 1);
    assert_enqueued::<Echo>(&t.db, |e| e.key == "default").await;
    assert_not_enqueued::<Echo>(&t.db, |e| e.key == "other").await;
});
