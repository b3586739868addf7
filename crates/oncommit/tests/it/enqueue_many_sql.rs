//! `oncommit.enqueue_many`: many jobs from plain SQL in one set-based call, with the
//! options, rules and guarantees of `oncommit.enqueue` (PostgreSQL: SQLite has no functions;
//! its documented form is a plain `INSERT`).

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Conn, JobId, JobState};
use oncommit_testing::TestDb;
use sqlx::postgres::PgListener;

/// Runs `sql` (which returns the ids) in its own transaction and commits.
async fn ids(t: &TestDb, sql: &str) -> Result<Vec<i64>, String> {
    let mut tx = t.db.begin().await.unwrap();
    let Conn::Postgres(c) = tx.conn() else { unreachable!("PostgreSQL test") };
    let ids = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(c).await.map_err(|e| e.to_string())?;
    tx.commit().await.unwrap();
    Ok(ids)
}

async fn job(t: &TestDb, id: i64) -> oncommit::Job {
    t.db.jobs().get(JobId(id)).await.unwrap().unwrap()
}

#[tokio::test]
async fn enqueue_many_inserts_in_order_with_the_options_of_enqueue() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    // What a worker registering `routed` would have recorded.
    super::exec(
        &t.db,
        "INSERT INTO oncommit.tasks (name, queue, priority, max_attempts, declared_by) VALUES ('routed', 'routed', 4, 2, 'w')",
        "",
    )
    .await
    .unwrap();

    let got = ids(&t, r#"SELECT oncommit.enqueue_many('routed', ARRAY['{"n": 1}', '{"n": 2}', '{"n": 3}']::jsonb[])"#)
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    for (n, id) in got.iter().enumerate() {
        let job = job(&t, *id).await;
        assert_eq!(job.args["n"], n + 1, "ids in the order of args: {job:?}");
        assert_eq!(
            (job.queue.as_str(), job.priority, job.max_attempts, job.state),
            ("routed", 4, 2, JobState::Available)
        );
    }
    // Explicit options win; a future run_at schedules.
    let got = ids(
        &t,
        "SELECT oncommit.enqueue_many('routed', ARRAY['{}']::jsonb[], queue => 'other', max_attempts => 9, \
         run_at => now() + interval '1 hour')",
    )
    .await
    .unwrap();
    let j = job(&t, got[0]).await;
    assert_eq!((j.queue.as_str(), j.priority, j.max_attempts, j.state), ("other", 4, 9, JobState::Scheduled));

    // Unique keys: a key held by an unfinished job returns that job, within the call too.
    let got = ids(&t, "SELECT oncommit.enqueue_many('routed', ARRAY['{}', '{}', '{}']::jsonb[], unique_keys => ARRAY['k', NULL, 'k'])")
        .await
        .unwrap();
    assert_eq!(got[0], got[2]);
    assert_ne!(got[0], got[1]);
    let again = ids(&t, "SELECT oncommit.enqueue_many('routed', ARRAY['{}']::jsonb[], unique_keys => ARRAY['k'])")
        .await
        .unwrap();
    assert_eq!(again, [got[0]]);

    // Nothing to do, nothing done.
    assert_eq!(ids(&t, "SELECT oncommit.enqueue_many('routed', '{}'::jsonb[])").await.unwrap(), Vec::<i64>::new());
    t.finish().await;
}

#[tokio::test]
async fn enqueue_many_refuses_bad_values_and_joins_the_callers_transaction() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let before =
        t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().len();
    for (sql, says) in [
        ("SELECT oncommit.enqueue_many('t', ARRAY['{}']::jsonb[], max_attempts => 0)", "invalid max_attempts"),
        ("SELECT oncommit.enqueue_many('t', ARRAY['{}']::jsonb[], queue => 'a,b')", "invalid queue name"),
        ("SELECT oncommit.enqueue_many('t', ARRAY['{}']::jsonb[], run_at => 'infinity')", "invalid run_at"),
        (
            "SELECT oncommit.enqueue_many('t', ARRAY['{}', '{}']::jsonb[], unique_keys => ARRAY['k'])",
            "1 unique keys for 2 jobs",
        ),
    ] {
        let err = ids(&t, sql).await.unwrap_err();
        assert!(err.contains(says), "{sql}: {err}");
    }

    // Rolled back: no job. Committed: the jobs, and one NOTIFY naming the queue at the commit
    // (a worker sleeps on it).
    super::exec(&t.db, "INSERT INTO oncommit.sleepers (queue, worker) VALUES ('bulk', 'w')", "").await.unwrap();
    let mut listener = PgListener::connect(&t.url).await.unwrap();
    listener.listen("oncommit_jobs").await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    let Conn::Postgres(c) = tx.conn() else { unreachable!("PostgreSQL test") };
    sqlx::raw_sql("SELECT oncommit.enqueue_many('t', ARRAY['{}', '{}']::jsonb[], queue => 'bulk')")
        .execute(c)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().len(),
        before
    );
    let got = ids(&t, "SELECT oncommit.enqueue_many('t', ARRAY['{}', '{}']::jsonb[], queue => 'bulk')").await.unwrap();
    assert_eq!(got.len(), 2);
    let note = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv()).await.unwrap().unwrap();
    assert_eq!(note.payload(), "bulk", "the rolled-back call sent nothing; the committed one named its queue");
    t.finish().await;
}

#[tokio::test]
async fn sql_enqueues_carry_fair_keys_and_make_their_queue_fair() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let many = ids(
        &t,
        r#"SELECT oncommit.enqueue_many('report', ARRAY['{}', '{}']::jsonb[], queue => 'exports',
                                        unique_keys => ARRAY[NULL, 'once'], fair_key => 'tenant:7', fair_weight => 3)"#,
    )
    .await
    .unwrap();
    let one =
        ids(&t, "SELECT ARRAY[oncommit.enqueue('report', queue => 'exports', fair_key => 'tenant:8')]").await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    let Conn::Postgres(c) = tx.conn() else { unreachable!("PostgreSQL test") };
    let keys: Vec<(Option<String>, Option<i16>)> =
        sqlx::query_as("SELECT fair_key, fair_weight FROM oncommit.jobs WHERE id = ANY($1) ORDER BY id")
            .bind([many, one].concat())
            .fetch_all(&mut *c)
            .await
            .unwrap();
    assert_eq!(
        keys,
        [(Some("tenant:7".into()), Some(3)), (Some("tenant:7".into()), Some(3)), (Some("tenant:8".into()), None)]
    );
    let fair: bool =
        sqlx::query_scalar("SELECT fair FROM oncommit.queues WHERE name = 'exports'").fetch_one(&mut *c).await.unwrap();
    assert!(fair, "a keyed job makes its queue fair");
    let empty = sqlx::query("SELECT oncommit.enqueue('report', fair_key => '')").execute(&mut *c).await.unwrap_err();
    assert!(empty.to_string().contains("jobs_fair_check"), "{empty}");
}
