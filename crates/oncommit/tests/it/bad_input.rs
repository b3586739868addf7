//! One bad row fails one job, never a queue; bad values are refused at the door with a
//! clear error, on both backends.

use std::time::Duration;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Backend, Db, EnqueueOptions, Error, JobState};
use oncommit_testing::backend_test;
use sqlx::AssertSqlSafe;

use super::exec;

use super::tasks::{Echo, create_runs, start, wait_for, worker};

fn echo(key: &str) -> Echo {
    Echo { key: key.to_owned() }
}

/// Writes rows that `oncommit` itself would refuse, as an old version, a hand-written
/// INSERT or another language could have: on PostgreSQL past the insert trigger (as a
/// replica does), on SQLite by updating rows after their insert.
async fn write_poison(db: &Db) -> Vec<oncommit::JobId> {
    match db.backend() {
        Backend::Postgres => {
            let mut conn = db.acquire().await.unwrap();
            let c = conn.conn().postgres().unwrap();
            sqlx::raw_sql("SET session_replication_role = replica").execute(&mut *c).await.unwrap();
            let ids: Vec<i64> = sqlx::query_scalar(
                "INSERT INTO oncommit.jobs (task, args, run_at, queue, priority, max_attempts) VALUES \
                 ('echo', '{\"key\": \"minus infinity\"}', '-infinity', 'default', 0, 25), \
                 ('echo', '{\"key\": \"year 290000\"}', '290000-01-01', 'default', 0, 25), \
                 ('echo', '{\"key\": \"bad history\"}', now(), 'default', 0, 25) RETURNING id",
            )
            .fetch_all(&mut *c)
            .await
            .unwrap();
            // The 290000 row is not due yet: make it available, as a hand-written state would.
            sqlx::query("UPDATE oncommit.jobs SET state = 'available', errors = '\"not a list\"' WHERE id = ANY($1)")
                .bind(&ids[1..])
                .execute(&mut *c)
                .await
                .unwrap();
            ids.into_iter().map(oncommit::JobId).collect()
        }
        Backend::Sqlite => {
            let mut ids = Vec::new();
            for key in ["huge run_at", "real run_at", "bad history"] {
                ids.push(db.enqueue(echo(key)).await.unwrap());
            }
            let sqlite = db.sqlite_pool().unwrap();
            for (id, set) in [
                (ids[0], "run_at = 9223372036854775807"),
                (ids[1], "run_at = 1500000000000.5"),
                (ids[2], "errors = 'this is not JSON ['"),
            ] {
                sqlx::query(AssertSqlSafe(format!("UPDATE oncommit_jobs SET {set} WHERE id = {id}")))
                    .execute(sqlite)
                    .await
                    .unwrap();
            }
            ids
        }
    }
}

