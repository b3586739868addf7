//! Queue-wide flow control as operators and deployments use it: `oncommit queue …` and
//! `oncommit queues` from the shell, a concurrency limit held by several `oncommit worker`
//! processes at once, through the SIGKILL of one of them, and a concurrency key's jobs run
//! one at a time by several processes.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, JobState};
use oncommit_testing::backend_test;
use serde_json::{Value, json};
use support::{json, oncommit, worker_process};

backend_test!(async fn queue_commands_steer_and_list_queues(t) {
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let v = json(&url, &["queue", "pause", "mail", "--json"]);
        assert_eq!(v["queue"]["name"], "mail");
        assert_eq!(v["queue"]["paused"], true);
        let v = json(&url, &["queue", "limit", "mail", "3", "--json"]);
        assert_eq!(v["queue"]["concurrency_limit"], 3);
        let v = json(&url, &["queue", "rate-limit", "mail", "5/1s", "--per-key", "--json"]);
        assert_eq!(v["queue"]["rate_limit"], json!({ "max_starts": 5, "period_ms": 1000, "per_key": true }));
        let v = json(&url, &["queue", "rate-limit", "mail", "10/1m", "--json"]);
        assert_eq!(v["queue"]["rate_limit"], json!({ "max_starts": 10, "period_ms": 60_000, "per_key": false }));
        let v = json(&url, &["queues", "--json"]);
        let mail = &v["queues"][0];
        assert_eq!(
            (mail["name"].as_str(), mail["paused"].as_bool(), mail["concurrency_limit"].as_i64()),
            (Some("mail"), Some(true), Some(3)),
            "{v}"
        );
        for field in ["available", "running", "waiting", "workers"] {
            assert_eq!(mail[field], 0, "{field}: {v}");
        }
        assert_eq!(mail["lag_seconds"].as_f64(), Some(0.0), "nothing waits: {v}");
        let text = String::from_utf8(oncommit(&url, &["queues"]).stdout).unwrap();
        assert!(text.contains("mail") && text.contains("paused") && text.contains("10/60000ms"), "{text}");

        let v = json(&url, &["queue", "resume", "mail", "--json"]);
        assert_eq!(v["queue"]["paused"], false);
        let v = json(&url, &["queue", "limit", "mail", "none", "--json"]);
        assert_eq!(v["queue"]["concurrency_limit"], Value::Null);
        let v = json(&url, &["queue", "rate-limit", "mail", "none", "--json"]);
        assert_eq!(v["queue"]["rate_limit"], Value::Null);

        // Bad values: a usage error naming the problem, nothing changed.
        for (args, says) in [
            (vec!["queue", "limit", "mail", "0"], "pause the queue instead"),
            (vec!["queue", "limit", "mail", "many"], "not a number"),
            (vec!["queue", "rate-limit", "mail", "10"], "starts per period"),
            (vec!["queue", "rate-limit", "mail", "10/1y"], "starts per period"),
            (vec!["queue", "rate-limit", "mail", "0/1s"], "at least 1 start"),
            (vec!["queue", "pause", "a,b"], "invalid queue name"),
        ] {
            let out = oncommit(&url, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
        let v = json(&url, &["queues", "--json"]);
        assert_eq!(v["queues"].as_array().unwrap().len(), 1, "{v}");
    })
    .await
    .unwrap();
});

backend_test!(async fn worker_processes_share_the_limit_and_a_killed_ones_slots_come_back(t) {
    const JOBS: usize = 40;
    const LIMIT: i64 = 3;
    t.db.migrate().await.unwrap();
    t.db.queues().set_concurrency_limit("limited", Some(LIMIT as u32)).await.unwrap();
    for _ in 0..JOBS {
        t.db.enqueue_raw("sleep", &json!({ "ms": 60 }), EnqueueOptions::new().queue("limited")).await.unwrap();
    }
    let mut workers: Vec<_> = (0..3).map(|_| worker_process(&t.url, "limited", 5)).collect();

    // Sample the running jobs from the database while the processes work; once one of them
    // holds a job, SIGKILL that one.
    let pids: Vec<u32> = workers.iter().map(|w| w.id()).collect();
    let mut most = 0;
    let mut killed_holding = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let filter = JobSelection::new([JobState::Running]);
        let running = t.db.jobs().list(&filter, &PageRequest::newest(100)).await.unwrap().jobs;
        most = most.max(running.len() as i64);
        if killed_holding == 0 {
            let holder = |pid: u32| {
                let mark = format!("-{pid}-");
                running.iter().filter(|j| j.lease_owner.as_deref().is_some_and(|o| o.contains(&mark))).count()
            };
            if let Some(victim) = pids.iter().position(|pid| holder(*pid) > 0) {
                workers[victim].kill().unwrap();
                workers[victim].wait().unwrap();
                // What it held when it died, as the database has it (its leases still run):
                // between the sample above and the kill it may have finished or claimed more.
                let mark = format!("-{}-", pids[victim]);
                killed_holding = t.db.jobs().list(&filter, &PageRequest::newest(100)).await.unwrap().jobs.iter()
                    .filter(|j| j.lease_owner.as_deref().is_some_and(|o| o.contains(&mark)))
                    .count();
            }
        }
        let stats = t.db.jobs().stats().await.unwrap();
        if stats.total[&JobState::Completed] == JOBS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs did not complete: {stats:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(most <= LIMIT, "{most} jobs were running at once under a limit of {LIMIT}");
    assert!(most >= 1, "the sampler saw jobs run");
    assert!(killed_holding > 0, "the victim was killed holding jobs");
    // The killed worker's jobs were rescued (their slots came back) and ran elsewhere.
    let jobs = t.db.jobs().list(&JobSelection::default(), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
    let rescued = jobs.iter().filter(|j| j.errors.iter().any(|e| e.error.contains("lease expired"))).count();
    assert_eq!(rescued, killed_holding, "every job the victim held was rescued");
    assert!(jobs.iter().all(|j| j.state == JobState::Completed));
    for mut w in workers {
        w.kill().ok();
        w.wait().ok();
    }
});

backend_test!(async fn worker_processes_run_a_concurrency_key_one_at_a_time(t) {
    const JOBS: usize = 15;
    t.db.migrate().await.unwrap();
    let keyed = EnqueueOptions::new().queue("keyed").concurrency_key("customer:9");
    for _ in 0..JOBS {
        t.db.enqueue_raw("sleep", &json!({ "ms": 20 }), keyed.clone()).await.unwrap();
    }
    let mut workers: Vec<_> = (0..3).map(|_| worker_process(&t.url, "keyed", 5)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = t.db.jobs().list(&JobSelection::default().queue("keyed"), &PageRequest::newest(100)).await.map(|page| page.jobs).unwrap();
        if jobs.iter().all(|j| j.state == JobState::Completed) {
            break jobs;
        }
        assert!(Instant::now() < deadline, "the keyed jobs did not complete: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for w in &mut workers {
        w.kill().ok();
        w.wait().ok();
    }
    // From the rows: each job held the key from its claim to its finish, one after another,
    // in enqueue order, though three processes claimed them.
    let mut jobs = jobs;
    jobs.sort_by_key(|j| j.id);
    for pair in jobs.windows(2) {
        assert!(
            pair[1].attempted_at.unwrap() >= pair[0].finished_at.unwrap(),
            "job {} started before job {} of its key finished",
            pair[1].id,
            pair[0].id
        );
    }
    assert!(jobs.iter().all(|j| j.errors.is_empty() && j.attempt == 1), "each ran once, first time: {jobs:?}");
});
