//! Enqueueing: inside the caller's transaction, in autocommit, many at once, with options,
//! unique keys, and from plain SQL.

use std::time::Duration;

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Backend, EnqueueOptions, Error, JobState, TransactionRetry};
use oncommit_testing::backend_test;

use super::tasks::{Echo, create_runs};

fn echo(key: &str) -> Echo {
    Echo { key: key.to_owned() }
}

async fn count(db: &oncommit::Db) -> usize {
    db.jobs().count(&JobSelection::default()).await.unwrap() as usize
}

backend_test!(pooled async fn a_job_enqueued_in_a_transaction_commits_or_vanishes_with_it(t) {
    create_runs(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    tx.enqueue(echo("rolled back")).await.unwrap();
    // Invisible to other connections until the commit.
    assert_eq!(count(&t.db).await, 0);
    tx.rollback().await.unwrap();
    assert_eq!(count(&t.db).await, 0);

    let id = t.db.atomic(async |tx| tx.enqueue(echo("committed")).await).await.unwrap();
    let job = t.db.jobs().get(id).await.unwrap().unwrap();
    assert_eq!((job.task.as_str(), job.state, job.attempt), ("echo", JobState::Available, 0));
    assert_eq!(job.args, serde_json::json!({"key": "committed"}));

    // A retried closure's first attempt enqueued too: that job vanished with the attempt.
    let committed = t
        .db
        .transaction()
        .retry(TransactionRetry::default().base_delay(Duration::from_millis(1)))
        .run_reported(async |tx| {
            tx.enqueue(echo("retried")).await?;
            if tx.attempt() == 1 {
                return Err(Error::SerializationFailure { kind: oncommit::SerializationKind::WriteConflict, message: "simulated".into() });
            }
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(committed.attempts, 2);
    assert_eq!(count(&t.db).await, 2);
});

backend_test!(pooled async fn enqueueing_outside_the_open_transaction_is_refused(t) {
    create_runs(&t.db).await;
    let db = t.db.clone();
    let err = t
        .db
        .atomic(async move |_tx| {
            // The seed's race: this job would commit before the data it is about.
            db.enqueue(echo("racy")).await?;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EnqueueOutsideTransaction), "{err:?}");
    assert!(err.to_string().contains("use tx.enqueue"), "{err}");
    assert_eq!(count(&t.db).await, 0);
    // Outside any transaction, autocommit enqueue is fine.
    t.db.enqueue(echo("fine")).await.unwrap();
    assert_eq!(count(&t.db).await, 1);
});

backend_test!(pooled async fn enqueueing_beside_an_open_guard_of_the_same_task_is_refused_at_once(t) {
    create_runs(&t.db).await;
    let mut tx = t.db.begin().await.unwrap();
    // Before, PostgreSQL took this job in autocommit (the race) and SQLite waited 5 s for
    // its own write lock, then failed with Busy.
    let err = t.db.enqueue(echo("racy")).await.unwrap_err();
    assert!(matches!(err, Error::EnqueueOutsideTransaction), "{err:?}");
    tx.enqueue(echo("in the transaction")).await.unwrap();
    tx.commit().await.unwrap();
    // The guard is gone: autocommit enqueue is fine again.
    t.db.enqueue(echo("after")).await.unwrap();
    assert_eq!(count(&t.db).await, 2);
});

// Not through the pooler: the application's own sqlx transactions prepare named
// statements, which are theirs to make pooler-safe (docs/deployment.md).
backend_test!(async fn jobs_enqueued_on_your_own_sqlx_transaction_commit_or_vanish_with_it(t) {
    create_runs(&t.db).await;
    // A Db over the application's own pool, as a service that already has one would make it.
    let db = match t.db.backend() {
        oncommit::Backend::Postgres => oncommit::Db::from_pool(t.db.pg_pool().unwrap().clone()),
        oncommit::Backend::Sqlite => oncommit::Db::from_pool(t.db.sqlite_pool().unwrap().clone()),
    };
    let key = || EnqueueOptions::new().unique_key("once");
    macro_rules! scenario {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            let first = db.enqueue_in_with(&mut *tx, echo("kept"), key()).await.unwrap();
            let again = db.enqueue_in_with(&mut *tx, echo("kept again"), key()).await.unwrap();
            assert_eq!(first, again, "the unique key holds inside the caller's transaction");
            tx.commit().await.unwrap();
            let mut tx = $pool.begin().await.unwrap();
            db.enqueue_in(&mut *tx, echo("rolled back")).await.unwrap();
            tx.rollback().await.unwrap();
            // A bare connection, in autocommit.
            let mut conn = $pool.acquire().await.unwrap();
            db.enqueue_in(&mut *conn, echo("autocommit")).await.unwrap();
            first
        }};
    }
    let first = match t.db.backend() {
        oncommit::Backend::Postgres => scenario!(t.db.pg_pool().unwrap()),
        oncommit::Backend::Sqlite => scenario!(t.db.sqlite_pool().unwrap()),
    };
    assert_eq!(count(&t.db).await, 2);
    let job = db.jobs().get(first).await.unwrap().unwrap();
    assert_eq!((job.task.as_str(), job.queue.as_str()), ("echo", "default"));
    assert!(db.url().ends_with(match t.db.backend() {
        oncommit::Backend::Postgres => t.url.rsplit('/').next().unwrap(),
        oncommit::Backend::Sqlite => ".db",
    }), "{}", db.url());
});

backend_test!(pooled async fn many_jobs_go_in_one_statement_in_order(t) {
    create_runs(&t.db).await;
    let ids = t.db.enqueue_many((0..500).map(|i| echo(&i.to_string()))).await.unwrap();
    assert_eq!(ids.len(), 500);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let first = t.db.jobs().get(ids[0]).await.unwrap().unwrap();
    let last = t.db.jobs().get(ids[499]).await.unwrap().unwrap();
    assert_eq!((first.args["key"].as_str(), last.args["key"].as_str()), (Some("0"), Some("499")));
    let in_tx = t.db.atomic(async |tx| tx.enqueue_many((0..3).map(|i| echo(&format!("tx {i}")))).await).await.unwrap();
    assert_eq!(in_tx.len(), 3);
});

backend_test!(pooled async fn enqueue_options_are_kept(t) {
    create_runs(&t.db).await;
    let opts = EnqueueOptions::new().queue("emails").priority(3).max_attempts(7).delay(Duration::from_secs(3600));
    let id = t.db.enqueue_with(echo("later"), opts).await.unwrap();
    let job = t.db.jobs().get(id).await.unwrap().unwrap();
    assert_eq!((job.queue.as_str(), job.priority, job.max_attempts, job.state), ("emails", 3, 7, JobState::Scheduled));
    assert!(job.run_at > chrono::Utc::now() + chrono::Duration::minutes(59), "{job:?}");
});

backend_test!(pooled async fn a_unique_key_returns_the_unfinished_job(t) {
    create_runs(&t.db).await;
    let opts = || EnqueueOptions::new().unique_key("welcome:42");
    let first = t.db.enqueue_with(echo("a"), opts()).await.unwrap();
    let second = t.db.enqueue_with(echo("b"), opts()).await.unwrap();
    assert_eq!(first, second);
    let in_tx = t.db.atomic(async |tx| tx.enqueue_with(echo("c"), opts()).await).await.unwrap();
    assert_eq!(in_tx, first);
    // Once it is finished, the key is free again.
    assert_eq!(t.db.jobs().cancel(first).await.unwrap(), oncommit::admin::Cancelled::Cancelled);
    let third = t.db.enqueue_with(echo("d"), opts()).await.unwrap();
    assert_ne!(third, first);
});

// Not through the pooler: the client's own transaction prepares named statements, which
// are the client's to make pooler-safe (docs/deployment.md).
backend_test!(async fn plain_sql_enqueues_inside_a_clients_own_transaction(t) {
    create_runs(&t.db).await;
    let pool_conn = t.db.acquire().await;
    let mut conn = pool_conn.unwrap();
    match t.backend() {
        Backend::Postgres => {
            let c = conn.conn().postgres().unwrap();
            sqlx::raw_sql("BEGIN").execute(&mut *c).await.unwrap();
            let id: i64 = sqlx::query_scalar(
                "SELECT oncommit.enqueue('echo', '{\"key\": \"from sql\"}', queue => 'default', priority => 2, \
                 max_attempts => 4, unique_key => 'sql-1')",
            )
            .fetch_one(&mut *c)
            .await
            .unwrap();
            assert_eq!(count(&t.db).await, 0, "not visible before the client's commit");
            sqlx::raw_sql("COMMIT").execute(&mut *c).await.unwrap();
            let job = t.db.jobs().get(oncommit::JobId(id)).await.unwrap().unwrap();
            assert_eq!((job.priority, job.max_attempts, job.unique_key.as_deref()), (2, 4, Some("sql-1")));
        }
        Backend::Sqlite => {
            let c = conn.conn().sqlite().unwrap();
            sqlx::query("INSERT INTO oncommit_jobs (task, args, priority) VALUES ('echo', '{\"key\": \"from sql\"}', 2)")
                .execute(&mut *c)
                .await
                .unwrap();
            let job = &t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap()[0];
            assert_eq!((job.task.as_str(), job.state, job.priority), ("echo", JobState::Available, 2));
        }
    }
});
