//! Bulk actions on the jobs a selection picks: counted first, then retried, cancelled or
//! deleted in batches; running jobs are never retried or deleted, only asked to stop.

use oncommit::admin::{BulkCancelled, JobSelection, PageRequest};
use oncommit::{EnqueueOptions, Error, JobState};
use oncommit_testing::backend_test;

use super::exec;
use super::tasks::{Echo, Gated, create_runs, start, wait_arrivals, wait_for, worker};

/// Dead jobs written as a worker leaves them: `failed` with an error history, finished at a
/// known time. `n` rows per call, in one statement.
async fn dead_jobs(db: &oncommit::Db, n: i64, queue: &str, task: &str, error: &str, finished_ms: i64) {
    let pg = format!(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, attempt, state, finished_at, errors) \
         SELECT '{task}', '{queue}', 0, 3, 3, 'failed', to_timestamp({finished_ms} / 1000.0), \
                jsonb_build_array(jsonb_build_object('attempt', 3, 'at', {finished_ms}, 'error', '{error}')) \
         FROM generate_series(1, {n})"
    );
    let lite = format!(
        "INSERT INTO oncommit_jobs (task, queue, priority, max_attempts, attempt, state, finished_at, errors) \
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) \
         SELECT '{task}', '{queue}', 0, 3, 3, 'failed', {finished_ms}, \
                json_array(json_object('attempt', 3, 'at', {finished_ms}, 'error', '{error}')) FROM s"
    );
    exec(db, &pg, &lite).await.unwrap();
}

const NIGHT: i64 = 1_790_000_000_000;
const HOUR: i64 = 3_600_000;

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

backend_test!(pooled async fn a_selection_counts_and_retries_exactly_its_jobs(t) {
    t.db.migrate().await.unwrap();
    dead_jobs(&t.db, 7, "mail", "send", "SMTP: Connection Refused by host", NIGHT).await;
    dead_jobs(&t.db, 5, "mail", "send", "mailbox full", NIGHT).await;
    dead_jobs(&t.db, 4, "mail", "bounce", "connection refused", NIGHT).await;
    dead_jobs(&t.db, 3, "sms", "send", "connection refused", NIGHT).await;
    dead_jobs(&t.db, 2, "mail", "send", "connection refused", NIGHT - 2 * HOUR).await;
    // A history written by hand that is not an array: matches no text, breaks nothing.
    exec(
        &t.db,
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at, errors) \
         VALUES ('send', 'mail', 0, 1, 'failed', to_timestamp(1790000000), '\"refused\"')",
        "INSERT INTO oncommit_jobs (task, queue, priority, max_attempts, state, finished_at, errors) \
         VALUES ('send', 'mail', 0, 1, 'failed', 1790000000000, 'refused, not json')",
    )
    .await
    .unwrap();

    let failed = JobSelection::new([JobState::Failed]);
    assert_eq!(t.db.jobs().count(&failed).await.unwrap(), 22);
    assert_eq!(t.db.jobs().count(&failed.clone().queue("mail")).await.unwrap(), 19);
    assert_eq!(t.db.jobs().count(&failed.clone().queue("mail").task("send")).await.unwrap(), 15);
    let refused = failed.clone().queue("mail").task("send").error_contains("connection REFUSED");
    assert_eq!(t.db.jobs().count(&refused).await.unwrap(), 9);
    let last_night = refused.clone().since(at(NIGHT - HOUR)).until(at(NIGHT + HOUR));
    assert_eq!(t.db.jobs().count(&last_night).await.unwrap(), 7);
    assert_eq!(t.db.jobs().count(&JobSelection::new([JobState::Cancelled])).await.unwrap(), 0);

    assert_eq!(t.db.jobs().retry_all(&last_night).await.unwrap(), 7);
    let filter = JobSelection::new([JobState::Available]);
    let available = t.db.jobs().list(&filter, &PageRequest::newest(100)).await.unwrap().jobs;
    assert_eq!(available.len(), 7);
    for job in &available {
        assert_eq!((job.queue.as_str(), job.task.as_str()), ("mail", "send"));
        assert!(job.errors[0].error.contains("Connection Refused"), "{job:?}");
        assert_eq!((job.attempt, job.max_attempts, job.finished_at), (3, 4, None), "one more attempt: {job:?}");
    }
    // Nothing else moved; a second pass finds nothing left to retry.
    assert_eq!(t.db.jobs().count(&failed).await.unwrap(), 15);
    assert_eq!(t.db.jobs().retry_all(&last_night).await.unwrap(), 0);
});

