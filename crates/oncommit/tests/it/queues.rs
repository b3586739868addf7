//! Queue-wide flow control, enforced by the database for every worker: pause and resume,
//! a concurrency limit over several workers, a rate limit per window, and the listing.

use std::time::Duration;

use oncommit::admin::RateLimit;
use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, Error, JobState, Task, TaskContext, TaskError};
use oncommit_testing::{backend_test, eventually};
use serde::{Deserialize, Serialize};

use super::exec;
use super::tasks::{Echo, Gated, Nap, create_runs, gate, start, wait_arrivals, wait_for, worker};

fn on(queue: &str) -> EnqueueOptions {
    EnqueueOptions::new().queue(queue)
}

/// Waits until every job of `queue` has completed, sampling how many ran at once (as the
/// database says) meanwhile; returns the most seen.
async fn most_running_until_done(db: &oncommit::Db, queue: &str, jobs: i64) -> i64 {
    let mut most = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = db.queues().get(queue).await.unwrap();
        most = most.max(info.running);
        let stats = db.jobs().stats().await.unwrap();
        if stats.queues.get(queue).is_some_and(|c| c[&JobState::Completed] == jobs) {
            return most;
        }
        assert!(std::time::Instant::now() < deadline, "the jobs of {queue} did not complete: {stats:?}");
        tokio::task::yield_now().await;
    }
}

backend_test!(pooled async fn a_paused_queue_is_claimed_by_no_worker_until_resumed(t) {
    create_runs(&t.db).await;
    t.db.queues().pause("mail").await.unwrap();
    let held = t.db.enqueue_with(Echo { key: "held".into() }, on("mail")).await.unwrap();
    let w = start(worker(&t.db).queue("mail", 2).queue("other", 2));
    // A witness on another queue runs, and so do a few of the worker's polls of the paused
    // one (every 50 ms): the paused job is still waiting.
    let witness = t.db.enqueue_with(Echo { key: "witness".into() }, on("other")).await.unwrap();
    wait_for(&t.db, witness, JobState::Completed).await;
    let second = t.db.enqueue_with(Echo { key: "witness".into() }, on("other")).await.unwrap();
    wait_for(&t.db, second, JobState::Completed).await;
    assert_eq!(t.db.jobs().get(held).await.unwrap().unwrap().state, JobState::Available);
    let info = t.db.queues().get("mail").await.unwrap();
    assert!(info.paused && info.available == 1, "{info:?}");

    // The pause is in the database: a worker started later does not claim either.
    w.stop().await;
    let w = start(worker(&t.db).queue("mail", 2).queue("other", 2));
    let third = t.db.enqueue_with(Echo { key: "witness".into() }, on("other")).await.unwrap();
    wait_for(&t.db, third, JobState::Completed).await;
    assert_eq!(t.db.jobs().get(held).await.unwrap().unwrap().state, JobState::Available);

    t.db.queues().resume("mail").await.unwrap();
    wait_for(&t.db, held, JobState::Completed).await;
    assert!(!t.db.queues().get("mail").await.unwrap().paused);
    w.stop().await;
});

