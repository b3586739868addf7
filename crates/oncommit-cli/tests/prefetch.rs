//! Prefetch never hoards: a burst of long jobs committed after a drain of short ones spreads
//! over every worker process's free slots, instead of waiting in the prefetch of the first
//! worker to wake (Celery's prefetch trap). Real `oncommit worker` processes, both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::HashMap;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, Job, JobState};
use oncommit_testing::{backend_test, eventually};
use serde_json::json;
use support::worker_process;

const WORKERS: usize = 3;
const SLOTS: usize = 4;

/// Commits `n` jobs of `task` with `args` on the queue `burst` in one transaction.
async fn enqueue(db: &oncommit::Db, n: usize, task: &str, args: serde_json::Value) {
    let mut tx = db.begin().await.unwrap();
    for _ in 0..n {
        tx.enqueue_raw(task, &args, EnqueueOptions::new().queue("burst")).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// Waits until the queue's jobs of `task` are all completed; returns them.
async fn completed(db: &oncommit::Db, task: &str, n: usize) -> Vec<Job> {
    eventually(&format!("the {n} {task} jobs to complete"), || async {
        let burst = JobSelection::default().queue("burst").task(task);
        let done = JobSelection { states: vec![JobState::Completed], ..burst.clone() };
        if db.jobs().count(&done).await.unwrap() as usize != n || db.jobs().count(&burst).await.unwrap() as usize != n {
            return None;
        }
        let jobs: Vec<Job> = db.jobs().list(&done, &PageRequest::newest(n.min(1000) as i64)).await.unwrap().jobs;
        Some(jobs)
    })
    .await
}

backend_test!(async fn a_burst_of_long_jobs_after_short_ones_takes_every_workers_slots(t) {
    t.db.migrate().await.unwrap();
    let mut workers: Vec<_> = (0..WORKERS).map(|_| worker_process(&t.url, "burst", SLOTS)).collect();
    // Short jobs first: the workers' prefetch grows to its most.
    enqueue(&t.db, 3000, "noop", json!({})).await;
    completed(&t.db, "noop", 3000).await;

    // As many long jobs as the fleet has slots, at once.
    let long = WORKERS * SLOTS;
    enqueue(&t.db, long, "sleep", json!({ "ms": 1000 })).await;
    let jobs = completed(&t.db, "sleep", long).await;
    for w in &mut workers {
        w.kill().ok();
        w.wait().ok();
    }
    let mut per_worker: HashMap<&str, usize> = HashMap::new();
    for job in &jobs {
        *per_worker.entry(job.lease_owner.as_deref().unwrap()).or_default() += 1;
    }
    // Each process ran as many as its slots: none waited in one worker's prefetch while
    // another worker had a slot free.
    assert_eq!(per_worker.len(), WORKERS, "every worker took a share: {per_worker:?}");
    assert!(per_worker.values().all(|n| *n == SLOTS), "one share of {SLOTS} each: {per_worker:?}");
    assert!(jobs.iter().all(|j| j.attempt == 1), "each ran once");
});
