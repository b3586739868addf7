//! Concurrency keys: jobs sharing a key run at most N at a time, in enqueue order, across
//! several workers, while other keys and unkeyed jobs keep flowing. Checked from the job
//! rows: each job holds its key's slot from its claim (`attempted_at`) to its finish.

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{EnqueueOptions, Error, Job, JobState};
use oncommit_testing::{backend_test, eventually};

use super::tasks::{Nap, Running, create_runs, start, wait_for, worker};

fn keyed(key: &str, limit: u32) -> EnqueueOptions {
    EnqueueOptions::new().concurrency_key(key).concurrency_key_limit(limit)
}

/// Every job of `queue` once all have completed (waiting for that).
async fn completed(db: &oncommit::Db, queue: &str, n: usize) -> Vec<Job> {
    eventually(&format!("{n} jobs of {queue} to complete"), || async {
        let jobs = db
            .jobs()
            .list(&JobSelection::default().queue(queue), &PageRequest::newest(1000))
            .await
            .map(|page| page.jobs)
            .unwrap();
        (jobs.len() == n && jobs.iter().all(|j| j.state == JobState::Completed)).then_some(jobs)
    })
    .await
}

/// The most jobs whose [claim, finish] intervals overlap at any moment.
fn most_at_once(jobs: &[Job]) -> usize {
    jobs.iter()
        .map(|at| {
            let t = at.attempted_at.unwrap();
            jobs.iter().filter(|j| j.attempted_at.unwrap() <= t && t < j.finished_at.unwrap()).count()
        })
        .max()
        .unwrap_or(0)
}

fn three_workers(db: &oncommit::Db, queue: &str) -> Vec<Running> {
    (0..3).map(|_| start(worker(db).register::<Nap>().queue(queue, 4))).collect()
}

backend_test!(pooled async fn a_key_runs_one_at_a_time_in_enqueue_order_while_others_flow(t) {
    create_runs(&t.db).await;
    for _ in 0..10 {
        t.db.enqueue_with(Nap { ms: 30 }, keyed("customer:1", 1).queue("one")).await.unwrap();
    }
    for _ in 0..3 {
        t.db.enqueue_with(Nap { ms: 30 }, keyed("customer:2", 1).queue("two")).await.unwrap();
    }
    let pending = JobSelection::new([JobState::Pending]);
    assert_eq!(t.db.jobs().count(&pending).await.unwrap(), 9 + 2, "all but the first of each key wait");
    let workers: Vec<_> = (0..3)
        .map(|_| start(worker(&t.db).register::<Nap>().queue("one", 4).queue("two", 4)))
        .collect();
    let mut one = completed(&t.db, "one", 10).await;
    let two = completed(&t.db, "two", 3).await;
    one.sort_by_key(|j| j.id);
    for pair in one.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            after.attempted_at.unwrap() >= before.finished_at.unwrap(),
            "job {} started before job {} of the same key finished",
            after.id,
            before.id
        );
    }
    // The other customer did not wait for the first one's queue of work.
    let two_done = two.iter().map(|j| j.finished_at.unwrap()).max().unwrap();
    let one_done = one.last().unwrap().attempted_at.unwrap();
    assert!(two_done < one_done, "customer 2 finished at {two_done}, after customer 1's last job began at {one_done}");
    for w in workers {
        w.stop().await;
    }
});

backend_test!(pooled async fn a_key_limit_of_n_is_never_exceeded_across_workers(t) {
    create_runs(&t.db).await;
    for _ in 0..12 {
        t.db.enqueue_with(Nap { ms: 25 }, keyed("tenant", 2).queue("limited")).await.unwrap();
    }
    let workers = three_workers(&t.db, "limited");
    let jobs = completed(&t.db, "limited", 12).await;
    let most = most_at_once(&jobs);
    assert!(most <= 2, "{most} jobs of one key held slots at once under a limit of 2");
    for w in workers {
        w.stop().await;
    }
});

backend_test!(pooled async fn enqueuers_racing_finishers_never_strand_or_double_a_slot(t) {
    create_runs(&t.db).await;
    // Workers finish the key's jobs while two enqueuers keep adding to it: each new job is
    // either admitted at once (a slot was free) or by the finish of a holder, never both,
    // never neither.
    let workers = three_workers(&t.db, "race");
    let mut enqueuers = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let db = t.db.clone();
        enqueuers.spawn(async move {
            for _ in 0..40 {
                let mut tx = db.begin().await.unwrap();
                tx.enqueue_with(Nap { ms: 1 }, keyed("hot", 1).queue("race")).await.unwrap();
                tx.commit().await.unwrap();
            }
        });
    }
    while let Some(done) = enqueuers.join_next().await {
        done.unwrap();
    }
    let jobs = completed(&t.db, "race", 80).await;
    assert_eq!(most_at_once(&jobs), 1, "one job of the key at a time");
    for w in workers {
        w.stop().await;
    }
});

backend_test!(pooled async fn a_failed_or_cancelled_holder_frees_the_slot(t) {
    create_runs(&t.db).await;
    let first = t.db.enqueue_raw("nobody_runs_this", &serde_json::json!({}), keyed("k", 1).max_attempts(1)).await.unwrap();
    let second = t.db.enqueue_with(Nap { ms: 1 }, keyed("k", 1)).await.unwrap();
    let third = t.db.enqueue_with(Nap { ms: 1 }, keyed("k", 1)).await.unwrap();
    assert_eq!(t.db.jobs().get(second).await.unwrap().unwrap().state, JobState::Pending);
    // Cancelling a waiting job gives nothing back (it held no slot); cancelling the holder does.
    t.db.jobs().cancel(third).await.unwrap();
    t.db.jobs().cancel(first).await.unwrap();
    assert_eq!(t.db.jobs().get(second).await.unwrap().unwrap().state, JobState::Available);
    let w = start(worker(&t.db).register::<Nap>());
    wait_for(&t.db, second, JobState::Completed).await;
    w.stop().await;

    // Refused at the door.
    let refused = |r: oncommit::Result<oncommit::JobId>| matches!(r, Err(Error::InvalidOption { .. }));
    assert!(refused(t.db.enqueue_with(Nap { ms: 1 }, keyed("", 1)).await));
    assert!(refused(t.db.enqueue_with(Nap { ms: 1 }, keyed("k", 0)).await));
    assert!(refused(t.db.enqueue_with(Nap { ms: 1 }, EnqueueOptions::new().concurrency_key_limit(2)).await));
    assert!(refused(t.db.enqueue_with(Nap { ms: 1 }, keyed("k", 1).depends_on([second])).await));
    assert!(refused(t.db.enqueue_with(Nap { ms: 1 }, keyed("k", 1).unique_key("u")).await));
});
