//! The history of finished jobs (docs/history.md): on PostgreSQL a finished job leaves the
//! jobs table for a partition of `oncommit.job_history`, which the leader drops whole once
//! its retention has passed; SQLite keeps finished jobs in place and prunes them row by row.
//! Either way listings see every job and retention holds.

use std::time::Duration;

use oncommit::admin::JobSelection;
use oncommit::{Backend, JobState, Retention};
use oncommit_testing::{backend_test, eventually};

use super::exec;
use super::tasks::{Echo, create_runs, start, wait_for, worker};

/// A number read with `sql` (PostgreSQL), unprepared: a pooler's server sessions hold
/// other clients' prepared statements.
async fn count(db: &oncommit::Db, sql: &str) -> i64 {
    use sqlx::Row as _;
    let pool = db.pg_pool().unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap().get(0)
}

backend_test!(pooled async fn a_partition_past_its_retention_is_dropped_whole_and_new_ones_made_ahead(t) {
    create_runs(&t.db).await;
    // 1,000 jobs completed three days ago: on PostgreSQL in a partition of their own.
    exec(
        &t.db,
        "CREATE TABLE oncommit.job_history_completed_old PARTITION OF oncommit.job_history_completed \
             FOR VALUES FROM (now() - interval '3 days') TO (now() - interval '2 days'); \
         INSERT INTO oncommit.job_history (id, queue, task, args, state, priority, attempt, max_attempts, run_at, \
                                           created_at, finished_at, cancel_requested, errors, has_dependants) \
         SELECT nextval('oncommit.jobs_id_seq'), 'default', 'old', '{}', 'completed', 0, 1, 25, now(), now(), \
                now() - interval '60 hours', false, '[]', false FROM generate_series(1, 1000)",
        "INSERT INTO oncommit_jobs (task, queue, state, finished_at) \
         WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 1000) \
         SELECT 'old', 'default', 'completed', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 216000000 \
         FROM n",
    )
    .await
    .unwrap();
    let retention = Retention { completed: Duration::from_secs(24 * 3600), discarded: Duration::from_secs(7 * 24 * 3600) };
    let ids = t.db.enqueue_many((0..20).map(|i| Echo { key: i.to_string() })).await.unwrap();
    let w = start(worker(&t.db).retention(retention).prune_interval(Duration::from_millis(100)));
    for id in &ids {
        wait_for(&t.db, *id, JobState::Completed).await;
    }
    let completed = || async { t.db.jobs().count(&JobSelection::new([JobState::Completed])).await.unwrap() };
    eventually("the jobs past their retention to go", || async { (completed().await == 20).then_some(()) }).await;
    if t.backend() == Backend::Postgres {
        assert_eq!(count(&t.db, "SELECT count(*) FROM oncommit.jobs").await, 0, "finished jobs left the jobs table");
        assert_eq!(count(&t.db, "SELECT count(*) FROM oncommit.job_history WHERE task = 'echo'").await, 20);
        // Dropped, not deleted row by row; partitions for the next two hours follow in the
        // same pass.
        let old = "SELECT count(*) FROM pg_class WHERE relname = 'job_history_completed_old'";
        assert_eq!(count(&t.db, old).await, 0);
        let ahead = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'oncommit.job_history_completed'::regclass";
        eventually("the default partition and at least two ahead", || async {
            (count(&t.db, ahead).await >= 3).then_some(())
        })
        .await;
    }
    // A finished job runs again when retried, wherever it was kept.
    assert!(t.db.jobs().retry(ids[0]).await.unwrap());
    eventually("the retried job to run again", || async {
        let job = t.db.jobs().get(ids[0]).await.unwrap().unwrap();
        (job.state == JobState::Completed && job.attempt == 2).then_some(())
    })
    .await;
    w.stop().await;
});
