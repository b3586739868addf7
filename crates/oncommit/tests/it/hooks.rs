//! `on_commit` hooks with Django's semantics.

use std::sync::{Arc, Mutex};

use oncommit::{Db, Error};
use oncommit_testing::backend_test;

use super::{committed_ids, create_items, insert};

/// A shared log the hooks write to, so a test can see what ran and in which order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn hook(&self, s: &'static str) -> impl Future<Output = ()> + Send + 'static {
        let log = self.clone();
        async move { log.push(s) }
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

backend_test!(pooled async fn hooks_run_after_the_outermost_commit_in_order(t) {
    create_items(&t.db).await;
    let log = Log::default();
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(log.hook("first"));
    let l = log.clone();
    tx.on_commit(async move { l.push("second (async)") });
    let mut sp = tx.savepoint().await.unwrap();
    sp.on_commit(log.hook("third (from a savepoint)"));
    sp.commit().await.unwrap();
    assert!(log.take().is_empty(), "a hook ran before the commit");
    tx.commit().await.unwrap();
    assert_eq!(log.take(), ["first", "second (async)", "third (from a savepoint)"]);
});

backend_test!(pooled async fn hooks_see_the_committed_data(t) {
    create_items(&t.db).await;
    // The closure may run more than once (retry), so it clones what its hook takes.
    let (sent, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let db = t.db.clone();
    t.db
        .atomic(async move |tx| {
            insert(tx, 7, "visible").await?;
            let (db, sent) = (db.clone(), sent.clone());
            tx.on_commit(async move {
                sent.send(committed_ids(&db).await).ok();
            });
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(seen.recv().await.unwrap(), vec![7]);
});

backend_test!(pooled async fn no_hook_runs_on_rollback_and_savepoint_hooks_go_with_their_savepoint(t) {
    let log = Log::default();
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(log.hook("outer, rolled back"));
    tx.rollback().await.unwrap();

    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(log.hook("outer"));
    let _ = tx
        .atomic(async |sp| {
            sp.on_commit(log.hook("inner, rolled back"));
            sp.atomic(async |deeper| {
                deeper.on_commit(log.hook("deeper, rolled back with its parent"));
                Ok(())
            })
            .await?;
            Err::<(), _>(Error::app("inner fails"))
        })
        .await;
    tx.atomic(async |sp| {
        sp.on_commit(log.hook("inner, released"));
        Ok(())
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(log.take(), ["outer", "inner, released"]);
});

backend_test!(pooled async fn no_hook_runs_when_the_commit_fails(t) {
    // A deferred foreign key is checked at COMMIT on both backends.
    let mut conn = t.db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::raw_sql(
            "CREATE TABLE parent (id BIGINT PRIMARY KEY); \
             CREATE TABLE child (id BIGINT PRIMARY KEY, \
                parent_id BIGINT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(c)
        .await
        .unwrap();
    });
    drop(conn);
    let log = Log::default();
    let err = t
        .db
        .atomic(async |tx| {
            tx.on_commit(log.hook("must not run"));
            oncommit::with_conn!(tx.conn(), c => {
                sqlx::query("INSERT INTO child (id, parent_id) VALUES (1, 42)").execute(c).await?;
            });
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(log.take().is_empty());
});

backend_test!(pooled async fn outside_a_transaction_hooks_run_at_once(t) {
    let log = Log::default();
    t.db.on_commit(log.hook("now")).await.unwrap();
    assert_eq!(log.take(), ["now"]);
    let l = log.clone();
    t.db.on_commit(async move { l.push("now, async") }).await.unwrap();
    assert_eq!(log.take(), ["now, async"]);
    let err = t.db.on_commit(async { Err::<(), _>("refused") }).await.unwrap_err();
    assert!(matches!(err, Error::Hook { .. }), "{err:?}");
});

backend_test!(pooled async fn a_hook_registered_while_hooks_run_runs_at_once(t) {
    let log = Log::default();
    let (db, l) = (t.db.clone(), log.clone());
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(async move {
        l.push("outer starts");
        let inner = l.clone();
        db.on_commit(async move { inner.push("registered during the run") }).await.unwrap();
        l.push("outer ends");
    });
    tx.on_commit(log.hook("next"));
    tx.commit().await.unwrap();
    assert_eq!(log.take(), ["outer starts", "registered during the run", "outer ends", "next"]);
});

backend_test!(pooled async fn a_failing_hook_stops_the_rest_but_the_data_is_committed(t) {
    create_items(&t.db).await;
    let log = Log::default();
    let err = t
        .db
        .atomic(async |tx| {
            insert(tx, 1, "committed").await?;
            tx.on_commit(log.hook("before"));
            tx.on_commit(async { Err::<(), _>("mail server down") });
            tx.on_commit(log.hook("skipped"));
            Ok(())
        })
        .await
        .unwrap_err();
    let Error::Hook { index, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*index, 1);
    assert!(err.to_string().contains("transaction committed"), "{err}");
    assert!(err.to_string().contains("mail server down"), "{err}");
    assert_eq!(log.take(), ["before"]);
    assert_eq!(committed_ids(&t.db).await, vec![1]);
});

backend_test!(pooled async fn robust_hooks_log_their_failure_and_the_rest_run(t) {
    let logs = oncommit_testing::LogCapture::start();
    let log = Log::default();
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit_robust(async { Err::<(), _>("flaky") });
    tx.on_commit_robust(async { if true { panic!("also flaky") } });
    tx.on_commit_robust(async { Err::<(), _>("flaky too") });
    tx.on_commit(log.hook("still runs"));
    tx.commit().await.unwrap();
    assert_eq!(log.take(), ["still runs"]);
    let logged = logs.text();
    for (index, why) in [(0, "flaky"), (1, "also flaky"), (2, "flaky too")] {
        let line = logged
            .lines()
            .find(|l| l.contains("robust on_commit hook failed") && l.contains(&format!("index={index}")))
            .unwrap_or_else(|| panic!("hook {index}'s failure was not logged: {logged}"));
        assert!(line.contains("ERROR") && line.contains(why), "{line}");
    }
});

backend_test!(pooled async fn a_panicking_hook_is_an_error_not_a_crash(t) {
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(async { if true { panic!("boom") } });
    let err = tx.commit().await.unwrap_err();
    assert!(err.to_string().contains("hook panicked: boom"), "{err}");
    let mut tx = t.db.begin().await.unwrap();
    tx.on_commit(async { if true { panic!("async boom") } });
    let err = tx.commit().await.unwrap_err();
    assert!(err.to_string().contains("async boom"), "{err}");
});

backend_test!(pooled async fn hooks_of_a_retried_attempt_never_run(t) {
    let log = Log::default();
    let db: &Db = &t.db;
    let committed = db
        .transaction()
        .retry(oncommit::TransactionRetry::default().base_delay(std::time::Duration::from_millis(1)))
        .run_reported(async |tx| {
            let attempt = tx.attempt();
            let l = log.clone();
            tx.on_commit(async move { l.push(format!("attempt {attempt}")) });
            if attempt < 3 {
                return Err(Error::SerializationFailure { kind: oncommit::SerializationKind::WriteConflict, message: "simulated".into() });
            }
            Ok(attempt)
        })
        .await
        .unwrap();
    assert_eq!((committed.value, committed.attempts), (3, 3));
    assert_eq!(log.take(), ["attempt 3"]);
});

backend_test!(pooled async fn db_on_commit_inside_a_closure_waits_for_its_commit(t) {
    create_items(&t.db).await;
    let log = Log::default();
    let db = t.db.clone();
    let l = log.clone();
    t.db
        .atomic(async move |tx| {
            insert(tx, 1, "row").await?;
            // Code handed only the Db, deep inside the scope: seed 000's race if it ran now.
            db.on_commit(l.hook("db hook")).await?;
            let l2 = l.clone();
            db.on_commit(async move { l2.push("db async hook") }).await?;
            tx.atomic(async |sp| {
                sp.db().on_commit(l.hook("in a savepoint that rolls back")).await?;
                Err::<(), _>(Error::app("undo"))
            })
            .await
            .unwrap_err();
            tx.atomic(async |sp| sp.db().on_commit(l.hook("in a released savepoint")).await).await?;
            assert!(l.take().is_empty(), "a hook ran before the commit");
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(log.take(), ["db hook", "db async hook", "in a released savepoint"]);
    // A closure that fails runs none of them.
    let db = t.db.clone();
    let l = log.clone();
    t.db.atomic(async move |_tx| {
        db.on_commit(l.hook("rolled back")).await?;
        Err::<(), _>(Error::app("no"))
    })
    .await
    .unwrap_err();
    assert!(log.take().is_empty());
});

backend_test!(pooled async fn db_on_commit_beside_a_guard_of_the_same_task_waits_for_its_commit(t) {
    create_items(&t.db).await;
    let log = Log::default();
    let mut tx = t.db.begin().await.unwrap();
    t.db.on_commit(log.hook("first")).await.unwrap();
    t.db.on_commit_robust(async { Err::<(), _>("robust failure is logged") }).await.unwrap();
    tx.on_commit(log.hook("second"));
    // Another task is not inside this transaction: its hook runs at once.
    let (db, l) = (t.db.clone(), log.clone());
    tokio::spawn(async move { db.on_commit(l.hook("other task, at once")).await.unwrap() }).await.unwrap();
    assert_eq!(log.take(), ["other task, at once"]);
    tx.commit().await.unwrap();
    assert_eq!(log.take(), ["first", "second"]);
    // A guard rolled back takes its hooks with it, and ends the deferral.
    let tx = t.db.begin().await.unwrap();
    t.db.on_commit(log.hook("rolled back")).await.unwrap();
    tx.rollback().await.unwrap();
    t.db.on_commit(log.hook("at once")).await.unwrap();
    assert_eq!(log.take(), ["at once"]);
    // So does a dropped guard.
    let tx = t.db.begin().await.unwrap();
    t.db.on_commit(log.hook("dropped")).await.unwrap();
    drop(tx);
    t.db.on_commit(log.hook("at once again")).await.unwrap();
    assert_eq!(log.take(), ["at once again"]);
});