backend_test!(pooled async fn pausing_lets_running_jobs_finish(t) {
    create_runs(&t.db).await;
    let key = format!("pause-running-{}", t.target());
    let running = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, on("q")).await.unwrap();
    let w = start(worker(&t.db).queue("q", 2));
    wait_arrivals(&key, 1).await;
    t.db.queues().pause("q").await.unwrap();
    let waiting = t.db.enqueue_with(Echo { key: "after".into() }, on("q")).await.unwrap();
    gate(&key).notify_one();
    wait_for(&t.db, running, JobState::Completed).await;
    assert_eq!(t.db.jobs().get(waiting).await.unwrap().unwrap().state, JobState::Available);
    t.db.queues().resume("q").await.unwrap();
    wait_for(&t.db, waiting, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn the_concurrency_limit_holds_across_workers(t) {
    create_runs(&t.db).await;
    const JOBS: i64 = 30;
    const LIMIT: u32 = 3;
    // Three workers, each willing to run eight at once and to prefetch more. The limit is
    // set in code by the first, which records it as it starts (the others are started once
    // it is recorded). The jobs come once all three run, so all three contend for them
    // while the observer watches (enqueued before, the first worker alone could finish
    // them before the others, or the observer, started).
    let w1 = start(worker(&t.db).register::<Nap>().queue("partner", 8).queue_limit("partner", LIMIT));
    eventually("the first worker records the limit", || async {
        (t.db.queues().get("partner").await.unwrap().concurrency_limit == Some(LIMIT as i32)).then_some(())
    })
    .await;
    let w2 = start(worker(&t.db).register::<Nap>().queue("partner", 8));
    let w3 = start(worker(&t.db).register::<Nap>().queue("partner", 8).prefetch(20));
    let mut tx = t.db.begin().await.unwrap();
    for _ in 0..JOBS {
        tx.enqueue_with(Nap { ms: 15 }, on("partner")).await.unwrap();
    }
    tx.commit().await.unwrap();
    let most = most_running_until_done(&t.db, "partner", JOBS).await;
    assert!(most <= i64::from(LIMIT), "{most} jobs ran at once under a limit of {LIMIT}");
    assert!(most >= 1, "the observer saw jobs run");
    let info = t.db.queues().get("partner").await.unwrap();
    assert_eq!((info.concurrency_limit, info.workers), (Some(LIMIT as i32), 3), "{info:?}");

    // Raised at runtime, without a restart: more run at once (five jobs held at a gate all
    // reach it), and no more than the new limit.
    t.db.queues().set_concurrency_limit("partner", Some(12)).await.unwrap();
    let key = format!("raised-limit-{}", t.target());
    for _ in 0..5 {
        t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, on("partner")).await.unwrap();
    }
    wait_arrivals(&key, 5).await;
    eventually("the held jobs finish once let go", || async {
        gate(&key).notify_one();
        let stats = t.db.jobs().stats().await.unwrap();
        (stats.queues["partner"][&JobState::Completed] == JOBS + 5).then_some(())
    })
    .await;
    for _ in 0..JOBS {
        t.db.enqueue_with(Nap { ms: 40 }, on("partner")).await.unwrap();
    }
    let most = most_running_until_done(&t.db, "partner", 2 * JOBS + 5).await;
    assert!(most <= 12, "{most} ran at once under a raised limit of 12");
    // Removed: the queue is claimed the fast way again.
    t.db.queues().set_concurrency_limit("partner", None).await.unwrap();
    let free = t.db.enqueue_with(Nap { ms: 1 }, on("partner")).await.unwrap();
    wait_for(&t.db, free, JobState::Completed).await;
    for w in [w1, w2, w3] {
        w.stop().await;
    }
});

backend_test!(pooled async fn a_dead_workers_slots_come_back_when_its_leases_are_rescued(t) {
    create_runs(&t.db).await;
    let key = format!("limit-crash-{}", t.target());
    t.db.queues().set_concurrency_limit("solo", Some(1)).await.unwrap();
    let stuck = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, on("solo")).await.unwrap();
    let next = t.db.enqueue_with(Echo { key: "next".into() }, on("solo")).await.unwrap();
    // A worker takes the only slot and dies with it: its tasks are aborted, its lease is no
    // longer renewed. (The job's own task lives on, stuck at its gate, like a process that
    // hangs: whatever it does later is fenced off by the attempt.)
    let dying = start(worker(&t.db).queue("solo", 4).lease(Duration::from_millis(600)));
    wait_arrivals(&key, 1).await;
    dying.handle.abort();
    assert!(dying.handle.await.unwrap_err().is_cancelled());
    // The next worker finds the queue full while the dead lease holds; the rescue frees
    // the slot, and both jobs run, one at a time (the rescued one does not stop at its
    // gate again).
    let w = start(worker(&t.db).queue("solo", 4).lease(Duration::from_millis(600)));
    let job = wait_for(&t.db, stuck, JobState::Completed).await;
    let after = wait_for(&t.db, next, JobState::Completed).await;
    let rescued = job.errors.iter().find(|e| e.error.contains("lease expired")).expect("the lease was rescued");
    let started = after.attempted_at.expect("it ran").timestamp_millis();
    assert!(started >= rescued.at, "the next job started at {started}, before the slot came back at {}", rescued.at);
    assert_eq!(job.attempt, 2, "{job:?}");
    // The hung attempt wakes up and finds its job gone to another attempt.
    gate(&key).notify_one();
    w.stop().await;
});

