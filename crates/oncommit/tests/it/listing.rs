//! The jobs view's listing: every filter, cursor pages that stay correct while jobs move,
//! the time-bounded walk over id windows; attempts with their worker; a job's dependencies;
//! per-queue activity.

use std::collections::BTreeSet;
use std::time::Duration;

use oncommit::admin::{JobOrder, JobSelection, PageRequest};
use oncommit::{EnqueueOptions, JobId, JobState};
use oncommit_testing::backend_test;
use serde_json::json;

use super::exec;
use super::tasks::{Flaky, create_runs, start, wait_for, worker};

async fn all_pages(db: &oncommit::Db, selection: &JobSelection, order: JobOrder, limit: i64) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = db.jobs().list(selection, &PageRequest { order, cursor, limit }).await.unwrap();
        ids.extend(page.jobs.iter().map(|j| j.id.0));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

backend_test!(pooled async fn every_filter_of_the_listing_selects_what_it_says(t) {
    let db = &t.db;
    db.migrate().await.unwrap();
    let e = |task: &str, args: serde_json::Value, opts: EnqueueOptions| {
        let task = task.to_owned();
        async move { db.enqueue_raw(&task, &args, opts).await.unwrap() }
    };
    let a = e("send", json!({ "to": "ada@example.com" }), EnqueueOptions::new().queue("mail").priority(1)).await;
    let b = e("send", json!({ "to": "bob@example.com" }), EnqueueOptions::new().queue("mail")).await;
    let c = e("charge", json!({ "amount": 12 }), EnqueueOptions::new().queue("billing").priority(1)).await;
    let d = e("charge", json!({ "amount": 7 }), EnqueueOptions::new().queue("billing")).await;
    // `d` failed last night with an error; `c` completed.
    exec(
        db,
        &format!(
            "UPDATE oncommit.jobs SET state = 'failed', finished_at = '2026-11-23T03:00:00Z', \
             errors = '[{{\"attempt\": 1, \"at\": 0, \"error\": \"card DECLINED\"}}]' WHERE id = {}; \
             UPDATE oncommit.jobs SET state = 'completed', finished_at = now() WHERE id = {}",
            d.0, c.0
        ),
        &format!(
            "UPDATE oncommit_jobs SET state = 'failed', finished_at = 1795402800000, \
             errors = '[{{\"attempt\": 1, \"at\": 0, \"error\": \"card DECLINED\"}}]' WHERE id = {}; \
             UPDATE oncommit_jobs SET state = 'completed', finished_at = 1795500000000 WHERE id = {}",
            d.0, c.0
        ),
    )
    .await
    .unwrap();
    let ids = |s: JobSelection| async move { all_pages(db, &s, JobOrder::Newest, 50).await };
    let any = JobSelection::default();
    assert_eq!(ids(any.clone()).await, vec![d.0, c.0, b.0, a.0], "no state: every job, newest first");
    assert_eq!(ids(JobSelection::new([JobState::Available])).await, vec![b.0, a.0]);
    assert_eq!(ids(any.clone().queue("billing")).await, vec![d.0, c.0]);
    assert_eq!(ids(any.clone().task("send")).await, vec![b.0, a.0]);
    assert_eq!(ids(any.clone().priority(1)).await, vec![c.0, a.0]);
    assert_eq!(ids(any.clone().search("BOB@")).await, vec![b.0], "search in the args, ignoring case");
    assert_eq!(ids(any.clone().search("declined")).await, vec![d.0], "search in the errors");
    assert_eq!(ids(any.clone().search(c.0.to_string())).await.first(), Some(&c.0), "search by id");
    assert_eq!(ids(any.clone().error_contains("card")).await, vec![d.0]);
    let night = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").unwrap().to_utc();
    let day = chrono::Duration::days(1);
    assert_eq!(ids(any.clone().since(night).until(night + day)).await, vec![d.0], "finished in the range");
    assert_eq!(ids(any.clone().ids([a, d, JobId(999_999)])).await, vec![d.0, a.0]);
    assert_eq!(all_pages(db, &any, JobOrder::Oldest, 50).await, vec![a.0, b.0, c.0, d.0]);
    // Bulk actions take the same filter.
    assert_eq!(db.jobs().count(&any.clone().ids([a, b]).search("ada")).await.unwrap(), 1);
    assert_eq!(db.jobs().count(&any).await.unwrap(), 4, "a count without states counts every state");
    assert!(db.jobs().delete_all(&any).await.is_err(), "a bulk action names states or ids");
    // Bad pages are refused, not clamped silently.
    let err = db.jobs().list(&any, &PageRequest { limit: 0, ..PageRequest::default() }).await.unwrap_err();
    assert!(err.to_string().contains("page limit"), "{err}");
});

