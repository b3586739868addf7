//! The contract's `Queues`: settings, the controlled claim, per-key rate windows, the list.

use std::time::Duration;

use oncommit_testing::backend_test;

use super::{claim, job, open};
use crate::driver::contract::{KeyWindow, NewJob, Setting};
use crate::job::JobState;
use crate::queries::RateLimit;

backend_test!(pooled async fn settings_are_what_the_controlled_claim_reads(t) {
    let db = open(t).await;
    assert_eq!(run!(db, queue_controls_lock("q")), None, "no row, no controls");
    run!(db, queue_set("q", Setting::Paused(true)));
    let controls = run!(db, queue_controls_lock("q")).unwrap();
    assert!(controls.paused);
    run!(db, queue_set("q", Setting::Paused(false)));
    run!(db, queue_set("q", Setting::ConcurrencyLimit(Some(2))));
    let rate = RateLimit { max_starts: 5, period: Duration::from_secs(1), per_key: true };
    run!(db, queue_set("q", Setting::RateLimit(Some(rate))));
    let controls = run!(db, queue_controls_lock("q")).unwrap();
    assert!(!controls.paused);
    assert_eq!(controls.concurrency_limit, Some(2));
    assert_eq!((controls.rate_limit, controls.rate_period_ms, controls.rate_limit_per_key), (Some(5), Some(1000), true));

    run!(db, queue_rate_window_set("q", 7000, 3));
    let controls = run!(db, queue_controls_lock("q")).unwrap();
    assert_eq!((controls.rate_window_ms, controls.rate_window_starts), (Some(7000), 3));
    run!(db, queue_set("q", Setting::RateLimit(None)));
    run!(db, queue_set("q", Setting::ConcurrencyLimit(None)));
    let controls = run!(db, queue_controls_lock("q")).unwrap();
    assert_eq!((controls.concurrency_limit, controls.rate_limit), (None, None), "limits lifted");

    // The list names the queue with its settings, and counts jobs only when asked.
    run!(db, queue_set("q", Setting::ConcurrencyLimit(Some(4))));
    run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q"), &job("t", "elsewhere")]));
    let listed = run!(db, queue_list(true));
    let q = listed.iter().find(|r| r.0 == "q").unwrap();
    assert_eq!((q.2, q.6, q.7, q.8), (Some(4), 2, 0, 0), "limit, available, running, waiting");
    assert!(listed.iter().any(|r| r.0 == "elsewhere"), "a queue with jobs and no row");
    let settings = run!(db, queue_list(false));
    let q = settings.iter().find(|r| r.0 == "q").unwrap();
    assert_eq!((q.2, q.6), (Some(4), 0), "settings only, counts zero");
});

backend_test!(pooled async fn a_controlled_claim_counts_running_jobs_and_starts_at_the_read_time(t) {
    let db = open(t).await;
    run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q"), &job("t", "q")]));
    let (running, now_ms) = run!(db, queue_running_and_now("q"));
    assert_eq!(running, 0);
    assert!((now_ms - chrono::Utc::now().timestamp_millis()).abs() < 60_000, "the database's clock, in ms");
    let rows = run!(db, job_claim_controlled(&claim("q", 2, "w1"), now_ms));
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!((row.job.state, row.job.attempt), (JobState::Running, 1));
        assert_eq!(row.job.attempted_at.map(|t| t.timestamp_millis()), Some(now_ms), "started when read");
    }
    assert_eq!(run!(db, queue_running_and_now("q")).0, 2);
    assert!(run!(db, queue_has_available("q")));
    assert_eq!(run!(db, job_claim_controlled(&claim("q", 5, "w1"), now_ms)).len(), 1);
    assert!(!run!(db, queue_has_available("q")));
});

backend_test!(pooled async fn a_per_key_rate_window_admits_each_key_its_starts(t) {
    let db = open(t).await;
    let keyed = |key: &str| NewJob { concurrency_key: Some(key.into()), key_limit: 100, ..job("t", "q") };
    for key in ["a", "a", "b", "b"] {
        let job = keyed(key);
        run!(db, job_insert_dependent(&job, "ready", None));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let window = KeyWindow { start: now_ms - now_ms % 60_000, period_ms: 60_000, max_starts: 1 };
    let first = run!(db, job_claim_key_rated(&claim("q", 10, "w1"), now_ms, &window));
    let mut keys: Vec<_> = first.iter().map(|r| r.job.concurrency_key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"], "one start per key in the window");
    let ids: Vec<i64> = first.iter().map(|r| r.job.id.0).collect();
    run!(db, rate_windows_add("q", window.start, &ids));
    assert!(run!(db, job_claim_key_rated(&claim("q", 10, "w1"), now_ms, &window)).is_empty(), "both keys spent");
    let next = KeyWindow { start: window.start + 60_000, ..window };
    assert_eq!(run!(db, job_claim_key_rated(&claim("q", 10, "w1"), now_ms, &next)).len(), 2, "a new window");

    // Windows of a queue not limited per key are forgotten.
    assert!(run!(db, rate_windows_prune()) >= 1);
    assert_eq!(run!(db, rate_windows_prune()), 0);
});
