//! Wake-ups across processes (PostgreSQL NOTIFY): oncommit sends them after the enqueuing
//! transaction commits, from its notifier's own connection, naming the queue; never for a
//! rollback. SQL enqueues NOTIFY only while a worker sleeps on the queue, and may opt out.

use std::time::Duration;

use oncommit::{Conn, EnqueueOptions};
use oncommit_testing::TestDb;
use sqlx::postgres::PgListener;

use super::tasks::Echo;

async fn listener(t: &TestDb) -> PgListener {
    let mut listener = PgListener::connect(&t.url).await.unwrap();
    listener.listen("oncommit_jobs").await.unwrap();
    listener
}

/// The next notification's payload.
async fn next(listener: &mut PgListener) -> String {
    let note = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await.expect("a notification");
    note.unwrap().payload().to_owned()
}

/// Sends a notification of its own: notifications arrive in commit order, so if the next
/// one is this, nothing was sent before it.
async fn sentinel(t: &TestDb, name: &str) -> String {
    super::exec(&t.db, &format!("SELECT pg_notify('oncommit_jobs', '{name}')"), "").await.unwrap();
    name.to_owned()
}

/// The notifications up to and including `last`.
async fn until(listener: &mut PgListener, last: &str) -> Vec<String> {
    let mut got = Vec::new();
    while got.last().is_none_or(|q| q != last) {
        got.push(next(listener).await);
    }
    got
}

#[tokio::test]
async fn enqueues_notify_their_queue_after_the_commit_and_never_for_a_rollback() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let mut listener = listener(&t).await;
    let echo = || Echo { key: "n".into() };
    // Wake-ups go out in order from one notifier (several at once in name order, hence
    // the names of the marks): once a later one arrived, an earlier one that did not come
    // was never sent.
    let mark = |queue: &'static str| {
        let db = t.db.clone();
        async move { db.enqueue_with(Echo { key: "mark".into() }, EnqueueOptions::new().queue(queue)).await.unwrap() }
    };

    let mut tx = t.db.begin().await.unwrap();
    tx.enqueue_with(echo(), EnqueueOptions::new().queue("rolled")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = t.db.begin().await.unwrap();
    tx.enqueue_with(echo(), EnqueueOptions::new().queue("first")).await.unwrap();
    tx.enqueue_with(echo(), EnqueueOptions::new().queue("first")).await.unwrap();
    tx.enqueue_raw("echo", &serde_json::json!({"key": "n"}), EnqueueOptions::new().queue("second")).await.unwrap();
    tx.commit().await.unwrap();
    mark("zz-mark-1").await;
    let got = until(&mut listener, "zz-mark-1").await;
    assert!(got.contains(&"first".to_owned()) && got.contains(&"second".to_owned()), "{got:?}");
    assert!(!got.contains(&"rolled".to_owned()), "a rollback wakes nobody: {got:?}");
    assert_eq!(got.iter().filter(|q| *q == "first").count(), 1, "one wake-up per queue: {got:?}");

    // A job scheduled for later wakes nobody either.
    t.db.enqueue_with(echo(), EnqueueOptions::new().queue("later").delay(Duration::from_secs(3600))).await.unwrap();
    mark("zz-mark-2").await;
    assert_eq!(until(&mut listener, "zz-mark-2").await, ["zz-mark-2"]);
    t.finish().await;
}

#[tokio::test]
async fn sql_enqueue_notifies_at_its_commit_while_a_worker_sleeps_unless_told_not_to() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let mut listener = listener(&t).await;
    super::exec(&t.db, "INSERT INTO oncommit.sleepers (queue, worker) VALUES ('sql', 'w'), ('quiet', 'w')", "")
        .await
        .unwrap();
    for (i, (sql, expected)) in [
        ("SELECT oncommit.enqueue('echo', queue => 'sql')", Some("sql")),
        ("SELECT oncommit.enqueue_many('echo', ARRAY['{}', '{}']::jsonb[], queue => 'sql')", Some("sql")),
        // Nobody sleeps on `busy`: its workers claim again by themselves.
        ("SELECT oncommit.enqueue('echo', queue => 'busy')", None),
        ("SELECT oncommit.enqueue_many('echo', ARRAY['{}']::jsonb[], queue => 'busy')", None),
        ("SELECT oncommit.enqueue('echo', queue => 'quiet', notify => false)", None),
        ("SELECT oncommit.enqueue_many('echo', ARRAY['{}']::jsonb[], queue => 'quiet', notify => false)", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut conn = t.db.acquire().await.unwrap();
        let Conn::Postgres(c) = conn.conn() else { unreachable!("PostgreSQL test") };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(c).await.unwrap();
        drop(conn);
        let end = sentinel(&t, &format!("after statement {i}")).await;
        if let Some(queue) = expected {
            assert_eq!(next(&mut listener).await, queue, "{sql}");
        }
        assert_eq!(next(&mut listener).await, end, "{sql}: nothing else");
    }
    t.finish().await;
}

