//! The conformance suite: every statement of the contract, exercised against each database
//! the same way — SQLite, PostgreSQL, and PostgreSQL through PgBouncer in transaction mode.
//! A new driver passes these before anything above it is tried.
//!
//! Each statement runs in a transaction of its own, committed, as oncommit runs them (behind
//! a transaction pooler there is nothing else). The assertions say what the contract
//! promises, never how a database keeps the promise.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use oncommit_testing::backend_test;

use super::contract::{
    HistoryClass, JobClaim, JobHeartbeat, JobPrune, JobWindow, LeaderElect, NewJob, Transition, WorkerBeat,
};
use super::selection::Filter;
use crate::db::{Backend, Db};
use crate::job::{JobId, JobState};
use crate::unique::Identity;

/// Runs the contract's `$method` on `$db` in a transaction of its own, and commits.
macro_rules! run {
    ($db:expr, $method:ident($($arg:expr),* $(,)?)) => {{
        let mut tx = $db.begin().await.unwrap();
        let out = on_driver!(tx.own_conn(), $method($($arg),*)).unwrap();
        tx.commit().await.unwrap();
        out
    }};
}

/// The database of `t`, migrated, through this crate's own `Db` (the harness's is another
/// build of the crate).
async fn open(t: &oncommit_testing::TestDb) -> Db {
    let db = Db::connect(&t.url).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// A job of `task` on `queue` with nothing else set.
fn job(task: &str, queue: &str) -> NewJob {
    NewJob {
        task: task.into(),
        args: "{}".into(),
        queue: Some(queue.into()),
        priority: None,
        run_at_ms: None,
        max_attempts: None,
        unique_key: None,
        unique: None,
        depends_on: Vec::new(),
        on_parent_failure: None,
        workflow_id: None,
        concurrency_key: None,
        key_limit: 1,
        fair_key: None,
        fair_weight: None,
        trace_context: None,
    }
}

fn claim<'a>(queue: &'a str, limit: i64, worker: &'a str) -> JobClaim<'a> {
    JobClaim { queue, limit, worker, lease: Duration::from_secs(60) }
}

/// A change of running job `id` (attempt `attempt`) to `state`.
fn change(id: JobId, attempt: i32, state: JobState) -> Transition {
    Transition { id: id.0, attempt, state, delay_ms: None, error: None, extra: 0, result: None }
}

/// Moves `column` (a time) of every job an hour back: retention and leases then run out
/// without waiting, on SQLite's millisecond clock too.
async fn backdate(db: &Db, column: &str) {
    let sql = match db.backend() {
        // The history too: a row moved back an hour moves to the partition of its new time.
        Backend::Postgres => format!(
            "WITH j AS (UPDATE oncommit.jobs SET {column} = {column} - interval '1 hour') \
             UPDATE oncommit.job_history SET {column} = {column} - interval '1 hour'"
        ),
        Backend::Sqlite => format!("UPDATE oncommit_jobs SET {column} = {column} - 3600000"),
    };
    exec(db, &sql).await;
}

/// Runs `sql` (one statement or several) in a transaction of its own, and commits.
async fn exec(db: &Db, sql: &str) {
    let mut tx = db.begin().await.unwrap();
    crate::with_conn!(tx.own_conn(), c => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(c).await.map(drop))
        .unwrap();
    tx.commit().await.unwrap();
}

backend_test!(pooled async fn inserts_keep_order_and_keys(t) {
    let db = open(t).await;
    let [a, b, c] = [job("t", "q"), job("t", "q"), job("t", "other")];
    let one = run!(db, job_insert_plain(&[&a]));
    let many = run!(db, job_insert_plain(&[&a, &b, &c]));
    assert_eq!(one.ids.len(), 1);
    assert_eq!(many.ids.len(), 3);
    assert!(many.ids.windows(2).all(|w| w[0].0 < w[1].0), "ids in input order: {:?}", many.ids);
    // Only the inserted jobs' queues are ever named for waking (SQLite names none: its
    // commit wakes this process).
    assert!(many.wake.iter().all(|q| q == "q" || q == "other"), "{:?}", many.wake);
    let got = run!(db, job_get(many.ids[2].0)).unwrap().job;
    assert_eq!((got.queue.as_str(), got.state, got.attempt), ("other", JobState::Available, 0));
    assert_eq!(run!(db, job_queue_and_state(many.ids[0].0)), ("q".to_owned(), "available".to_owned()));
    assert!(run!(db, job_get(i64::MAX)).is_none());

    let keyed = NewJob { unique_key: Some("k".into()), ..job("t", "q") };
    let (first, _) = run!(db, job_insert_keyed(&keyed));
    let (again, wake) = run!(db, job_insert_keyed(&keyed));
    assert_eq!(first, again, "an unfinished job holds its key");
    assert!(wake.iter().all(|q| q == "q"));
    let later = NewJob { run_at_ms: Some(chrono::Utc::now().timestamp_millis() + 3_600_000), ..job("t", "q") };
    let scheduled = run!(db, job_insert_plain(&[&later]));
    assert!(scheduled.wake.is_empty(), "a future job wakes no one");
    assert_eq!(run!(db, job_queue_and_state(scheduled.ids[0].0)).1, "scheduled");
});

backend_test!(pooled async fn a_unique_job_is_held_by_one_row_until_it_finishes(t) {
    let db = open(t).await;
    // Held while scheduled, available, running or retryable (bits 0 to 3).
    let id = Identity { hash: "h1".into(), states: 0b1111, replace: false };
    let first = NewJob { args: r#"{"v":1}"#.into(), ..job("t", "q") };
    let (new, queue, state) = run!(db, job_insert_unique(&first, &id)).unwrap();
    assert_eq!((queue.as_str(), state.as_str()), ("q", "available"));
    assert!(run!(db, job_insert_unique(&first, &id)).is_none(), "the identity is held");
    assert_eq!(run!(db, job_unique_holder("h1")), Some((new, "available".to_owned())));
    assert_eq!(run!(db, job_unique_holder("h2")), None);

    let later = chrono::Utc::now().timestamp_millis() + 3_600_000;
    let second = NewJob { args: r#"{"v":2}"#.into(), run_at_ms: Some(later), priority: Some(3), ..job("t", "q") };
    assert_eq!(run!(db, job_unique_replace(new, &second)), Some(("q".to_owned(), "scheduled".to_owned())));
    let replaced = run!(db, job_get(new)).unwrap().job;
    assert_eq!((replaced.args["v"].as_i64(), replaced.priority), (Some(2), 3));

    run!(db, job_unique_replace(new, &first));
    let claimed = run!(db, job_claim(&claim("q", 1, "w1")));
    assert_eq!(claimed[0].job.id.0, new);
    assert!(run!(db, job_unique_replace(new, &second)).is_none(), "a running job is not replaced");
    run!(db, job_set_state_if_running_many(&[change(JobId(new), 1, JobState::Completed)]));
    assert_eq!(run!(db, job_unique_holder("h1")), None, "a completed job no longer holds it");
    let (again, _, _) = run!(db, job_insert_unique(&first, &id)).unwrap();
    assert_ne!(again, new);
});

backend_test!(pooled async fn claims_in_order_and_fences_outcomes(t) {
    let db = open(t).await;
    let low = NewJob { priority: Some(5), ..job("t", "q") };
    let high = NewJob { priority: Some(1), ..job("t", "q") };
    let ids = run!(db, job_insert_plain(&[&low, &high, &low])).ids;
    let claimed = run!(db, job_claim(&claim("q", 2, "w1")));
    let mut got: Vec<JobId> = claimed.iter().map(|r| r.job.id).collect();
    got.sort_by_key(|id| id.0);
    // Which jobs, not the order rows come back in: priority first, then enqueue order.
    assert_eq!(got, vec![ids[0], ids[1]], "the urgent one and the older of the others");
    assert!(claimed.iter().all(|r| r.job.state == JobState::Running && r.job.attempt == 1));
    assert_eq!(claimed[0].job.lease_owner.as_deref(), Some("w1"));
    assert!(!run!(db, queue_is_controlled("q")));

    // A stale attempt changes nothing; the current one does, once.
    assert!(run!(db, job_set_state_if_running_many(&[change(ids[1], 2, JobState::Completed)])).is_empty());
    let done = run!(db, job_set_state_if_running_many(&[change(ids[1], 1, JobState::Completed)]));
    assert_eq!(done, vec![(ids[1].0, false)]);
    assert!(run!(db, job_set_state_if_running_many(&[change(ids[1], 1, JobState::Completed)])).is_empty());
    let failed = Transition {
        error: Some(r#"{"attempt":1,"at":0,"error":"boom"}"#.into()),
        ..change(ids[0], 1, JobState::Failed)
    };
    run!(db, job_set_state_if_running_many(&[failed]));
    let row = run!(db, job_get(ids[0].0)).unwrap().job;
    assert_eq!(row.state, JobState::Failed);
    assert_eq!(row.errors.len(), 1);
    assert!(row.finished_at.is_some());

    let mut all = run!(db, job_count_by_queue_and_state());
    all.sort();
    let expect = |rows: &[(&str, &str, i64)]| -> Vec<(String, String, i64)> {
        let mut rows: Vec<_> = rows.iter().map(|(q, s, n)| (q.to_string(), s.to_string(), *n)).collect();
        rows.sort();
        rows
    };
    assert_eq!(all, expect(&[("q", "available", 1), ("q", "completed", 1), ("q", "failed", 1)]));
    let mut unfinished = run!(db, job_count_split(false));
    unfinished.sort();
    assert_eq!(unfinished, expect(&[("q", "available", 1)]));
    let mut finished = run!(db, job_count_split(true));
    finished.sort();
    assert_eq!(finished, expect(&[("q", "completed", 1), ("q", "failed", 1)]));
    let per_minute = run!(db, job_throughput(5));
    assert_eq!(per_minute.iter().map(|(_, n)| n).sum::<i64>(), 1, "one completion: {per_minute:?}");

    db.queues().pause("q").await.unwrap();
    assert!(run!(db, queue_is_controlled("q")));
    assert!(run!(db, job_claim(&claim("q", 10, "w1"))).is_empty(), "the fast claim leaves a paused queue alone");
});

backend_test!(pooled async fn leases_renew_expire_and_are_rescued(t) {
    let db = open(t).await;
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q")])).ids;
    let held = run!(db, job_claim(&claim("q", 1, "w1")));
    assert_eq!(held[0].job.id, ids[0]);

    let mine = [ids[0].0, ids[1].0];
    let renew = |worker| JobHeartbeat { worker, ids: &mine, lease: Duration::from_secs(60) };
    // Only the jobs the worker holds come back.
    assert_eq!(run!(db, job_heartbeat_many(&renew("w1"))), vec![(ids[0].0, 1, false, true)]);
    assert!(run!(db, job_heartbeat_many(&renew("w2"))).is_empty());
    assert!(!run!(db, job_tick(&[])).expired_leases);
    backdate(&db, "lease_expires_at").await;

    let tick = run!(db, job_tick(&["q".to_owned(), "idle".to_owned()]));
    assert!(tick.expired_leases, "the lease ran out an hour ago");
    assert_eq!(tick.wake, vec!["q".to_owned()], "q has an available job, idle none");
    assert_eq!(run!(db, job_rescue_many()), vec!["q".to_owned()]);
    let rescued = run!(db, job_get(ids[0].0)).unwrap().job;
    assert_eq!((rescued.state, rescued.lease_owner), (JobState::Available, None));
    assert!(rescued.errors[0].error.contains("lease expired"), "{:?}", rescued.errors);
    assert!(!run!(db, job_tick(&[])).expired_leases);

    // A snooze with no delay is due at once: the next tick promotes it.
    let again = run!(db, job_claim(&claim("q", 1, "w1")));
    let snooze = Transition { delay_ms: Some(0), extra: 1, ..change(again[0].job.id, again[0].job.attempt, JobState::Scheduled) };
    run!(db, job_set_state_if_running_many(&[snooze]));
    let tick = run!(db, job_tick(&[]));
    assert_eq!((tick.promoted, tick.wake), (1, vec!["q".to_owned()]));
});

backend_test!(pooled async fn queue_lag_is_the_oldest_available_jobs_age(t) {
    let db = open(t).await;
    assert!(run!(db, queue_lag()).is_empty(), "nothing waits");
    let urgent = NewJob { priority: Some(0), ..job("t", "old") };
    let patient = NewJob { priority: Some(9), ..job("t", "old") };
    let later = NewJob { run_at_ms: Some(chrono::Utc::now().timestamp_millis() + 3_600_000), ..job("t", "future") };
    run!(db, job_insert_plain(&[&patient, &urgent, &job("t", "new"), &later]));
    backdate(&db, "run_at").await;
    // Only the queue "new" gets a job due now; "future"'s job waits for its time.
    run!(db, job_insert_plain(&[&job("t", "new")]));
    let mut fresh = run!(db, job_insert_plain(&[&job("t", "new")])).ids;
    let lag: std::collections::BTreeMap<String, i64> = run!(db, queue_lag()).into_iter().collect();
    assert_eq!(lag.keys().collect::<Vec<_>>(), ["new", "old"], "{lag:?}");
    // The low-priority job behind the urgent one counts: it waited as long.
    assert!((3_600_000..3_700_000).contains(&lag["old"]), "{lag:?}");
    assert!((3_600_000..3_700_000).contains(&lag["new"]), "the backdated one of three: {lag:?}");
    let claimed = run!(db, job_claim(&claim("new", 1, "w1")));
    assert_ne!(claimed[0].job.id, fresh.pop().unwrap(), "the oldest goes first");
    let lag: std::collections::BTreeMap<String, i64> = run!(db, queue_lag()).into_iter().collect();
    assert!(lag["new"] < 600_000, "the oldest left just came: {lag:?}");
});

backend_test!(pooled async fn operators_cancel_retry_delete_and_prune(t) {
    let db = open(t).await;
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &job("t", "q"), &job("t", "q")])).ids;
    assert_eq!(run!(db, job_cancel(ids[0].0)).as_deref(), Some("cancelled"));
    assert_eq!(run!(db, job_cancel(ids[0].0)), None, "finished already");
    assert!(run!(db, job_retry(ids[0].0)));
    assert_eq!(run!(db, job_get(ids[0].0)).unwrap().job.state, JobState::Available);

    // The retried job runs again last: its run time is now.
    let running = run!(db, job_claim(&claim("q", 1, "w1")))[0].job.id;
    assert_eq!(running, ids[1]);
    assert!(!run!(db, job_delete(running.0)), "a running job is not deleted");
    assert!(!run!(db, job_retry(running.0)), "nor retried");
    assert_eq!(run!(db, job_cancel(running.0)).as_deref(), Some("running"), "its worker is asked");
    assert!(run!(db, job_get(running.0)).unwrap().job.cancel_requested);
    assert!(run!(db, job_delete(ids[2].0)));
    assert!(!run!(db, job_delete(ids[2].0)));

    let done = run!(db, job_claim(&claim("q", 1, "w1")))[0].job.id;
    assert_eq!(done, ids[0]);
    run!(db, job_set_state_if_running_many(&[change(done, 1, JobState::Completed)]));
    let hour = Duration::from_secs(3600);
    let keep = JobPrune { completed: 2 * hour, discarded: 2 * hour, limit: 100 };
    let prune = JobPrune { completed: Duration::from_secs(60), ..keep };
    // Pruned where it is: the jobs table (SQLite) or the history (PostgreSQL).
    let pruned = |prune: JobPrune| {
        let db = &db;
        async move {
            run!(db, job_prune(&prune)) + run!(db, history_prune(HistoryClass::Completed, prune.completed, true, 100))
        }
    };
    assert_eq!(pruned(prune).await, 0, "finished just now");
    backdate(&db, "finished_at").await;
    assert_eq!(pruned(keep).await, 0, "within retention");
    assert_eq!(pruned(prune).await, 1);
    assert!(run!(db, job_get(done.0)).is_none());
});

backend_test!(pooled async fn the_fleet_records_workers_tasks_leaders_and_periods(t) {
    let db = open(t).await;
    let beat = WorkerBeat { id: "w1", hostname: "h", pid: 7, queues: r#"{"q":4}"#, clock_ms: 0 };
    run!(db, worker_heartbeat(&beat));
    run!(db, worker_heartbeat(&beat));
    let workers = run!(db, worker_list());
    assert_eq!(workers.len(), 1);
    assert_eq!((workers[0].0.as_str(), workers[0].2), ("w1", 7));
    assert_eq!(serde_json::from_str::<serde_json::Value>(&workers[0].3).unwrap(), serde_json::json!({"q": 4}));
    run!(db, worker_prune(Duration::from_secs(3600)));
    assert_eq!(run!(db, worker_list()).len(), 1, "a live worker stays");
    run!(db, worker_delete("w1"));
    assert!(run!(db, worker_list()).is_empty());

    let rows = r#"[{"task":"mail","queue":"io","priority":3,"max_attempts":7}]"#;
    run!(db, task_declare("w1", rows));
    run!(db, task_declare("w2", rows));
    let tasks = run!(db, task_list());
    assert_eq!(tasks.len(), 1);
    assert_eq!((tasks[0].queue.as_str(), tasks[0].priority, tasks[0].max_attempts), ("io", 3, 7));
    assert_eq!(tasks[0].declared_by, "w2", "the latest record wins");

    let elect = |id| LeaderElect { name: "maintenance", id, ttl: Duration::from_secs(60) };
    assert!(run!(db, leader_attempt_elect(&elect("a"))));
    assert!(!run!(db, leader_attempt_elect(&elect("b"))));
    assert!(run!(db, leader_attempt_elect(&elect("a"))), "the leader renews");
    run!(db, leader_resign("maintenance", "b"));
    assert!(!run!(db, leader_attempt_elect(&elect("b"))), "only the leader resigns");
    run!(db, leader_resign("maintenance", "a"));
    assert!(run!(db, leader_attempt_elect(&elect("b"))));

    assert!(run!(db, periodic_claim("nightly", 5)));
    assert!(!run!(db, periodic_claim("nightly", 5)));
    assert!(!run!(db, periodic_claim("nightly", 4)), "an earlier period is past");
    assert!(run!(db, periodic_claim("nightly", 6)));

    let stats = run!(db, table_stats());
    assert!(stats.bytes > 0);
    assert_eq!(stats.free_bytes.is_some(), db.backend() == Backend::Sqlite);
});

backend_test!(pooled async fn listings_read_one_id_window_under_a_filter(t) {
    let db = open(t).await;
    assert_eq!(run!(db, job_id_bounds()), None, "an empty table");
    let needle = NewJob { args: r#"{"note":"Find Me"}"#.into(), ..job("report", "q") };
    let ids = run!(db, job_insert_plain(&[&job("t", "q"), &needle, &job("t", "other"), &job("t", "q")])).ids;
    let failed = run!(db, job_claim(&claim("other", 1, "w1")))[0].job.id;
    let error = Some(r#"{"attempt":1,"at":0,"error":"Disk Full"}"#.into());
    run!(db, job_set_state_if_running_many(&[Transition { error, ..change(failed, 1, JobState::Failed) }]));
    let (lo, hi) = run!(db, job_id_bounds()).unwrap();
    assert_eq!((lo, hi), (ids[0].0, ids[3].0));

    let every = Filter { states: JobState::ALL.iter().map(|s| s.as_str()).collect(), ..Filter::default() };
    let window = |newest_first, limit| JobWindow { lo, hi: hi + 1, newest_first, limit };
    let listed = |rows: Vec<crate::job_row::JobRow>| rows.into_iter().map(|r| r.job.id).collect::<Vec<_>>();
    assert_eq!(listed(run!(db, job_window(&every, &window(true, 10)))), [ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(listed(run!(db, job_window(&every, &window(false, 2)))), [ids[0], ids[1]], "oldest first, limited");
    let narrow = JobWindow { lo: ids[1].0, hi: ids[3].0, ..window(true, 10) };
    assert_eq!(listed(run!(db, job_window(&every, &narrow))), [ids[2], ids[1]], "only the window's ids");

    let db = &db;
    let by = |f: Filter| async move { listed(run!(db, job_window(&f, &window(true, 10)))) };
    assert_eq!(by(Filter { queue: Some("q".into()), ..every.clone() }).await, [ids[3], ids[1], ids[0]]);
    assert_eq!(by(Filter { states: vec!["failed"], ..every.clone() }).await, [failed]);
    assert_eq!(by(Filter { task: Some("report".into()), ..every.clone() }).await, [ids[1]]);
    assert_eq!(by(Filter { search: Some("find me".into()), ..every.clone() }).await, [ids[1]], "args, any case");
    assert_eq!(by(Filter { search: Some(ids[3].0.to_string()), ..every.clone() }).await, [ids[3]], "an id");
    assert_eq!(by(Filter { error: Some("disk full".into()), ..every.clone() }).await, [failed], "an error");
    assert_eq!(by(Filter { ids: Some(vec![ids[0].0, ids[3].0]), ..every.clone() }).await, [ids[3], ids[0]]);
    assert!(by(Filter { priority: Some(7), ..every.clone() }).await.is_empty());
});

backend_test!(pooled async fn activity_counters_add_up_and_sleepers_come_and_go(t) {
    let db = open(t).await;
    let row = |minute, metric: &str, bucket, count| (minute, "q".to_owned(), metric.to_owned(), bucket, count);
    run!(db, activity_add(&[row(100, "completed", 0, 2), row(100, "wait", 3, 1), row(101, "completed", 0, 1)]));
    run!(db, activity_add(&[row(100, "completed", 0, 5)]));
    let mut since = run!(db, activity_since(100));
    since.sort();
    // Completions per minute, the rest summed over the range (minute 0).
    assert_eq!(since, [row(0, "wait", 3, 1), row(100, "completed", 0, 7), row(101, "completed", 0, 1)]);
    assert_eq!(run!(db, activity_since(101)), [row(101, "completed", 0, 1)]);
    assert_eq!(run!(db, activity_prune(101)), 2);
    assert_eq!(run!(db, activity_since(0)), [row(101, "completed", 0, 1)]);

    // Recorded once however often, and forgotten (PostgreSQL; SQLite has no NOTIFY and
    // records nothing, but takes the calls).
    let sleepers = |db: &Db| {
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let n: Option<i64> = match tx.own_conn() {
                crate::Conn::Postgres(c) => {
                    Some(sqlx::query_scalar("SELECT count(*) FROM oncommit.sleepers").fetch_one(c).await.unwrap())
                }
                crate::Conn::Sqlite(_) => None,
            };
            tx.commit().await.unwrap();
            n
        }
    };
    run!(db, sleeper_record("q", "w1"));
    run!(db, sleeper_record("q", "w1"));
    assert!(sleepers(&db).await.is_none_or(|n| n == 1));
    run!(db, sleeper_forget("q", "w1"));
    assert!(sleepers(&db).await.is_none_or(|n| n == 0));
});

/// The snapshot of the migrated schema of `backend`, checked in beside the code.
fn snapshot_path(backend: Backend) -> std::path::PathBuf {
    let file = match backend {
        Backend::Postgres => "postgres.txt",
        Backend::Sqlite => "sqlite.txt",
    };
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema").join(file)
}

backend_test!(async fn the_migrated_schema_is_the_snapshot(t) {
    let db = open(t).await;
    let described = run!(db, schema_describe());
    let path = snapshot_path(db.backend());
    if std::env::var_os("ONCOMMIT_BLESS_SCHEMA").is_some() {
        std::fs::write(&path, &described).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if described != expected {
        let first = described.lines().zip(expected.lines()).position(|(a, b)| a != b);
        let line = first.unwrap_or(described.lines().count().min(expected.lines().count()));
        panic!(
            "the migrated schema differs from {} from line {}:\n  migrated: {:?}\n  snapshot: {:?}\n\
             A migration changed the schema: check the change, then run the test with \
             ONCOMMIT_BLESS_SCHEMA=1 to write the new snapshot, and commit it with the migration.",
            path.display(),
            line + 1,
            described.lines().nth(line),
            expected.lines().nth(line),
        );
    }
});

mod dependencies;
mod dialect;
mod fair;
mod history;
mod queues;
mod selected;
