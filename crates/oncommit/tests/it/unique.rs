//! Unique jobs by content: the same task and arguments (or some of them), queue and period
//! give the existing job's id while it is in the chosen states; replace mode updates a job
//! that has not started (a debounce); concurrent enqueuers agree on one job.

use std::time::Duration;

use oncommit::admin::JobSelection;
use oncommit::{EnqueueOptions, Error, JobState, Unique};
use oncommit_testing::backend_test;
use serde_json::json;

use super::tasks::{Gated, create_runs, gate, start, wait_arrivals, wait_for, worker};

fn unique(u: Unique) -> EnqueueOptions {
    EnqueueOptions::new().unique(u)
}

async fn count(db: &oncommit::Db) -> i64 {
    db.jobs().count(&JobSelection::new(JobState::ALL)).await.unwrap()
}

backend_test!(pooled async fn the_same_content_gives_the_same_job_until_it_finishes(t) {
    t.db.migrate().await.unwrap();
    let by_args = unique(Unique::by_args());
    let first = t.db.enqueue_raw("report", &json!({ "a": 1, "b": [1, 2] }), by_args.clone()).await.unwrap();
    let same = t.db.enqueue_raw("report", &json!({ "b": [1, 2], "a": 1 }), by_args.clone()).await.unwrap();
    assert_eq!(first, same, "the same arguments, in another key order");
    let other = t.db.enqueue_raw("report", &json!({ "a": 2, "b": [1, 2] }), by_args.clone()).await.unwrap();
    assert_ne!(first, other);
    let other_task = t.db.enqueue_raw("export", &json!({ "a": 1, "b": [1, 2] }), by_args.clone()).await.unwrap();
    assert_ne!(first, other_task);

    // Some keys only; the queue too.
    let by_customer = unique(Unique::by_arg_keys(["customer"]).by_queue());
    let a = t.db.enqueue_raw("sync", &json!({ "customer": 7, "page": 1 }), by_customer.clone().queue("q1")).await.unwrap();
    let b = t.db.enqueue_raw("sync", &json!({ "customer": 7, "page": 2 }), by_customer.clone().queue("q1")).await.unwrap();
    let c = t.db.enqueue_raw("sync", &json!({ "customer": 7, "page": 2 }), by_customer.clone().queue("q2")).await.unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(count(&t.db).await, 5);

    // Finished, it no longer holds its identity (the default states).
    t.db.jobs().cancel(first).await.unwrap();
    let after = t.db.enqueue_raw("report", &json!({ "a": 1, "b": [1, 2] }), by_args).await.unwrap();
    assert_ne!(after, first);
    assert_eq!(t.db.jobs().get(after).await.unwrap().unwrap().state, JobState::Available);
});

backend_test!(pooled async fn a_period_and_finished_states_make_one_per_window(t) {
    create_runs(&t.db).await;
    let hourly = unique(
        Unique::by_task()
            .period(Duration::from_secs(3600))
            .states([JobState::Available, JobState::Running, JobState::Completed]),
    );
    let key = format!("hourly-{}", t.target());
    let first = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 0 }, hourly.clone()).await.unwrap();
    let w = start(worker(&t.db));
    wait_for(&t.db, first, JobState::Completed).await;
    w.stop().await;
    // Completed, it still holds the hour.
    let again = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 0 }, hourly).await.unwrap();
    assert_eq!(again, first);

    // A short period: a new window gives a new job.
    let brief = unique(Unique::by_task().period(Duration::from_millis(100)).states(JobState::ALL));
    let one = t.db.enqueue_raw("tick", &json!({}), brief.clone()).await.unwrap();
    let later = oncommit_testing::eventually("a new window", || async {
        let id = t.db.enqueue_raw("tick", &json!({}), brief.clone()).await.unwrap();
        (id != one).then_some(id)
    })
    .await;
    assert!(later.0 > one.0);
});

