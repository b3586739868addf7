//! oncommit's series through the `metrics` facade (a real recorder, installed for this test
//! binary), and the job counts a scrape reads.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use oncommit::{EnqueueOptions, JobState, Worker};
use oncommit_testing::backend_test;

use super::tasks::{Echo, Flaky, create_runs};

/// The recorder is global (the worker records from its own tasks), and a snapshot drains
/// what it reads; so every snapshot is added to one running total that all tests read, each
/// only the series of its own queue.
/// A series' name and labels.
type SeriesId = (String, Vec<(String, String)>);

struct Recorded {
    snapshotter: Snapshotter,
    /// `(name, labels)` to the counter's total, or every histogram value seen.
    totals: Mutex<HashMap<SeriesId, DebugValue>>,
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other recorder in this test binary");
        Recorded { snapshotter, totals: Mutex::default() }
    })
}

/// The value of series `name` whose labels include all of `labels`.
fn series(name: &str, labels: &[(&str, &str)]) -> Option<DebugValue> {
    let recorded = recorded();
    let mut totals = recorded.totals.lock().unwrap();
    for (key, _, _, value) in recorded.snapshotter.snapshot().into_vec() {
        let key = key.key();
        let id = (key.name().to_owned(), key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect());
        match (totals.entry(id).or_insert(DebugValue::Counter(0)), value) {
            (DebugValue::Counter(total), DebugValue::Counter(n)) => *total += n,
            (total @ DebugValue::Counter(0), DebugValue::Histogram(v)) => *total = DebugValue::Histogram(v),
            (DebugValue::Histogram(all), DebugValue::Histogram(v)) => all.extend(v),
            (total, other) => *total = other,
        }
    }
    let has = |l: &Vec<(String, String)>| labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v));
    totals.iter().find(|((n, l), _)| n == name && has(l)).map(|(_, v)| match v {
        DebugValue::Counter(n) => DebugValue::Counter(*n),
        DebugValue::Gauge(g) => DebugValue::Gauge(*g),
        DebugValue::Histogram(h) => DebugValue::Histogram(h.clone()),
    })
}

backend_test!(pooled async fn job_runs_and_transactions_reach_the_applications_recorder(t) {
    recorded();
    create_runs(&t.db).await;
    let queue = format!("metrics_{}", t.target());
    let on_queue = || EnqueueOptions::new().queue(queue.clone());
    t.db.enqueue_with(Echo { key: "a".into() }, on_queue()).await.unwrap();
    t.db.enqueue_with(Flaky { failures: 1 }, on_queue()).await.unwrap();
    let drained = Worker::new(t.db.clone()).queue(&queue, 4).register::<Echo>().register::<Flaky>().drain(10).await.unwrap();
    assert_eq!((drained.completed, drained.retryable), (1, 1), "{drained:?}");

    let q = queue.as_str();
    let counter = |task, outcome| series("oncommit_job_attempts_total", &[("queue", q), ("task", task), ("outcome", outcome)]);
    assert_eq!(counter("echo", "completed"), Some(DebugValue::Counter(1)));
    assert_eq!(counter("flaky", "retryable"), Some(DebugValue::Counter(1)));
    match series("oncommit_job_duration_seconds", &[("queue", q), ("task", "echo")]) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 1),
        other => panic!("no run-time histogram: {other:?}"),
    }
    assert!(matches!(series("oncommit_job_wait_seconds", &[("queue", q)]), Some(DebugValue::Histogram(v)) if v.len() == 2));
    // Echo completes in its own transaction: counted as committed (with every other test's).
    assert!(matches!(series("oncommit_transactions_total", &[("outcome", "committed")]), Some(DebugValue::Counter(n)) if n >= 1));
    assert!(matches!(series("oncommit_jobs_claimed_total", &[]), Some(DebugValue::Counter(n)) if n >= 2));
});

backend_test!(pooled async fn a_scrape_counts_finished_jobs_at_most_once_a_minute(t) {
    create_runs(&t.db).await;
    let worker = || Worker::new(t.db.clone()).register::<Echo>();
    t.db.enqueue(Echo { key: "first".into() }).await.unwrap();
    worker().drain(10).await.unwrap();
    let count = |stats: &oncommit::admin::JobStats, state| stats.total[&state];
    let gauges = t.db.queues().overview().await.unwrap().stats;
    assert_eq!(count(&gauges, JobState::Completed), 1);

    // One more completes and one waits: the waiting one shows at once, the finished count
    // is the cached one until it is a minute old. An exact count is still there.
    t.db.enqueue(Echo { key: "second".into() }).await.unwrap();
    worker().drain(10).await.unwrap();
    t.db.enqueue(Echo { key: "waiting".into() }).await.unwrap();
    let gauges = t.db.queues().overview().await.unwrap().stats;
    assert_eq!((count(&gauges, JobState::Available), count(&gauges, JobState::Completed)), (1, 1));
    let exact = t.db.jobs().stats().await.unwrap();
    assert_eq!(count(&exact, JobState::Completed), 2);
});
