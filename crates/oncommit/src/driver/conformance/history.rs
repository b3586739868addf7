//! The contract's `History`: finished jobs leave the jobs table on PostgreSQL and are read,
//! retried and deleted wherever they are; SQLite keeps them in place. Either way every
//! statement above sees a finished job the same.

use std::time::Duration;

use chrono::TimeDelta;
use oncommit_testing::backend_test;

use super::{change, claim, exec, job, open};
use crate::db::{Backend, Db};
use crate::driver::contract::{Action, HistoryClass, JobWindow};
use crate::driver::selection::Filter;
use crate::job::{JobId, JobState};

/// Where job `id` is: `jobs` or `history` (SQLite: always `jobs`).
async fn place(db: &Db, id: JobId) -> &'static str {
    let sql = match db.backend() {
        Backend::Postgres => {
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM oncommit.job_history WHERE id = $1) \
                              THEN 'history' ELSE 'jobs' END"
        }
        Backend::Sqlite => "SELECT 'jobs' WHERE $1 IS NOT NULL",
    };
    let mut tx = db.begin().await.unwrap();
    let at: String =
        crate::with_conn!(tx.own_conn(), c => sqlx::query_scalar(sql).bind(id.0).fetch_one(c).await).unwrap();
    tx.commit().await.unwrap();
    if at == "history" { "history" } else { "jobs" }
}

backend_test!(pooled async fn finished_jobs_are_read_retried_and_deleted_wherever_they_are(t) {
    let db = open(t).await;
    let history = db.backend() == Backend::Postgres;
    let moved = if history { "history" } else { "jobs" };
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q"), &job("t", "q")])).ids;
    let claimed: Vec<JobId> = run!(db, job_claim(&claim("q", 3, "w1"))).iter().map(|r| r.job.id).collect();
    assert_eq!(claimed, ids);
    let done = run!(db, job_set_state_if_running_many(&[
        change(ids[0], 1, JobState::Completed),
        change(ids[1], 1, JobState::Failed),
        change(ids[2], 1, JobState::Retryable),
    ]));
    assert_eq!(done.len(), 3, "every change is recorded, moved or in place");
    assert_eq!(place(&db, ids[0]).await, moved);
    assert_eq!(place(&db, ids[1]).await, moved);
    assert_eq!(place(&db, ids[2]).await, "jobs", "a job that runs again stays");
    let finished = run!(db, job_get(ids[0].0)).unwrap().job;
    assert_eq!((finished.state, finished.lease_owner.as_deref()), (JobState::Completed, Some("w1")));
    assert!(finished.finished_at.is_some());
    // A fenced-off change finds nothing, in either table.
    assert!(run!(db, job_set_state_if_running_many(&[change(ids[0], 1, JobState::Completed)])).is_empty());

    // Listings, counts and bounds see both tables.
    let all = Filter { states: JobState::ALL.iter().map(|s| s.as_str()).collect(), ..Filter::default() };
    let window = JobWindow { lo: 0, hi: i64::MAX, limit: 10, newest_first: false };
    let listed: Vec<JobId> = run!(db, job_window(&all, &window)).iter().map(|r| r.job.id).collect();
    assert_eq!(listed, ids);
    assert_eq!(run!(db, job_id_bounds()), Some((ids[0].0, ids[2].0)));
    assert_eq!(run!(db, job_count_selected(&all)), 3);
    let mut finished_counts = run!(db, job_count_split(true));
    finished_counts.sort();
    assert_eq!(finished_counts, [("q".into(), "completed".into(), 1), ("q".into(), "failed".into(), 1)]);

    // Retried, a finished job comes back to the jobs table and runs again.
    assert!(run!(db, job_retry(ids[1].0)));
    assert_eq!(place(&db, ids[1]).await, "jobs");
    assert_eq!(run!(db, job_get(ids[1].0)).unwrap().job.state, JobState::Available);
    // In bulk too; and deleted where it is.
    let completed = Filter { states: vec!["completed"], ..Filter::default() };
    let back = run!(db, job_act_on(&completed, Action::Retry, &[ids[0].0]));
    assert_eq!(back, [("q".to_owned(), "available".to_owned())]);
    let again = run!(db, job_claim(&claim("q", 1, "w2")))[0].job.id;
    run!(db, job_set_state_if_running_many(&[change(again, 2, JobState::Cancelled)]));
    assert_eq!(place(&db, again).await, moved);
    assert!(run!(db, job_delete(again.0)));
    assert!(run!(db, job_get(again.0)).is_none());
    assert!(!run!(db, job_delete(again.0)));
});