#[tokio::test]
async fn enqueue_in_a_sqlx_transaction_notifies_at_its_commit_only_while_a_worker_sleeps() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    let mut listener = listener(&t).await;
    let pool = t.db.pg_pool().unwrap();
    super::exec(&t.db, "INSERT INTO oncommit.sleepers (queue, worker) VALUES ('rolled', 'w'), ('kept', 'w')", "")
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    t.db.enqueue_in_with(&mut *tx, Echo { key: "r".into() }, EnqueueOptions::new().queue("rolled")).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    t.db.enqueue_in_with(&mut *tx, Echo { key: "c".into() }, EnqueueOptions::new().queue("kept")).await.unwrap();
    let end = sentinel(&t, "before the commit").await;
    assert_eq!(next(&mut listener).await, end, "nothing is delivered before the commit");
    tx.commit().await.unwrap();
    let end = sentinel(&t, "after the commit").await;
    assert_eq!(until(&mut listener, &end).await, ["kept", "after the commit"]);
    // Nobody sleeps on `busy`: no NOTIFY.
    let mut tx = pool.begin().await.unwrap();
    t.db.enqueue_in_with(&mut *tx, Echo { key: "b".into() }, EnqueueOptions::new().queue("busy")).await.unwrap();
    tx.commit().await.unwrap();
    let end = sentinel(&t, "after the busy commit").await;
    assert_eq!(next(&mut listener).await, end);
    t.finish().await;
}

/// A worker that finds its queue empty records its sleep under the queue's lock, which waits
/// for an enqueuer that checked for sleepers before (and so will not NOTIFY); then it claims
/// once more and finds that job, with no poll (an hour) and no NOTIFY.
#[tokio::test]
async fn no_wake_up_is_lost_between_an_sql_enqueue_and_a_worker_falling_asleep() {
    let t = TestDb::postgres().await;
    t.db.migrate().await.unwrap();
    super::tasks::create_runs(&t.db).await;
    // An enqueuer in its transaction, past its check (nobody sleeps yet), not committed.
    let mut enqueuer = t.db.acquire().await.unwrap();
    let Conn::Postgres(c) = enqueuer.conn() else { unreachable!("PostgreSQL test") };
    sqlx::raw_sql("BEGIN").execute(&mut *c).await.unwrap();
    let id: i64 = sqlx::query_scalar("SELECT oncommit.enqueue('flaky', '{\"failures\": 0}', queue => 'late')")
        .fetch_one(&mut *c)
        .await
        .unwrap();
    let enqueuer_pid = oncommit_testing::backend_pid(c).await;
    let worker = super::tasks::worker(&t.db).queue("late", 2).poll_interval(Duration::from_secs(3600));
    let running = super::tasks::start(worker);
    // The worker found nothing, and waits for the enqueuer's commit to record its sleep.
    oncommit_testing::eventually("the worker waiting on the enqueuer's lock", || async {
        let blocked: Vec<i32> =
            sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))")
                .bind(enqueuer_pid)
                .fetch_all(t.db.pg_pool().unwrap())
                .await
                .unwrap();
        (!blocked.is_empty()).then_some(())
    })
    .await;
    sqlx::raw_sql("COMMIT").execute(&mut *c).await.unwrap();
    drop(enqueuer);
    oncommit_testing::wait_for_job(&t.db, oncommit::JobId(id), "run without a poll", |job| {
        job.state == oncommit::JobState::Completed
    })
    .await;
    // Asleep now: the next SQL enqueue NOTIFYs, and the worker runs it at once.
    let sleepers: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.sleepers WHERE queue = 'late'")
        .fetch_one(t.db.pg_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(sleepers, 1);
    let id: i64 = sqlx::query_scalar("SELECT oncommit.enqueue('flaky', '{\"failures\": 0}', queue => 'late')")
        .fetch_one(t.db.pg_pool().unwrap())
        .await
        .unwrap();
    oncommit_testing::wait_for_job(&t.db, oncommit::JobId(id), "woken by the NOTIFY", |job| {
        job.state == oncommit::JobState::Completed
    })
    .await;
    running.stop().await;
    let sleepers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oncommit.sleepers").fetch_one(t.db.pg_pool().unwrap()).await.unwrap();
    assert_eq!(sleepers, 0, "a stopped worker sleeps nowhere");
    t.finish().await;
}
