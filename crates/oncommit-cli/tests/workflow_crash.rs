//! A workflow survives the SIGKILL of a worker process in its middle: the killed worker's
//! step is rescued when its lease runs out and runs again elsewhere, the rest proceeds, and
//! every step's effect is recorded exactly once (each step completes in the transaction
//! that records it). Never does a step start before its parents completed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use oncommit::{JobState, Step, Workflow};
use oncommit_testing::backend_test;
use serde_json::json;
use support::worker_process;

/// A step that works `ms`, then records its key in the transaction that completes it.
fn record(key: String, ms: u64) -> Step {
    Step::raw("record", json!({ "key": key, "ms": ms }))
}

backend_test!(async fn a_workflow_finishes_once_through_a_killed_worker(t) {
    oncommit_demo::schema::migrate(&t.db).await.unwrap();
    let flow = Workflow::named("crash")
        .then_all((0..4).map(|i| record(format!("a{i}"), 200)))
        .then_all((0..4).map(|i| record(format!("b{i}"), 400)))
        .then(record("c".into(), 50));
    let ids = t.db.enqueue_workflow(flow).await.unwrap();
    let mut workers = vec![worker_process(&t.url, "default", 4), worker_process(&t.url, "default", 4)];
    let pids: Vec<u32> = workers.iter().map(|w| w.id()).collect();

    // Once a worker holds a step of the second stage, SIGKILL it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed = false;
    loop {
        let steps = t.db.jobs().workflow(&ids.id).await.unwrap();
        if !killed {
            let holder = steps.iter().filter(|s| s.job.state == JobState::Running && s.job.task == "record")
                .filter(|s| ids.stages[1].contains(&s.job.id))
                .find_map(|s| pids.iter().position(|pid| s.job.lease_owner.as_deref().is_some_and(|o| o.contains(&format!("-{pid}-")))));
            if let Some(victim) = holder {
                workers[victim].kill().unwrap();
                workers[victim].wait().unwrap();
                killed = true;
            }
        }
        if steps.iter().all(|s| s.job.state == JobState::Completed) {
            break;
        }
        assert!(
            steps.iter().all(|s| !s.job.state.is_finished() || s.job.state == JobState::Completed),
            "a step ended other than completed: {steps:#?}"
        );
        assert!(Instant::now() < deadline, "the workflow did not finish: {steps:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(killed, "a worker was killed holding a step");
    for mut w in workers {
        w.kill().ok();
        w.wait().ok();
    }

    let steps = t.db.jobs().workflow(&ids.id).await.unwrap();
    assert!(
        steps.iter().any(|s| s.job.errors.iter().any(|e| e.error.contains("lease expired"))),
        "the killed worker's step was rescued: {steps:#?}"
    );
    for step in &steps {
        for parent in &step.parents {
            let parent = steps.iter().find(|s| s.job.id == *parent).unwrap();
            let (started, parent_done) = (step.job.attempted_at.unwrap(), parent.job.finished_at.unwrap());
            assert!(started >= parent_done, "job {} started before its parent {} completed", step.job.id, parent.job.id);
        }
    }
    // Exactly one recorded effect per step.
    let mut conn = t.db.acquire().await.unwrap();
    let runs: Vec<(i64, i64)> = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_as("SELECT job_id, count(*) FROM demo_runs GROUP BY job_id ORDER BY job_id").fetch_all(c).await.unwrap()
    });
    let expected: Vec<(i64, i64)> = ids.jobs().map(|id| (id.0, 1)).collect();
    assert_eq!(runs, expected);
});
