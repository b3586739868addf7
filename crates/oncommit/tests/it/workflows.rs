//! Jobs that depend on others, and workflows built on them: a dependant is `pending` until
//! its parents complete, becomes available in the transaction of the last completion (no
//! poll), is cancelled naming a parent that failed, and reads its parents' results.

use std::time::Duration;

use oncommit::admin::JobSelection;
use oncommit::{EnqueueOptions, Error, JobState, Step, Task, TaskContext, TaskError, TaskOptions, Workflow};
use oncommit_testing::backend_test;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::exec;
use super::tasks::{Echo, Gated, create_runs, gate, start, wait_arrivals, wait_for, worker};

/// Stores `n` as its result.
#[derive(Serialize, Deserialize)]
struct Produce {
    n: i64,
}

impl Task for Produce {
    const NAME: &'static str = "produce";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        cx.set_result(&json!({ "n": self.n }))?;
        Ok(())
    }
}

/// Sums its parents' results into its own.
#[derive(Serialize, Deserialize)]
struct Sum;

impl Task for Sum {
    const NAME: &'static str = "sum";
    async fn run(self, cx: &mut TaskContext) -> Result<(), TaskError> {
        let parents = cx.parents().await?;
        let total: i64 = parents.iter().filter_map(|p| p.result.as_ref()?.get("n")?.as_i64()).sum();
        cx.set_result(&json!({ "total": total, "parents": parents.len() }))?;
        Ok(())
    }
}

/// Fails for good on its first attempt.
#[derive(Serialize, Deserialize)]
struct Doomed;

impl Task for Doomed {
    const NAME: &'static str = "doomed";
    fn options() -> TaskOptions {
        TaskOptions::default().max_attempts(1)
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Err(TaskError::fail("the disk is full"))
    }
}

fn after(parents: impl IntoIterator<Item = oncommit::JobId>) -> EnqueueOptions {
    EnqueueOptions::new().depends_on(parents)
}

/// A worker that never polls: whatever runs was woken by a commit or a NOTIFY.
fn unpolled(db: &oncommit::Db) -> oncommit::Worker {
    worker(db).register::<Produce>().register::<Sum>().register::<Doomed>().poll_interval(Duration::from_secs(3600))
}

backend_test!(pooled async fn a_dependant_starts_in_the_transaction_that_completes_its_last_parent(t) {
    create_runs(&t.db).await;
    let (ka, kb) = (format!("dep-a-{}", t.target()), format!("dep-b-{}", t.target()));
    let a = t.db.enqueue(Gated { gate: ka.clone(), hold_attempts: 1 }).await.unwrap();
    let b = t.db.enqueue(Gated { gate: kb.clone(), hold_attempts: 1 }).await.unwrap();
    let c = t.db.enqueue_with(Echo { key: "child".into() }, after([a, b])).await.unwrap();
    assert_eq!(t.db.jobs().get(c).await.unwrap().unwrap().state, JobState::Pending);
    let w = start(unpolled(&t.db).queue("default", 4));
    wait_arrivals(&ka, 1).await;
    wait_arrivals(&kb, 1).await;
    gate(&ka).notify_one();
    wait_for(&t.db, a, JobState::Completed).await;
    assert_eq!(t.db.jobs().get(c).await.unwrap().unwrap().state, JobState::Pending, "one parent is still running");
    gate(&kb).notify_one();
    // No poll runs in this worker: only the completion's own wake-up can start the child.
    let child = wait_for(&t.db, c, JobState::Completed).await;
    let last_parent = t.db.jobs().get(b).await.unwrap().unwrap().finished_at.unwrap();
    assert!(child.attempted_at.unwrap() >= last_parent, "the child ran after its last parent finished");
    w.stop().await;
});