backend_test!(pooled async fn jobs_finished_by_other_statements_are_moved_by_the_archive(t) {
    let db = open(t).await;
    // PostgreSQL: a partition for now of the discarded class, counted while empty (no
    // concurrent writer here), so the job moved into it is added to its count.
    if let Some(history) = run!(db, history_leaves(HistoryClass::Discarded)) {
        let from = history.now - TimeDelta::hours(1);
        run!(db, history_leaf_create(HistoryClass::Discarded, from, from + TimeDelta::hours(2)));
        let leaf = run!(db, history_leaves(HistoryClass::Discarded)).unwrap().leaves[0].name.clone();
        run!(db, history_leaf_count(&leaf));
    }
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q")])).ids;
    assert_eq!(run!(db, job_cancel(ids[0].0)).as_deref(), Some("cancelled"));
    let moved = run!(db, job_archive(10));
    match db.backend() {
        Backend::Postgres => {
            assert_eq!(moved, 1);
            assert_eq!(place(&db, ids[0]).await, "history");
        }
        Backend::Sqlite => assert_eq!(moved, 0),
    }
    assert_eq!(run!(db, job_archive(10)), 0, "nothing is left to move");
    if db.backend() == Backend::Postgres {
        assert_eq!(run!(db, history_count()), [("q".to_owned(), "cancelled".to_owned(), 1)]);
        exec(&db, "DELETE FROM oncommit.history_counts WHERE queue = ''").await;
        assert_eq!(run!(db, history_count()), [("q".to_owned(), "cancelled".to_owned(), 1)], "the same read");
    }
    assert_eq!(run!(db, job_get(ids[0].0)).unwrap().job.state, JobState::Cancelled);
    assert_eq!(run!(db, job_get(ids[1].0)).unwrap().job.state, JobState::Available);
});

backend_test!(pooled async fn partitions_are_created_dropped_and_pruned(t) {
    let db = open(t).await;
    let Some(before) = run!(db, history_leaves(HistoryClass::Completed)) else {
        assert_eq!(db.backend(), Backend::Sqlite, "only SQLite has no history");
        return;
    };
    assert!(before.leaves.is_empty());
    // A job finished where no partition is goes to the default partition; partitions are
    // made for times to come (the leader's rule).
    let id = run!(db, job_insert_plain(&[&job("t", "q")])).ids[0];
    run!(db, job_claim(&claim("q", 1, "w1")));
    run!(db, job_set_state_if_running_many(&[change(id, 1, JobState::Completed)]));
    let read = run!(db, history_leaves(HistoryClass::Completed)).unwrap();
    assert!(read.unplaced_until.is_some_and(|t| t <= read.now));
    let from = read.now + TimeDelta::minutes(1);
    run!(db, history_leaf_create(HistoryClass::Completed, from, from + TimeDelta::hours(1)));
    let read = run!(db, history_leaves(HistoryClass::Completed)).unwrap();
    assert_eq!(read.leaves.len(), 1);
    assert_eq!((read.leaves[0].from, read.leaves[0].to), (from, from + TimeDelta::hours(1)));
    assert!(read.leaves[0].name.starts_with("job_history_completed_"), "{:?}", read.leaves[0]);
    // The job that found no partition is pruned row by row once past its retention.
    assert_eq!(run!(db, history_prune(HistoryClass::Completed, Duration::from_secs(3600), false, 10)), 0);
    assert_eq!(run!(db, history_prune(HistoryClass::Completed, Duration::ZERO, false, 10)), 1);
    assert!(run!(db, job_get(id.0)).is_none());
    run!(db, history_leaf_drop(HistoryClass::Completed, &read.leaves[0].name));
    assert!(run!(db, history_leaves(HistoryClass::Completed)).unwrap().leaves.is_empty());
});