backend_test!(pooled async fn leaving_running_out_lets_a_new_job_queue_behind_a_running_one(t) {
    create_runs(&t.db).await;
    let key = format!("unique-running-{}", t.target());
    let waiting_only = unique(Unique::by_task().states([JobState::Scheduled, JobState::Available]));
    let running = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, waiting_only.clone()).await.unwrap();
    let w = start(worker(&t.db).queue("default", 1).prefetch(0));
    wait_arrivals(&key, 1).await;
    let queued = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 0 }, waiting_only.clone()).await.unwrap();
    assert_ne!(queued, running, "a running job does not hold the identity");
    let same = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 0 }, waiting_only).await.unwrap();
    assert_eq!(same, queued, "the waiting one does");
    gate(&key).notify_one();
    wait_for(&t.db, queued, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn replace_mode_debounces_a_job_that_has_not_started(t) {
    create_runs(&t.db).await;
    let debounce = |delay: u64| {
        let opts = EnqueueOptions::new()
            .unique(Unique::by_arg_keys(["user"]).states([JobState::Scheduled, JobState::Available]).replace());
        // No delay is "now" by the database's clock (a run time read from this machine's
        // clock a moment ago may still be ahead of it).
        if delay == 0 { opts } else { opts.delay(Duration::from_secs(delay)) }
    };
    let first = t.db.enqueue_raw("digest", &json!({ "user": 1, "n": 1 }), debounce(60)).await.unwrap();
    let before = t.db.jobs().get(first).await.unwrap().unwrap();
    let second = t.db.enqueue_raw("digest", &json!({ "user": 1, "n": 2 }), debounce(120)).await.unwrap();
    assert_eq!(second, first);
    let after = t.db.jobs().get(first).await.unwrap().unwrap();
    assert_eq!(after.args, json!({ "user": 1, "n": 2 }), "the arguments are the latest");
    assert!(after.run_at > before.run_at, "pushed back: {} then {}", before.run_at, after.run_at);
    assert_eq!(after.state, JobState::Scheduled);
    // Made due now by the last enqueue: it becomes available.
    let third = t.db.enqueue_raw("digest", &json!({ "user": 1, "n": 3 }), debounce(0)).await.unwrap();
    assert_eq!(third, first);
    assert_eq!(t.db.jobs().get(first).await.unwrap().unwrap().state, JobState::Available);
    assert_eq!(count(&t.db).await, 1);

    // A job that has started is not replaced: with running out of the states, a new one
    // is added behind it.
    let key = format!("debounce-running-{}", t.target());
    let opts = EnqueueOptions::new()
        .unique(Unique::by_task().states([JobState::Scheduled, JobState::Available]).replace());
    let running = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, opts.clone()).await.unwrap();
    let w = start(worker(&t.db).queue("default", 1).prefetch(0));
    wait_arrivals(&key, 1).await;
    let behind = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 0 }, opts).await.unwrap();
    assert_ne!(behind, running);
    assert_eq!(t.db.jobs().get(running).await.unwrap().unwrap().args, json!({ "gate": key, "hold_attempts": 1 }));
    gate(&key).notify_one();
    wait_for(&t.db, behind, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn concurrent_enqueuers_agree_on_one_job(t) {
    t.db.migrate().await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let db = t.db.clone();
        tasks.spawn(async move {
            db.transaction()
                .retry(oncommit::TransactionRetry::default())
                .run(async |tx| tx.enqueue_raw("import", &json!({ "file": "a.csv" }), unique(Unique::by_args())).await)
                .await
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(id) = tasks.join_next().await {
        ids.insert(id.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(count(&t.db).await, 1);
});

backend_test!(pooled async fn a_rolled_back_unique_job_holds_nothing_and_bad_options_are_refused(t) {
    t.db.migrate().await.unwrap();
    let opts = unique(Unique::by_args());
    let mut tx = t.db.begin().await.unwrap();
    tx.enqueue_raw("report", &json!({ "x": 1 }), opts.clone()).await.unwrap();
    tx.rollback().await.unwrap();
    let id = t.db.enqueue_raw("report", &json!({ "x": 1 }), opts).await.unwrap();
    assert_eq!(count(&t.db).await, 1);
    assert_eq!(t.db.jobs().get(id).await.unwrap().unwrap().state, JobState::Available);

    let refused = |r: oncommit::Result<oncommit::JobId>| matches!(r, Err(Error::InvalidOption { option: "unique", .. }));
    let both = EnqueueOptions::new().unique_key("k").unique(Unique::by_args());
    assert!(refused(t.db.enqueue_raw("report", &json!({}), both).await));
    assert!(refused(t.db.enqueue_raw("report", &json!([1]), unique(Unique::by_arg_keys(["a"]))).await));
    assert!(refused(t.db.enqueue_raw("report", &json!({}), unique(Unique::by_args().states([]))).await));
    assert_eq!(count(&t.db).await, 1);
});

/// Declares itself unique by its arguments.
#[derive(serde::Serialize, serde::Deserialize)]
struct Refresh {
    page: i64,
}

impl oncommit::Task for Refresh {
    const NAME: &'static str = "refresh";
    fn options() -> oncommit::TaskOptions {
        oncommit::TaskOptions::default().unique(Unique::by_args())
    }
    async fn run(self, _cx: &mut oncommit::TaskContext) -> Result<(), oncommit::TaskError> {
        Ok(())
    }
}

backend_test!(pooled async fn a_task_can_declare_its_uniqueness(t) {
    t.db.migrate().await.unwrap();
    let a = t.db.enqueue(Refresh { page: 1 }).await.unwrap();
    assert_eq!(t.db.enqueue(Refresh { page: 1 }).await.unwrap(), a);
    assert_ne!(t.db.enqueue(Refresh { page: 2 }).await.unwrap(), a);
    // A job's own choice takes the declaration's place.
    let keyed = EnqueueOptions::new().unique_key("refresh-once");
    let b = t.db.enqueue_with(Refresh { page: 1 }, keyed.clone()).await.unwrap();
    assert_ne!(b, a);
    assert_eq!(t.db.enqueue_with(Refresh { page: 9 }, keyed).await.unwrap(), b);
});