backend_test!(pooled async fn a_failed_parent_cancels_its_dependants_down_the_line(t) {
    create_runs(&t.db).await;
    let a = t.db.enqueue(Doomed).await.unwrap();
    let b = t.db.enqueue_with(Echo { key: "b".into() }, after([a])).await.unwrap();
    let c = t.db.enqueue_with(Echo { key: "c".into() }, after([b])).await.unwrap();
    let cleanup = t.db.enqueue_with(Echo { key: "cleanup".into() }, after([a]).run_after_failed_parents()).await.unwrap();
    let w = start(unpolled(&t.db));
    wait_for(&t.db, a, JobState::Failed).await;
    let b = wait_for(&t.db, b, JobState::Cancelled).await;
    assert_eq!(b.errors.last().unwrap().error, format!("parent job {a} failed"));
    let c = wait_for(&t.db, c, JobState::Cancelled).await;
    assert_eq!(c.errors.last().unwrap().error, format!("parent job {} cancelled", b.id));
    wait_for(&t.db, cleanup, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn a_dependant_of_finished_or_missing_parents_is_settled_at_enqueue(t) {
    create_runs(&t.db).await;
    let w = start(unpolled(&t.db));
    let done = t.db.enqueue(Produce { n: 1 }).await.unwrap();
    wait_for(&t.db, done, JobState::Completed).await;
    let failed = t.db.enqueue(Doomed).await.unwrap();
    wait_for(&t.db, failed, JobState::Failed).await;
    w.stop().await;

    let ready = t.db.enqueue_raw("later_step", &json!({}), after([done])).await.unwrap();
    assert_eq!(t.db.jobs().get(ready).await.unwrap().unwrap().state, JobState::Available);
    let scheduled = after([done]).delay(Duration::from_secs(3600));
    let scheduled = t.db.enqueue_raw("later_step", &json!({}), scheduled).await.unwrap();
    assert_eq!(t.db.jobs().get(scheduled).await.unwrap().unwrap().state, JobState::Scheduled);
    let gone = t.db.enqueue_raw("later_step", &json!({}), after([done, failed])).await.unwrap();
    let gone = t.db.jobs().get(gone).await.unwrap().unwrap();
    assert_eq!(gone.state, JobState::Cancelled);
    assert_eq!(gone.errors[0].error, format!("parent job {failed} failed"));

    let before = t.db.jobs().count(&JobSelection::new(JobState::ALL)).await.unwrap();
    let missing = t.db.enqueue_raw("later_step", &json!({}), after([oncommit::JobId(999_999)])).await;
    assert!(matches!(&missing, Err(Error::InvalidOption { option: "depends_on", .. })), "{missing:?}");
    let unique = after([done]).unique_key("k");
    assert!(matches!(t.db.enqueue_raw("x", &json!({}), unique).await, Err(Error::InvalidOption { .. })));
    assert_eq!(t.db.jobs().count(&JobSelection::new(JobState::ALL)).await.unwrap(), before, "nothing was added");
});

backend_test!(pooled async fn a_workflow_runs_in_stages_and_passes_results_along(t) {
    create_runs(&t.db).await;
    let flow = Workflow::named("totals")
        .then(Produce { n: 1 })
        .then_all([Produce { n: 10 }, Produce { n: 100 }])
        .then(Sum);
    let ids = t.db.enqueue_workflow(flow).await.unwrap();
    assert_eq!(ids.stages.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 1]);
    assert!(ids.id.starts_with("totals-"), "{}", ids.id);
    let steps = t.db.jobs().workflow(&ids.id).await.unwrap();
    let states: Vec<JobState> = steps.iter().map(|s| s.job.state).collect();
    assert_eq!(states, [JobState::Available, JobState::Pending, JobState::Pending, JobState::Pending]);
    assert_eq!(steps[3].parents, ids.stages[1], "the last step waits for the whole group");
    assert_eq!(steps[1].parents, ids.stages[0]);

    let w = start(unpolled(&t.db));
    let last = ids.stages[2][0];
    let sum = wait_for(&t.db, last, JobState::Completed).await;
    assert_eq!(sum.result, Some(json!({ "total": 110, "parents": 2 })), "the callback read its parents' results");
    assert_eq!(sum.workflow_id.as_deref(), Some(ids.id.as_str()));
    // Never a dependant before its parents.
    let steps = t.db.jobs().workflow(&ids.id).await.unwrap();
    for step in &steps {
        for parent in &step.parents {
            let parent = steps.iter().find(|s| s.job.id == *parent).unwrap();
            assert!(step.job.attempted_at.unwrap() >= parent.job.finished_at.unwrap(), "{step:?} ran before {parent:?}");
        }
    }
    w.stop().await;
});

backend_test!(pooled async fn a_workflow_is_enqueued_whole_or_not_at_all(t) {
    t.db.migrate().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    let ids = tx.enqueue_workflow(Workflow::new().then(Produce { n: 1 }).then(Sum)).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(t.db.jobs().workflow(&ids.id).await.unwrap().is_empty());
    assert_eq!(t.db.jobs().count(&JobSelection::new(JobState::ALL)).await.unwrap(), 0);
    // Mixed tasks in one stage, and refused shapes.
    let mixed = Workflow::new().then_all([Step::new(Produce { n: 1 }), Step::raw("python_task", json!({ "x": 1 }))]);
    let ids = t.db.enqueue_workflow(mixed).await.unwrap();
    assert_eq!(ids.stages[0].len(), 2);
    for bad in [Workflow::new(), Workflow::new().then(Sum).then_all(Vec::<Step>::new())] {
        let refused = t.db.enqueue_workflow(bad).await;
        assert!(matches!(refused, Err(Error::InvalidOption { option: "workflow", .. })), "{refused:?}");
    }
});

backend_test!(pooled async fn parents_finishing_at_once_never_strand_their_child(t) {
    create_runs(&t.db).await;
    const CHILDREN: usize = 10;
    // PostgreSQL: each completing transaction lingers 50 ms after its row changed (moved to
    // the history; a busy disk), so the two parents' transactions overlap: each settles the
    // child before the other has committed. Only the lock on the child makes the second see
    // the first.
    exec(
        &t.db,
        "CREATE FUNCTION linger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$; \
         CREATE TRIGGER jobs_zz_linger AFTER UPDATE OF state ON oncommit.jobs \
           FOR EACH ROW WHEN (NEW.state = 'completed' AND NEW.queue IN ('left', 'right')) EXECUTE FUNCTION linger(); \
         CREATE TRIGGER jobs_zz_linger AFTER INSERT ON oncommit.job_history \
           FOR EACH ROW WHEN (NEW.state = 'completed' AND NEW.queue IN ('left', 'right')) EXECUTE FUNCTION linger()",
        "SELECT 1",
    )
    .await
    .unwrap();
    let (kl, kr) = (format!("left-{}", t.target()), format!("right-{}", t.target()));
    let mut children = Vec::new();
    let mut tx = t.db.begin().await.unwrap();
    let (left, right) = (EnqueueOptions::new().queue("left"), EnqueueOptions::new().queue("right"));
    for _ in 0..CHILDREN {
        let a = tx.enqueue_with(Gated { gate: kl.clone(), hold_attempts: 1 }, left.clone()).await.unwrap();
        let b = tx.enqueue_with(Gated { gate: kr.clone(), hold_attempts: 1 }, right.clone()).await.unwrap();
        children.push(tx.enqueue_with(Sum, after([a, b]).queue("sums")).await.unwrap());
    }
    tx.commit().await.unwrap();
    // Each parent of a child runs in another worker; all are let go at once, so the two
    // parents of each child complete at the same moment, in their own transactions.
    let w1 = start(unpolled(&t.db).queue("left", CHILDREN));
    let w2 = start(unpolled(&t.db).queue("right", CHILDREN));
    let w3 = start(unpolled(&t.db).queue("sums", 4));
    wait_arrivals(&kl, CHILDREN as u32).await;
    wait_arrivals(&kr, CHILDREN as u32).await;
    // Released together (again, for a task counted as arrived a moment before it waits).
    oncommit_testing::eventually("every parent to complete", || async {
        gate(&kl).notify_waiters();
        gate(&kr).notify_waiters();
        let parents = JobSelection::new([JobState::Completed]).task("gated");
        (t.db.jobs().count(&parents).await.unwrap() == 2 * CHILDREN as i64).then_some(())
    })
    .await;
    for child in &children {
        wait_for(&t.db, *child, JobState::Completed).await;
    }
    for w in [w1, w2, w3] {
        w.stop().await;
    }
});