backend_test!(pooled async fn counts_of_the_history_add_up_counted_partitions_and_stay_exact(t) {
    let db = open(t).await;
    if db.backend() == Backend::Sqlite {
        assert!(run!(db, history_count()).is_empty(), "no history");
        return;
    }
    // A partition of two hours ago with 30 completed jobs of queue q and 2 of queue r, and
    // one job finished now (in the default partition).
    let now = run!(db, history_leaves(HistoryClass::Completed)).unwrap().now;
    let from = now - TimeDelta::hours(3);
    run!(db, history_leaf_create(HistoryClass::Completed, from, from + TimeDelta::hours(1)));
    let leaf = run!(db, history_leaves(HistoryClass::Completed)).unwrap().leaves[0].clone();
    assert!(!leaf.counted);
    exec(
        &db,
        "INSERT INTO oncommit.job_history (id, queue, task, args, state, priority, attempt, max_attempts, run_at, \
                                           created_at, finished_at, cancel_requested, errors, has_dependants) \
         SELECT nextval('oncommit.jobs_id_seq'), CASE WHEN g <= 30 THEN 'q' ELSE 'r' END, 't', '{}', 'completed', 0, 1, \
                25, now(), now(), now() - interval '150 minutes', false, '[]', false FROM generate_series(1, 32) AS g",
    )
    .await;
    let id = run!(db, job_insert_plain(&[&job("t", "q")])).ids[0];
    run!(db, job_claim(&claim("q", 1, "w1")));
    run!(db, job_set_state_if_running_many(&[change(id, 1, JobState::Completed)]));
    let counts = |q: i64, r: i64| vec![("q".to_owned(), "completed".to_owned(), q), ("r".to_owned(), "completed".to_owned(), r)];
    assert_eq!(run!(db, history_count()), counts(31, 2), "read where not counted");
    run!(db, history_leaf_count(&leaf.name));
    assert!(run!(db, history_leaves(HistoryClass::Completed)).unwrap().leaves[0].counted);
    assert_eq!(run!(db, history_count()), counts(31, 2), "added up where counted");
    assert_eq!(run!(db, job_count_by_queue_and_state()), counts(31, 2));
    run!(db, history_leaf_count(&leaf.name));
    assert_eq!(run!(db, history_count()), counts(31, 2), "counted once");

    // Retried or deleted out of a counted partition, a job leaves its count.
    let old: Vec<i64> = {
        let mut tx = db.begin().await.unwrap();
        let sql = format!("SELECT id FROM oncommit.\"{}\" WHERE queue = 'r' ORDER BY id", leaf.name);
        let ids = crate::with_conn!(tx.own_conn(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(c).await)
            .unwrap();
        tx.commit().await.unwrap();
        ids
    };
    assert!(run!(db, job_retry(old[0])));
    assert!(run!(db, job_delete(old[1])));
    let counts_now = run!(db, history_count());
    assert_eq!(counts_now, [("q".to_owned(), "completed".to_owned(), 31)]);
    // Pruned row by row, likewise; dropped, its counts go with it.
    assert_eq!(run!(db, history_prune(HistoryClass::Completed, Duration::from_secs(7200), true, 10)), 10);
    assert_eq!(run!(db, history_count()), [("q".to_owned(), "completed".to_owned(), 21)]);
    run!(db, history_leaf_drop(HistoryClass::Completed, &leaf.name));
    assert_eq!(run!(db, history_count()), [("q".to_owned(), "completed".to_owned(), 1)]);
});
