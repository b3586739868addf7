//! A worker never has more jobs `running` than its slots and its prefetch: a finished job
//! keeps its slot until its outcome is written, so claims cannot race ahead of slow
//! completions; prefetched jobs wait in claim order and go back at shutdown unused.

use std::time::Duration;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, JobState, Task, TaskContext, TaskError, Worker};
use oncommit_testing::backend_test;
use serde::{Deserialize, Serialize};

use super::exec;
use super::tasks::{Gated, create_runs, gate, start, wait_arrivals, wait_for, worker};

/// Succeeds at once: its outcome goes through the worker's batched completions.
#[derive(Serialize, Deserialize)]
struct Quick;

impl Task for Quick {
    const NAME: &'static str = "quick";
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

const JOBS: usize = 200;
const SLOTS: usize = 4;
const PREFETCH: usize = 3;

backend_test!(pooled async fn running_jobs_never_exceed_the_slots_while_completions_are_slow(t) {
    create_runs(&t.db).await;
    // A database slow to record completions (a busy disk): each completed row costs the
    // server a few milliseconds, claims stay fast. (PostgreSQL moves a completed job to the
    // history: its row is inserted there.)
    exec(
        &t.db,
        "CREATE FUNCTION slow_completion() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$; \
         CREATE TRIGGER slow_completion BEFORE UPDATE ON oncommit.jobs \
           FOR EACH ROW WHEN (NEW.state = 'completed') EXECUTE FUNCTION slow_completion(); \
         CREATE TRIGGER slow_completion BEFORE INSERT ON oncommit.job_history \
           FOR EACH ROW WHEN (NEW.state = 'completed') EXECUTE FUNCTION slow_completion()",
        "CREATE TABLE filler (x INTEGER); \
         INSERT INTO filler WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 500) \
           SELECT x FROM n; \
         CREATE TRIGGER slow_completion BEFORE UPDATE ON oncommit_jobs WHEN NEW.state = 'completed' \
           BEGIN SELECT count(*) FROM filler a, filler b; END",
    )
    .await
    .unwrap();
    let opts = EnqueueOptions::new();
    for _ in 0..JOBS {
        t.db.enqueue_with(Quick, opts.clone()).await.unwrap();
    }
    let worker = Worker::new(t.db.clone()).register::<Quick>().queue("default", SLOTS).prefetch(PREFETCH);
    let running = start(worker);

    let mut most = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let stats = t.db.jobs().stats().await.unwrap();
        most = most.max(stats.total[&JobState::Running]);
        if stats.total[&JobState::Completed] == JOBS as i64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the jobs did not complete: {stats:?}");
        tokio::task::yield_now().await;
    }
    assert!(most <= (SLOTS + PREFETCH) as i64, "{most} jobs were running at once with {SLOTS} slots and {PREFETCH} prefetched");
    assert!(most > 0, "the observer saw the jobs run");
    let all = t.db.jobs().list(&JobSelection::default(), &PageRequest::newest(JOBS as i64)).await.map(|page| page.jobs).unwrap();
    assert!(all.iter().all(|j| j.attempt == 1), "every job ran once");
    running.stop().await;
});

backend_test!(pooled async fn prefetched_jobs_wait_their_turn_and_go_back_unused_at_shutdown(t) {
    create_runs(&t.db).await;
    let key = format!("prefetch-{}", t.target());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 1 }).await.unwrap());
    }
    // One slot, four prefetched: all five are this worker's, one runs (held at the gate).
    let w = start(worker(&t.db).queue("default", 1).prefetch(4).shutdown_timeout(Duration::from_millis(200)));
    for id in &ids {
        wait_for(&t.db, *id, JobState::Running).await;
    }
    // The one running is the first claimed; the others have not started.
    wait_arrivals(&key, 1).await;
    gate(&key).notify_one();
    wait_for(&t.db, ids[0], JobState::Completed).await;
    // Then the second starts, in claim order.
    wait_arrivals(&key, 1).await;
    w.stop().await;
    let second = t.db.jobs().get(ids[1]).await.unwrap().unwrap();
    assert_eq!(second.state, JobState::Available, "the running one is released at the timeout: {second:?}");
    assert!(second.errors[0].error.starts_with("released"), "{second:?}");
    for id in &ids[2..] {
        let job = t.db.jobs().get(*id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Available, "{job:?}");
        // A claim already under way when the shutdown began may take a released job once
        // more and release it again: each release gives its attempt back.
        assert_eq!(job.max_attempts - job.attempt, 25, "no attempt used: {job:?}");
        assert!(job.errors.is_empty(), "nothing happened to it: {job:?}");
    }
});