// Not through the pooler: it writes its rows with a session setting
// (`session_replication_role`) that a transaction pooler would leave to the next client.
backend_test!(async fn a_row_that_cannot_be_decoded_fails_its_job_and_the_queue_goes_on(t) {
    create_runs(&t.db).await;
    let poison = write_poison(&t.db).await;
    let fine = t.db.enqueue(echo("fine")).await.unwrap();
    // Every listing still works, and shows what it can.
    let listed = t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    assert_eq!(listed.len(), 4);
    for id in &poison {
        assert!(t.db.jobs().get(*id).await.unwrap().is_some());
    }
    // One claim takes all four: the undecodable rows fail with the column named, the
    // others run.
    let w = start(worker(&t.db));
    for id in &poison[..2] {
        let job = wait_for(&t.db, *id, JobState::Failed).await;
        let error = &job.errors.last().unwrap().error;
        assert!(error.contains("column `run_at`"), "{error}");
        assert_eq!(job.attempt, 1);
    }
    wait_for(&t.db, fine, JobState::Completed).await;
    // A malformed error history is shown, not fatal: the job runs and completes.
    let job = wait_for(&t.db, poison[2], JobState::Completed).await;
    assert!(job.errors[0].error.starts_with("unreadable error history"), "{job:?}");
    // The worker is alive: the next job runs too.
    let after = t.db.enqueue(echo("after")).await.unwrap();
    wait_for(&t.db, after, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn bad_enqueue_options_are_refused_with_their_name(t) {
    t.db.migrate().await.unwrap();
    let refused = |opts: EnqueueOptions| async { t.db.enqueue_with(echo("x"), opts).await.unwrap_err() };
    let option = |err: Error| match err {
        Error::InvalidOption { option, .. } => option,
        other => panic!("expected InvalidOption, got {other:?}"),
    };
    assert_eq!(option(refused(EnqueueOptions::new().delay(Duration::MAX)).await), "delay");
    assert_eq!(option(refused(EnqueueOptions::new().max_attempts(0)).await), "max_attempts");
    assert_eq!(option(refused(EnqueueOptions::new().queue("a,b")).await), "queue name");
    assert_eq!(option(refused(EnqueueOptions::new().queue("a:4")).await), "queue name");
    assert_eq!(option(refused(EnqueueOptions::new().queue("")).await), "queue name");
    assert_eq!(option(refused(EnqueueOptions::new().queue("q".repeat(256))).await), "queue name");
    let far = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 12000, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(option(refused(EnqueueOptions::new().run_at(far)).await), "run_at");
    assert_eq!(option(refused(EnqueueOptions::new().fair_key("")).await), "fair_key");
    assert_eq!(option(refused(EnqueueOptions::new().fair_key("k".repeat(256))).await), "fair_key");
    assert_eq!(option(refused(EnqueueOptions::new().fair_key("a\nb")).await), "fair_key");
    assert_eq!(option(refused(EnqueueOptions::new().fair_key("k").fair_weight(0)).await), "fair_weight");
    assert_eq!(option(refused(EnqueueOptions::new().fair_key("k").fair_weight(1001)).await), "fair_weight");
    assert_eq!(option(refused(EnqueueOptions::new().fair_weight(2)).await), "fair_weight");
    assert!(t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().is_empty(), "nothing was enqueued");
});

backend_test!(pooled async fn sql_inserts_of_unservable_jobs_are_refused(t) {
    t.db.migrate().await.unwrap();
    let refused: Vec<(&str, &str)> = match t.backend() {
        Backend::Postgres => vec![
            ("SELECT oncommit.enqueue('echo', '{}', run_at => 'infinity')", "invalid run_at"),
            ("SELECT oncommit.enqueue('echo', '{}', run_at => '-infinity')", "invalid run_at"),
            ("SELECT oncommit.enqueue('echo', '{}', run_at => '290000-01-01')", "invalid run_at"),
            ("SELECT oncommit.enqueue('echo', '{}', queue => 'a,b')", "invalid queue name"),
            ("INSERT INTO oncommit.jobs (task, queue) VALUES ('echo', 'x:2')", "invalid queue name"),
            // Control characters: no worker could be told to serve such a queue.
            ("SELECT oncommit.enqueue('echo', '{}', queue => E'a\\nb')", "control characters"),
            ("SELECT oncommit.enqueue_many('echo', ARRAY['{}'::jsonb], queue => E'a\\tb')", "control characters"),
            ("INSERT INTO oncommit.jobs (task, queue) VALUES ('echo', E'a\\x7fb')", "control characters"),
            ("INSERT INTO oncommit.jobs (task, queue) VALUES ('echo', E'a\\u0085b')", "control characters"),
            ("SELECT oncommit.pause_queue(E'a\\nb')", "queues_name_without_control_characters"),
            (
                "INSERT INTO oncommit.tasks (name, queue, priority, max_attempts, declared_by) VALUES ('t', E'a\\rb', 0, 1, 'w')",
                "tasks_queue_without_control_characters",
            ),
        ],
        Backend::Sqlite => vec![
            ("INSERT INTO oncommit_jobs (task, run_at) VALUES ('echo', 9223372036854775807)", "invalid run_at"),
            ("INSERT INTO oncommit_jobs (task, run_at) VALUES ('echo', 1500000000000.5)", "invalid run_at"),
            ("INSERT INTO oncommit_jobs (task, queue) VALUES ('echo', 'a,b')", "invalid queue name"),
            ("INSERT INTO oncommit_jobs (task, queue) VALUES ('echo', '')", "invalid queue name"),
            ("INSERT INTO oncommit_jobs (task, queue) VALUES ('echo', 'a' || char(10) || 'b')", "control characters"),
            ("INSERT INTO oncommit_jobs (task, queue) VALUES ('echo', 'a' || char(0) || 'b')", "control characters"),
            ("INSERT INTO oncommit_jobs (task, queue) VALUES ('echo', 'a' || char(133) || 'b')", "control characters"),
            ("INSERT INTO oncommit_queues (name, paused) VALUES ('a' || char(9) || 'b', 1)", "control characters"),
            (
                "INSERT INTO oncommit_tasks (name, queue, priority, max_attempts, declared_by) VALUES ('t', 'a' || char(13), 0, 1, 'w')",
                "control characters",
            ),
        ],
    };
    for (sql, message) in refused {
        let err = exec(&t.db, sql, sql).await.unwrap_err();
        assert!(err.contains(message), "{sql}: {err}");
    }
    assert!(t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().is_empty());
});