backend_test!(pooled async fn cancel_and_delete_leave_running_jobs_to_their_workers(t) {
    create_runs(&t.db).await;
    let key = format!("bulk-running-{}", t.target());
    let running = t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 1 }).await.unwrap();
    // A short lease: on SQLite a cancel reaches a running job at the next heartbeat.
    let w = start(worker(&t.db).queue("default", 1).prefetch(0).lease(std::time::Duration::from_millis(900)));
    wait_arrivals(&key, 1).await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 0 }).await.unwrap());
    }
    let unfinished = JobSelection::new([JobState::Available, JobState::Running]).task("gated");
    assert_eq!(t.db.jobs().count(&unfinished).await.unwrap(), 4);
    // Deleting or retrying never touches the running job.
    assert_eq!(t.db.jobs().delete_all(&JobSelection::new([JobState::Running])).await.unwrap(), 0);
    assert_eq!(t.db.jobs().retry_all(&JobSelection::new([JobState::Running])).await.unwrap(), 0);
    let cancelled = t.db.jobs().cancel_all(&unfinished).await.unwrap();
    assert_eq!(cancelled, BulkCancelled { cancelled: 3, requested: 1 });
    for id in &waiting {
        assert_eq!(t.db.jobs().get(*id).await.unwrap().unwrap().state, JobState::Cancelled);
    }
    // The running job's worker stops it while it waits at its gate (at once by NOTIFY, or
    // at its next heartbeat).
    wait_for(&t.db, running, JobState::Cancelled).await;
    let dead = JobSelection::new([JobState::Cancelled]);
    assert_eq!(t.db.jobs().delete_all(&dead).await.unwrap(), 4);
    assert_eq!(t.db.jobs().count(&dead).await.unwrap(), 0);
    w.stop().await;
});

backend_test!(pooled async fn thousands_of_jobs_go_in_batches(t) {
    t.db.migrate().await.unwrap();
    dead_jobs(&t.db, 12_000, "bulk", "send", "timeout", NIGHT).await;
    let selection = JobSelection::new([JobState::Failed, JobState::Available]).queue("bulk");
    // Retried jobs are `available`, which the selection also names: each is retried once.
    assert_eq!(t.db.jobs().retry_all(&selection).await.unwrap(), 12_000);
    assert_eq!(t.db.jobs().count(&JobSelection::new([JobState::Available])).await.unwrap(), 12_000);
    assert_eq!(t.db.jobs().delete_all(&selection).await.unwrap(), 12_000);
    assert_eq!(t.db.jobs().count(&selection).await.unwrap(), 0);
});

backend_test!(pooled async fn a_bulk_action_without_states_is_refused_a_count_counts_every_state(t) {
    t.db.migrate().await.unwrap();
    dead_jobs(&t.db, 2, "mail", "send", "x", NIGHT).await;
    t.db.enqueue_with(Echo { key: "waiting".into() }, EnqueueOptions::new().queue("mail")).await.unwrap();
    let everything = JobSelection { queue: Some("mail".into()), ..JobSelection::default() };
    assert_eq!(t.db.jobs().count(&everything).await.unwrap(), 3);
    for result in [
        t.db.jobs().retry_all(&everything).await.map(|_| ()),
        t.db.jobs().delete_all(&everything).await.map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::InvalidOption { option: "job selection", .. })), "{result:?}");
    }
    assert_eq!(t.db.jobs().count(&JobSelection::new([JobState::Failed])).await.unwrap(), 2);
});