backend_test!(pooled async fn cursor_pages_neither_repeat_nor_skip_while_jobs_move(t) {
    let db = &t.db;
    db.migrate().await.unwrap();
    let mut enqueued = Vec::new();
    for i in 0..25 {
        enqueued.push(db.enqueue_raw("move", &json!({ "i": i }), EnqueueOptions::new()).await.unwrap().0);
    }
    let any = JobSelection::default();
    let page = |cursor| PageRequest { order: JobOrder::Newest, cursor, limit: 10 };
    let first = db.jobs().list(&any, &page(None)).await.unwrap();
    let seen: Vec<i64> = first.jobs.iter().map(|j| j.id.0).collect();
    assert_eq!(seen, enqueued[15..].iter().rev().copied().collect::<Vec<_>>());
    // Meanwhile: three of the jobs not yet shown complete, two are deleted, five are added.
    let (done, gone) = (&enqueued[2..5], &enqueued[8..10]);
    let list = |ids: &[i64]| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = |table: &str, now: &str| {
        format!(
            "UPDATE {table} SET state = 'completed', finished_at = {now} WHERE id IN ({}); DELETE FROM {table} WHERE id IN ({})",
            list(done),
            list(gone)
        )
    };
    exec(db, &sql("oncommit.jobs", "now()"), &sql("oncommit_jobs", "1795500000000")).await.unwrap();
    for i in 0..5 {
        db.enqueue_raw("move", &json!({ "late": i }), EnqueueOptions::new()).await.unwrap();
    }
    let mut rest = Vec::new();
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let next = db.jobs().list(&any, &page(Some(c))).await.unwrap();
        rest.extend(next.jobs.iter().map(|j| j.id.0));
        cursor = next.next_cursor;
    }
    let expected: Vec<i64> = enqueued[..15].iter().rev().filter(|id| !gone.contains(id)).copied().collect();
    assert_eq!(rest, expected, "every job below the cursor that still exists, once, in order");
    // The same walk of the available ones only: the completed ones drop out, nothing else.
    let available = all_pages(db, &JobSelection::new([JobState::Available]), JobOrder::Oldest, 4).await;
    let kept: BTreeSet<i64> = available.iter().copied().collect();
    assert_eq!(kept.len(), available.len(), "no repeats");
    assert_eq!(available.len(), 25 - 3 - 2 + 5);
    assert!(done.iter().all(|id| !kept.contains(id)));
});

backend_test!(pooled async fn a_rare_match_is_found_across_windows_of_a_large_table(t) {
    let db = &t.db;
    db.migrate().await.unwrap();
    let needle = db.enqueue_raw("find", &json!({ "note": "the needle" }), EnqueueOptions::new()).await.unwrap();
    // 60,000 newer jobs, none matching: the walk reads windows of 10,000, 40,000, …
    exec(
        db,
        "INSERT INTO oncommit.jobs (task, args, state, finished_at) \
         SELECT 'hay', jsonb_build_object('n', i), 'completed', now() FROM generate_series(1, 60000) AS i",
        "INSERT INTO oncommit_jobs (task, args, state, finished_at) \
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 60000) \
         SELECT 'hay', json_object('n', i), 'completed', 1795500000000 FROM s",
    )
    .await
    .unwrap();
    let found = all_pages(db, &JobSelection::default().search("NEEDLE"), JobOrder::Newest, 20).await;
    assert_eq!(found, vec![needle.0]);
    let oldest = db.jobs().list(&JobSelection::default(), &PageRequest { order: JobOrder::Oldest, cursor: None, limit: 3 }).await.unwrap();
    assert_eq!(oldest.jobs[0].id, needle);
    assert_eq!(oldest.next_cursor, Some(oldest.jobs[2].id.0));
});

backend_test!(pooled async fn attempts_keep_their_worker_and_start_and_jobs_their_dependencies(t) {
    let db = &t.db;
    db.migrate().await.unwrap();
    create_runs(db).await;
    let id = db.enqueue(Flaky { failures: 1 }).await.unwrap();
    let w = start(worker(db));
    let job = wait_for(db, id, JobState::Completed).await;
    w.stop().await;
    assert_eq!(job.errors.len(), 1);
    let failed = &job.errors[0];
    let started = failed.started.expect("the failed attempt's start");
    assert!(started <= failed.at, "{failed:?}");
    assert!(failed.worker.is_some() && failed.worker == job.lease_owner, "the worker that ran both attempts: {job:?}");

    let parent = db.enqueue_raw("a", &json!({}), EnqueueOptions::new().queue("parked")).await.unwrap();
    let child = db.enqueue_raw("b", &json!({}), EnqueueOptions::new().queue("parked").depends_on([parent])).await.unwrap();
    let of_child = db.jobs().dependencies(child).await.unwrap();
    assert_eq!(of_child.parents.iter().map(|j| j.id).collect::<Vec<_>>(), vec![parent]);
    assert!(of_child.dependants.is_empty());
    let of_parent = db.jobs().dependencies(parent).await.unwrap();
    assert_eq!(of_parent.dependants.iter().map(|j| (j.id, j.state)).collect::<Vec<_>>(), vec![(child, JobState::Pending)]);

    // The worker counted what it ran, written when it stopped: one retry, one completion,
    // two waits measured.
    let activity = db.queues().activity(Duration::from_secs(3600)).await.unwrap();
    let default = activity.iter().find(|a| a.queue == "default").expect("activity of queue default");
    assert_eq!((default.completed, default.retried, default.failed, default.started), (1, 1, 0, 2), "{default:?}");
    assert!(default.wait_p50_ms.is_some() && default.wait_p95_ms >= default.wait_p50_ms, "{default:?}");
    assert_eq!(default.completed_per_minute.iter().map(|(_, n)| n).sum::<i64>(), 1);
});

backend_test!(pooled async fn a_drain_counts_its_activity_and_workers_add_to_each_other(t) {
    let db = &t.db;
    db.migrate().await.unwrap();
    create_runs(db).await;
    for _ in 0..3 {
        db.enqueue(Flaky { failures: 0 }).await.unwrap();
    }
    worker(db).drain(10).await.unwrap();
    db.enqueue(Flaky { failures: 0 }).await.unwrap();
    worker(db).drain(10).await.unwrap();
    let activity = db.queues().activity(Duration::from_secs(60)).await.unwrap();
    assert_eq!(activity.len(), 1, "{activity:?}");
    assert_eq!((activity[0].completed, activity[0].started), (4, 4), "two drains' counts add up: {activity:?}");
});