backend_test!(pooled async fn the_rate_limit_spaces_starts_by_window(t) {
    create_runs(&t.db).await;
    const JOBS: usize = 9;
    const PER_WINDOW: u32 = 3;
    let period = Duration::from_millis(400);
    t.db.queues().set_rate_limit("sms", Some(RateLimit::new(PER_WINDOW, period))).await.unwrap();
    for i in 0..JOBS {
        t.db.enqueue_with(Echo { key: format!("sms-{i}") }, on("sms")).await.unwrap();
    }
    let w = start(worker(&t.db).queue("sms", 10));
    eventually("the rate-limited jobs complete", || async {
        let jobs = t.db.jobs().list(&JobSelection::default().queue("sms"), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
        jobs.iter().all(|j| j.state == JobState::Completed).then_some(())
    })
    .await;
    w.stop().await;
    // Every start, by the database's clock, falls in a window with at most three others.
    let jobs = t.db.jobs().list(&JobSelection::default().queue("sms"), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
    let mut windows = std::collections::BTreeMap::<i64, u32>::new();
    for job in &jobs {
        let at = job.attempted_at.expect("the job started").timestamp_millis();
        *windows.entry(at.div_euclid(period.as_millis() as i64)).or_default() += 1;
    }
    assert!(windows.values().all(|n| *n <= PER_WINDOW), "starts per window: {windows:?}");
    assert!(windows.len() >= JOBS / PER_WINDOW as usize, "starts per window: {windows:?}");
    let info = t.db.queues().get("sms").await.unwrap();
    assert_eq!(info.rate_limit, Some(RateLimit::new(PER_WINDOW, period)));
});

backend_test!(pooled async fn bad_settings_are_refused_at_the_door(t) {
    t.db.migrate().await.unwrap();
    let refused = |r: oncommit::Result<()>| matches!(r, Err(Error::InvalidOption { .. }));
    assert!(refused(t.db.queues().set_concurrency_limit("q", Some(0)).await));
    assert!(refused(t.db.queues().set_rate_limit("q", Some(RateLimit::new(0, Duration::from_secs(1)))).await));
    assert!(refused(t.db.queues().set_rate_limit("q", Some(RateLimit::new(5, Duration::from_micros(10)))).await));
    assert!(refused(t.db.queues().pause("a,b").await));
    assert!(refused(t.db.queues().pause("").await));
    // Nothing was recorded.
    assert!(t.db.queues().list().await.unwrap().is_empty(), "{:?}", t.db.queues().list().await.unwrap());
    // The table refuses them from SQL as well.
    let err = exec(
        &t.db,
        "INSERT INTO oncommit.queues (name, concurrency_limit) VALUES ('q', 0)",
        "INSERT INTO oncommit_queues (name, concurrency_limit) VALUES ('q', 0)",
    )
    .await
    .unwrap_err();
    assert!(err.to_lowercase().contains("check"), "{err}");
});

#[tokio::test]
async fn sql_functions_set_what_the_workers_obey() {
    let t = oncommit_testing::TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    exec(
        &t.db,
        "SELECT oncommit.limit_queue('reports', 4); SELECT oncommit.rate_limit_queue('reports', 100, interval '1 minute'); \
         SELECT oncommit.pause_queue('reports')",
        "",
    )
    .await
    .unwrap();
    let info = t.db.queues().get("reports").await.unwrap();
    assert!(info.paused, "{info:?}");
    assert_eq!(info.concurrency_limit, Some(4));
    assert_eq!(info.rate_limit, Some(RateLimit::new(100, Duration::from_secs(60))));
    exec(&t.db, "SELECT oncommit.resume_queue('reports'); SELECT oncommit.rate_limit_queue('reports', NULL, NULL)", "")
        .await
        .unwrap();
    let info = t.db.queues().get("reports").await.unwrap();
    assert!(!info.paused && info.rate_limit.is_none() && info.concurrency_limit == Some(4), "{info:?}");
    let err = exec(&t.db, "SELECT oncommit.rate_limit_queue('reports', 5, NULL)", "").await.unwrap_err();
    assert!(err.contains("give both max_starts and per"), "{err}");
    let err = exec(&t.db, "SELECT oncommit.limit_queue('a:b', 2)", "").await.unwrap_err();
    assert!(err.contains("check"), "{err}");
    t.finish().await;
}

backend_test!(pooled async fn queues_lists_settings_counts_and_workers(t) {
    create_runs(&t.db).await;
    t.db.enqueue_with(Echo { key: "a".into() }, on("alpha")).await.unwrap();
    t.db.enqueue_with(Echo { key: "b".into() }, on("beta").delay(Duration::from_secs(3600))).await.unwrap();
    t.db.queues().set_concurrency_limit("gamma", Some(2)).await.unwrap();
    let queues = t.db.queues().list().await.unwrap();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    assert_eq!((queues[0].available, queues[0].waiting, queues[0].running), (1, 0, 0));
    assert_eq!((queues[1].available, queues[1].waiting), (0, 1));
    assert_eq!((queues[2].concurrency_limit, queues[2].available, queues[2].workers), (Some(2), 0, 0));
    // A hand-written worker row whose queues are not an object does not break the listing.
    exec(
        &t.db,
        "INSERT INTO oncommit.workers (id, hostname, pid, queues) VALUES ('odd', 'h', 1, '[1, 2]')",
        "INSERT INTO oncommit_workers (id, hostname, pid, queues) VALUES ('odd', 'h', 1, 'not json')",
    )
    .await
    .unwrap();
    assert_eq!(t.db.queues().list().await.unwrap().len(), 3);
});

/// Does nothing; its tag says which customer it is for.
#[derive(Serialize, Deserialize)]
struct Tagged {
    tag: String,
}

impl Task for Tagged {
    const NAME: &'static str = "tagged";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

backend_test!(pooled async fn a_rate_limit_per_key_counts_each_key_on_its_own(t) {
    create_runs(&t.db).await;
    const PER_WINDOW: u32 = 2;
    let period = Duration::from_millis(400);
    t.db.queues().set_rate_limit("calls", Some(RateLimit::new(PER_WINDOW, period).per_key())).await.unwrap();
    for tag in ["a", "a", "a", "a", "b", "b", "b", "b", "none", "none"] {
        let opts = match tag {
            "none" => on("calls"),
            key => on("calls").concurrency_key_limit(100).concurrency_key(key),
        };
        t.db.enqueue_with(Tagged { tag: tag.into() }, opts).await.unwrap();
    }
    let w = start(worker(&t.db).register::<Tagged>().queue("calls", 10));
    let jobs = eventually("the rate-limited jobs complete", || async {
        let jobs = t.db.jobs().list(&JobSelection::default().queue("calls"), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
        jobs.iter().all(|j| j.state == JobState::Completed).then_some(jobs)
    })
    .await;
    w.stop().await;
    let mut per_key = std::collections::BTreeMap::<(String, i64), u32>::new();
    let mut per_window = std::collections::BTreeMap::<i64, u32>::new();
    for job in &jobs {
        let window = job.attempted_at.unwrap().timestamp_millis().div_euclid(period.as_millis() as i64);
        *per_key.entry((job.args["tag"].as_str().unwrap().to_owned(), window)).or_default() += 1;
        *per_window.entry(window).or_default() += 1;
    }
    assert!(per_key.values().all(|n| *n <= PER_WINDOW), "starts per key and window: {per_key:?}");
    assert!(per_window.values().any(|n| *n > PER_WINDOW), "the keys did not share one limit: {per_window:?}");
    let info = t.db.queues().get("calls").await.unwrap();
    assert!(info.rate_limit.is_some_and(|r| r.per_key), "{info:?}");
});

backend_test!(pooled async fn a_resume_wakes_the_workers_without_a_poll(t) {
    create_runs(&t.db).await;
    let key = format!("quiet-{}", t.target());
    let first = t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, on("quiet")).await.unwrap();
    // This worker never polls: only a wake-up (NOTIFY, or this process's own) starts a job.
    let w = start(worker(&t.db).queue("quiet", 1).prefetch(0).poll_interval(Duration::from_secs(3600)));
    wait_arrivals(&key, 1).await;
    t.db.queues().pause("quiet").await.unwrap();
    let second = t.db.enqueue_with(Echo { key: "quiet".into() }, on("quiet")).await.unwrap();
    // The first job's slot comes back; the worker claims again at once, finds the queue
    // paused, and waits.
    gate(&key).notify_one();
    wait_for(&t.db, first, JobState::Completed).await;
    assert_eq!(t.db.jobs().get(second).await.unwrap().unwrap().state, JobState::Available);
    t.db.queues().resume("quiet").await.unwrap();
    wait_for(&t.db, second, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn the_dashboards_queue_list_counts_once_and_agrees_with_the_full_one(t) {
    t.db.migrate().await.unwrap();
    for queue in ["a", "a", "b"] {
        t.db.enqueue_with(Echo { key: queue.into() }, on(queue)).await.unwrap();
    }
    let later = EnqueueOptions::new().queue("b").run_at(chrono::Utc::now() + chrono::Duration::hours(1));
    t.db.enqueue_raw("echo", &serde_json::json!({ "key": "later" }), later).await.unwrap();
    let done = t.db.enqueue_with(Echo { key: "done".into() }, on("finished-only")).await.unwrap();
    t.db.jobs().cancel(done).await.unwrap();
    t.db.queues().set_concurrency_limit("c", Some(2)).await.unwrap();
    let full = t.db.queues().list().await.unwrap();
    let overview = t.db.queues().overview().await.unwrap();
    let listed = overview.queues;
    // The same but for the lag, which grows between the two reads.
    let still = |q: &oncommit::admin::QueueInfo| oncommit::admin::QueueInfo { lag: Duration::ZERO, ..q.clone() };
    for q in &full {
        let l = listed.iter().find(|l| l.name == q.name).unwrap_or_else(|| panic!("{} missing: {listed:?}", q.name));
        assert_eq!(still(l), still(q));
        assert!(l.lag >= q.lag, "{l:?} {q:?}");
        assert!(q.available > 0 || q.lag.is_zero(), "a lag where no job is available: {q:?}");
    }
    assert!(listed.iter().any(|q| q.name == "finished-only"), "queues with only finished jobs are listed: {listed:?}");
    let b = listed.iter().find(|q| q.name == "b").unwrap();
    assert_eq!((b.available, b.waiting), (1, 1), "{b:?}");
    assert_eq!(overview.stats.queues["finished-only"][&JobState::Cancelled], 1);
});
