//! Workers: running, retrying, failing, scheduling, cancelling, leases and fencing,
//! shutdown, wake-ups and periodic jobs — on both backends.

use std::time::{Duration, Instant};

use oncommit::admin::Cancelled;
use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Db, EnqueueOptions, JobState, Periodic, Worker};
use oncommit_testing::{backend_test, eventually};

use super::tasks::{
    Echo, Flaky, Gated, Hangs, Later, Moody, Panics, create_runs, gate, runs, start, wait_arrivals, wait_for, worker,
};

fn echo(key: &str) -> Echo {
    Echo { key: key.to_owned() }
}

backend_test!(pooled async fn a_worker_runs_jobs_and_completes_them_exactly_once(t) {
    create_runs(&t.db).await;
    let ids = t.db.enqueue_many((0..40).map(|i| echo(&i.to_string()))).await.unwrap();
    let w = start(worker(&t.db).queue("default", 4));
    for id in &ids {
        let job = wait_for(&t.db, *id, JobState::Completed).await;
        assert_eq!(job.attempt, 1);
        assert!(job.finished_at.is_some() && job.lease_owner.is_some() && job.lease_expires_at.is_none());
    }
    w.stop().await;
    let runs = runs(&t.db).await;
    assert_eq!(runs.len(), 40, "each job recorded once: {runs:?}");
});

backend_test!(pooled async fn failed_attempts_are_retried_then_failed_with_their_history(t) {
    create_runs(&t.db).await;
    let recovers = t.db.enqueue(Flaky { failures: 2 }).await.unwrap();
    let gives_up = t.db.enqueue(Flaky { failures: 99 }).await.unwrap();
    let w = start(worker(&t.db));
    let job = wait_for(&t.db, recovers, JobState::Completed).await;
    assert_eq!(job.attempt, 3);
    let history: Vec<&str> = job.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(history, ["planned failure 1", "planned failure 2"]);
    let job = wait_for(&t.db, gives_up, JobState::Failed).await;
    assert_eq!((job.attempt, job.errors.len()), (3, 3));
    w.stop().await;
});

backend_test!(pooled async fn panics_timeouts_unknown_tasks_and_bad_payloads_fail_jobs_not_the_worker(t) {
    create_runs(&t.db).await;
    let panics = t.db.enqueue(Panics).await.unwrap();
    let hangs = t.db.enqueue(Hangs).await.unwrap();
    let unknown = t.db.enqueue_raw("no_such_task", &serde_json::json!({}), EnqueueOptions::new()).await.unwrap();
    let bad = t.db.enqueue_raw("echo", &serde_json::json!({"wrong": 1}), EnqueueOptions::new()).await.unwrap();
    let w = start(worker(&t.db));
    let expect = [
        (panics, "task panicked: the task blew up"),
        (hangs, "timed out after 100ms"),
        (unknown, "unknown task `no_such_task`: this worker runs echo, flaky, gated, hangs, later, moody, panics"),
        (bad, "cannot decode the args of `echo`: missing field `key`"),
    ];
    for (id, message) in expect {
        let job = wait_for(&t.db, id, JobState::Failed).await;
        assert_eq!(job.attempt, 1, "unrunnable jobs are not retried: {job:?}");
        assert_eq!(job.errors.last().map(|e| e.error.as_str()), Some(message));
    }
    // The worker is alive and well.
    let fine = t.db.enqueue(echo("after")).await.unwrap();
    wait_for(&t.db, fine, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn scheduled_jobs_wait_for_their_time(t) {
    create_runs(&t.db).await;
    let w = start(worker(&t.db));
    let id = t.db.enqueue_with(echo("later"), EnqueueOptions::new().delay(Duration::from_millis(300))).await.unwrap();
    let queued = t.db.jobs().get(id).await.unwrap().unwrap();
    assert_eq!(queued.state, JobState::Scheduled);
    let job = wait_for(&t.db, id, JobState::Completed).await;
    assert!(job.attempted_at.unwrap() >= queued.run_at, "ran early: {job:?}");
    w.stop().await;
});

backend_test!(pooled async fn lower_priorities_run_first(t) {
    create_runs(&t.db).await;
    let low = t.db.enqueue_with(echo("low"), EnqueueOptions::new().priority(5)).await.unwrap();
    let high = t.db.enqueue_with(echo("high"), EnqueueOptions::new().priority(0)).await.unwrap();
    // One claim of one job at a time (no prefetch), so the claim times show the order.
    let w = start(worker(&t.db).queue("default", 1).batch_size(1).prefetch(0));
    let low = wait_for(&t.db, low, JobState::Completed).await;
    let high = wait_for(&t.db, high, JobState::Completed).await;
    assert!(high.attempted_at < low.attempted_at, "{high:?} / {low:?}");
    w.stop().await;
});

backend_test!(pooled async fn tasks_can_snooze_and_cancel_themselves(t) {
    create_runs(&t.db).await;
    let snoozes = t.db.enqueue(Moody { cancel: false }).await.unwrap();
    let cancels = t.db.enqueue(Moody { cancel: true }).await.unwrap();
    let w = start(worker(&t.db));
    let job = wait_for(&t.db, snoozes, JobState::Completed).await;
    // The snooze did not use up the single attempt it had.
    assert_eq!((job.attempt, job.max_attempts), (2, 2));
    let job = wait_for(&t.db, cancels, JobState::Cancelled).await;
    assert_eq!(job.errors.last().map(|e| e.error.as_str()), Some("not worth doing"));
    w.stop().await;
});

backend_test!(pooled async fn queued_and_running_jobs_can_be_cancelled(t) {
    create_runs(&t.db).await;
    let queued = t.db.enqueue_with(echo("never"), EnqueueOptions::new().queue("idle")).await.unwrap();
    assert_eq!(t.db.jobs().cancel(queued).await.unwrap(), Cancelled::Cancelled);
    assert_eq!(t.db.jobs().cancel(queued).await.unwrap(), Cancelled::NotCancellable);

    let key = format!("cancel-{}", t.target());
    let running = t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 99 }).await.unwrap();
    // Heartbeats carry the cancel on SQLite; PostgreSQL also gets a NOTIFY.
    let w = start(worker(&t.db).heartbeat_interval(Duration::from_millis(50)));
    wait_arrivals(&key, 1).await;
    assert_eq!(t.db.jobs().cancel(running).await.unwrap(), Cancelled::Requested);
    let job = wait_for(&t.db, running, JobState::Cancelled).await;
    assert_eq!(job.errors.last().map(|e| e.error.as_str()), Some("cancelled while running"));
    w.stop().await;
    assert!(runs(&t.db).await.is_empty());
});

backend_test!(pooled async fn shutdown_waits_for_running_jobs_then_releases_the_rest(t) {
    create_runs(&t.db).await;
    let key = format!("shutdown-{}", t.target());
    let held = t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 1 }).await.unwrap();
    let w = start(worker(&t.db).shutdown_timeout(Duration::from_millis(200)));
    wait_arrivals(&key, 1).await;
    let stopping = Instant::now();
    w.stop().await;
    assert!(stopping.elapsed() >= Duration::from_millis(200));
    let job = t.db.jobs().get(held).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Available, "released to the queue: {job:?}");
    // Released without using up an attempt.
    assert_eq!((job.attempt, job.max_attempts), (1, 26));
    assert!(job.errors[0].error.starts_with("released"), "{job:?}");
    // A new worker picks it up (attempt 2 does not wait at the gate).
    let w = start(worker(&t.db));
    wait_for(&t.db, held, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn a_frozen_workers_job_is_rescued_and_its_late_completion_is_fenced_off(t) {
    create_runs(&t.db).await;
    let key = format!("frozen-{}", t.target());
    let id = t.db.enqueue(Gated { gate: key.clone(), hold_attempts: 1 }).await.unwrap();
    // A: short lease, never renewed: it looks dead once the lease runs out.
    let frozen = start(worker(&t.db).lease(Duration::from_millis(300)).heartbeat_interval(Duration::from_secs(3600)));
    let job = wait_for(&t.db, id, JobState::Running).await;
    let frozen_owner = job.lease_owner.clone();
    // B rescues the job after A's lease expires and runs attempt 2 to completion.
    let rescuer = start(worker(&t.db));
    let job = wait_for(&t.db, id, JobState::Completed).await;
    assert_eq!(job.attempt, 2);
    assert!(job.errors[0].error.starts_with("lease expired: worker"), "{job:?}");
    assert!(job.errors[0].error.contains(frozen_owner.as_deref().unwrap()));
    // A wakes up and tries to complete attempt 1 in its transaction: fenced off.
    gate(&key).notify_one();
    frozen.stop().await;
    rescuer.stop().await;
    let job = t.db.jobs().get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Completed, 2));
    let runs = runs(&t.db).await;
    assert_eq!(runs.len(), 1, "the task's effect is applied exactly once: {runs:?}");
    assert_eq!(runs[0].2, 2);
});

backend_test!(pooled async fn commits_wake_the_worker_without_polling(t) {
    create_runs(&t.db).await;
    let w = start(worker(&t.db).poll_interval(Duration::from_secs(3600)));
    // Give the worker its first (empty) claim, so it is waiting when the job commits.
    tokio::task::yield_now().await;
    // A second pool: on PostgreSQL only the NOTIFY at commit can reach the worker.
    let other = match t.backend() {
        oncommit::Backend::Postgres => Db::connect(&t.url).await.unwrap(),
        oncommit::Backend::Sqlite => t.db.clone(),
    };
    for i in 0..3 {
        let id = other.atomic(async |tx| tx.enqueue(echo(&format!("woken {i}"))).await).await.unwrap();
        wait_for(&t.db, id, JobState::Completed).await;
    }
    w.stop().await;
});

backend_test!(pooled async fn periodic_jobs_are_enqueued_once_per_period_even_with_two_leaders(t) {
    create_runs(&t.db).await;
    let every = Duration::from_millis(200);
    let periodic = || Periodic::every("tick", every, || Echo { key: "tick".into() });
    let make = |db: &Db| worker(db).periodic(periodic()).poll_interval(Duration::from_millis(20));
    let a = start(make(&t.db));
    let b = start(make(&t.db));
    let started = Instant::now();
    let first = eventually("three periodic jobs", || async {
        Some(t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap()).filter(|jobs| jobs.len() >= 3)
    })
    .await;
    a.stop().await;
    b.stop().await;
    let elapsed = started.elapsed();
    let jobs = t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    let periods = (elapsed.as_millis() / every.as_millis()) as usize + 2;
    assert!(jobs.len() <= periods, "{} jobs in {elapsed:?}: duplicates per period", jobs.len());
    assert!(first.iter().all(|j| j.task == "echo"));
});

backend_test!(pooled async fn an_exhausted_job_whose_worker_died_is_failed_by_the_rescuer(t) {
    create_runs(&t.db).await;
    let key = format!("exhausted-{}", t.target());
    let id = t.db.enqueue_with(Gated { gate: key, hold_attempts: 99 }, EnqueueOptions::new().max_attempts(1)).await.unwrap();
    let frozen = start(worker(&t.db).lease(Duration::from_millis(200)).heartbeat_interval(Duration::from_secs(3600)));
    wait_for(&t.db, id, JobState::Running).await;
    let job = wait_for(&t.db, id, JobState::Failed).await;
    assert!(job.errors[0].error.starts_with("lease expired"), "{job:?}");
    frozen.trigger.trigger();
    frozen.handle.abort();
});

/// Never called: it compiles only while `Worker::run`'s future is `Send` (spawnable), which
/// the async-closure `Send` limitation (docs/transactions.md) could silently break.
#[allow(dead_code)]
fn assert_worker_is_send(db: Db) {
    fn is_send<T: Send>(_: T) {}
    is_send(Worker::new(db).run(oncommit::Shutdown::new().1));
}

backend_test!(pooled async fn each_queue_runs_at_most_its_concurrency(t) {
    create_runs(&t.db).await;
    let key = format!("concurrency-{}", t.target());
    let opts = || EnqueueOptions::new().queue("narrow");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.db.enqueue_with(Gated { gate: key.clone(), hold_attempts: 1 }, opts()).await.unwrap());
    }
    let other = t.db.enqueue(echo("other queue")).await.unwrap();
    // No prefetch: a `running` row is then a running task (prefetched jobs are `running`
    // rows too; slots.rs tests them).
    let w = start(worker(&t.db).queue("narrow", 2).queue("default", 1).prefetch(0));
    // The other queue is not held up by the narrow one.
    wait_for(&t.db, other, JobState::Completed).await;
    let running = |jobs: Vec<oncommit::Job>| jobs.iter().filter(|j| j.state == JobState::Running).count();
    let narrow = JobSelection::default().queue("narrow");
    let listed = || async { t.db.jobs().list(&narrow, &PageRequest::default()).await.unwrap().jobs };
    eventually("two narrow jobs running", || async { (running(listed().await) >= 2).then_some(()) })
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // Two run, three wait; each release lets one finish and the next start, never more
    // than two at once.
    let completed = |jobs: Vec<oncommit::Job>| jobs.iter().filter(|j| j.state == JobState::Completed).count();
    for released in 1..=5 {
        gate(&key).notify_one();
        loop {
            let jobs = listed().await;
            assert!(running(jobs.clone()) <= 2, "{jobs:?}");
            if completed(jobs) >= released {
                break;
            }
            assert!(Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
    }
    for id in &ids {
        wait_for(&t.db, *id, JobState::Completed).await;
    }
    w.stop().await;
});

backend_test!(pooled async fn retry_after_waits_the_delay_the_task_asked_for(t) {
    create_runs(&t.db).await;
    let id = t.db.enqueue(Later).await.unwrap();
    let w = start(worker(&t.db));
    let waiting = wait_for(&t.db, id, JobState::Retryable).await;
    assert_eq!(waiting.errors[0].error, "the mail server said later");
    let job = wait_for(&t.db, id, JobState::Completed).await;
    let waited = job.attempted_at.unwrap() - waiting.errors[0].at_time();
    assert!(waited >= chrono::Duration::milliseconds(290), "{waited:?}");
    w.stop().await;
});

backend_test!(pooled async fn finished_jobs_are_pruned_after_their_retention(t) {
    create_runs(&t.db).await;
    let done = t.db.enqueue(echo("old")).await.unwrap();
    let keep = t.db.enqueue(Flaky { failures: 99 }).await.unwrap();
    let retention = oncommit::Retention { completed: Duration::ZERO, discarded: Duration::from_secs(3600) };
    let w = start(worker(&t.db).retention(retention).prune_interval(Duration::from_millis(50)));
    let pruned = |id| async move { t.db.jobs().get(id).await.unwrap().is_none().then_some(()) };
    eventually("the completed job to be pruned", || pruned(done)).await;
    // A failed job is kept for its longer retention: once it has failed, a job completed
    // after it is pruned (so a prune ran since), and the failed one is still there.
    wait_for(&t.db, keep, JobState::Failed).await;
    let later = t.db.enqueue(echo("later")).await.unwrap();
    eventually("a later prune", || pruned(later)).await;
    assert!(t.db.jobs().get(keep).await.unwrap().is_some());
    w.stop().await;
});

backend_test!(pooled async fn one_pruning_pass_removes_every_job_past_its_retention(t) {
    // 30,000 jobs completed an hour ago, 2,000 failed ones still within their retention.
    create_runs(&t.db).await;
    crate::it::exec(
        &t.db,
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at) \
         SELECT 'echo', 'default', 0, 25, CASE WHEN g <= 30000 THEN 'completed' ELSE 'failed' END, \
                now() - interval '1 hour' FROM generate_series(1, 32000) AS g",
        "INSERT INTO oncommit_jobs (task, queue, priority, max_attempts, state, finished_at) \
         WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < 32000) \
         SELECT 'echo', 'default', 0, 25, CASE WHEN g <= 30000 THEN 'completed' ELSE 'failed' END, \
                CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 3600000 FROM n",
    )
    .await
    .unwrap();
    let retention = oncommit::Retention { completed: Duration::from_secs(60), discarded: Duration::from_secs(7200) };
    // One pass only (the first, at once): it must not stop at a fixed number of rows.
    let w = start(worker(&t.db).retention(retention).prune_interval(Duration::from_secs(3600)));
    let left = eventually("the completed jobs to be pruned", || async {
        let stats = t.db.jobs().stats().await.unwrap();
        (stats.total[&JobState::Completed] == 0).then_some(stats)
    })
    .await;
    assert_eq!(left.total[&JobState::Failed], 2000, "failed jobs keep their longer retention");
    w.stop().await;
});

/// With autovacuum off (or lagging), the leader vacuums the jobs table once pruning has
/// left enough dead rows, so the space is reused rather than the table growing for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_vacuums_the_jobs_table_when_autovacuum_does_not() {
    let t = oncommit_testing::TestDb::postgres().await;
    create_runs(&t.db).await;
    crate::it::exec(
        &t.db,
        "ALTER TABLE oncommit.jobs SET (autovacuum_enabled = false); \
         INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at) \
         SELECT 'echo', 'default', 0, 25, 'completed', now() - interval '1 hour' FROM generate_series(1, 60000)",
        "",
    )
    .await
    .unwrap();
    let before = t.db.jobs().table_stats().await.unwrap();
    assert_eq!(before.last_vacuum_at, None);
    let retention = oncommit::Retention { completed: Duration::from_secs(1), discarded: Duration::from_secs(1) };
    let w = start(worker(&t.db).retention(retention).prune_interval(Duration::from_millis(100)));
    // Pruning leaves 60,000 dead rows; once the statistics show them, a vacuum follows.
    let vacuumed = eventually("the leader's vacuum", || async {
        Some(t.db.jobs().table_stats().await.unwrap()).filter(|s| s.last_vacuum_at.is_some())
    })
    .await;
    // Every row was pruned: the vacuum hands the table's pages back.
    assert!(vacuumed.bytes < before.bytes / 2, "{before:?} then {vacuumed:?}");
    w.stop().await;
    t.finish().await;
}

/// Claims leave dead entries at the head of the claim index, which every later claim walks
/// until a vacuum removes them, and autovacuum comes at most once a minute: the leader
/// vacuums each time 50,000 dead rows have piled up, however recently it last did (here
/// within seconds, where the pruning interval of an hour would have it wait for two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_vacuums_as_often_as_claims_leave_dead_rows() {
    let t = oncommit_testing::TestDb::postgres().await;
    create_runs(&t.db).await;
    crate::it::exec(&t.db, "ALTER TABLE oncommit.jobs SET (autovacuum_enabled = false)", "").await.unwrap();
    let pool = t.db.pg_pool().unwrap().clone();
    let vacuums = || async {
        let n: i64 =
            sqlx::query_scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'oncommit.jobs'::regclass")
                .fetch_one(&pool)
                .await
                .unwrap();
        n
    };
    // 60,000 dead rows, as 30,000 claimed-and-finished jobs leave.
    let pile = || async {
        crate::it::exec(
            &t.db,
            "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at) \
             SELECT 'echo', 'default', 0, 25, 'completed', now() FROM generate_series(1, 60000); \
             DELETE FROM oncommit.jobs",
            "",
        )
        .await
        .unwrap();
    };
    let w = start(worker(&t.db).prune_interval(Duration::from_secs(3600)));
    for round in 1..=2 {
        let before = vacuums().await;
        pile().await;
        eventually(&format!("vacuum {round}"), || async { (vacuums().await > before).then_some(()) }).await;
    }
    w.stop().await;
    t.finish().await;
}

backend_test!(pooled async fn a_poll_only_worker_still_finds_work(t) {
    create_runs(&t.db).await;
    let w = start(worker(&t.db).poll_only().poll_interval(Duration::from_millis(30)));
    // Enqueued from another pool: no in-process wake-up reaches the worker on PostgreSQL.
    let other = Db::connect(&t.url).await.unwrap();
    let id = other.enqueue(echo("polled")).await.unwrap();
    wait_for(&t.db, id, JobState::Completed).await;
    w.stop().await;
});

backend_test!(pooled async fn cron_jobs_are_enqueued_once_per_occurrence_even_with_two_leaders(t) {
    create_runs(&t.db).await;
    let every_second = || Periodic::cron("every-second", "* * * * * *", || Echo { key: "cron".into() }).unwrap();
    let make = |db: &Db| worker(db).periodic(every_second()).poll_interval(Duration::from_millis(20));
    let started = Instant::now();
    let (a, b) = (start(make(&t.db)), start(make(&t.db)));
    eventually("two cron jobs", || async { (t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().len() >= 2).then_some(()) })
        .await;
    a.stop().await;
    b.stop().await;
    let jobs = t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    let seconds = started.elapsed().as_secs() as usize + 2;
    assert!(jobs.len() <= seconds, "{} jobs in {:?}: an occurrence was enqueued twice", jobs.len(), started.elapsed());
});

/// Every connection of the worker is cut, three times, while it runs: it reconnects, nothing
/// committed is lost, and (transactional completion) no effect is applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_survives_its_connections_being_cut() {
    let t = oncommit_testing::TestDb::postgres().await;
    create_runs(&t.db).await;
    let ids = t.db.enqueue_many((0..200).map(|i| echo(&i.to_string()))).await.unwrap();
    let w = start(worker(&t.db).queue("default", 4).batch_size(5));
    let admin = Db::connect(&oncommit_testing::admin_url()).await.unwrap();
    let cut = || async {
        sqlx::query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
            .bind(t.url.rsplit('/').next().unwrap())
            .execute(admin.pg_pool().unwrap())
            .await
            .unwrap();
    };
    // Counting may itself meet a cut connection: then it just looks again.
    let recorded = || async {
        let pool = t.db.pg_pool().unwrap();
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM runs").fetch_one(pool).await.unwrap_or(0)
    };
    for after in [20, 80, 140] {
        eventually(&format!("{after} jobs recorded"), || async { (recorded().await >= after).then_some(()) }).await;
        cut().await;
    }
    for id in &ids {
        wait_for(&t.db, *id, JobState::Completed).await;
    }
    w.stop().await;
    let mut keys: Vec<String> = runs(&t.db).await.into_iter().map(|(key, _, _)| key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(runs(&t.db).await.len(), 200, "each job's effect exactly once");
    assert_eq!(keys.len(), 200);
    t.finish().await;
}

/// The library path of "a worker waits for its database at start": `Worker::run` over a
/// pool the application made (`Db::from_pool`) to a PostgreSQL that is not up yet. Told to
/// stop while it waits, it returns at once; left to wait, it runs jobs once the server is
/// up and migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_a_pool_waits_for_a_postgres_that_starts_late() {
    let cluster = oncommit_testing::Cluster::init().unwrap();
    let pool = || {
        sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy(&cluster.url())
            .unwrap()
    };
    let db = Db::from_pool(pool());
    let waiting = start(worker(&db).lease(Duration::from_secs(2)));
    // It cannot register: every attempt is refused. Stopped now, it returns at once.
    assert!(!waiting.handle.is_finished());
    let told = Instant::now();
    waiting.stop().await;
    assert!(told.elapsed() < Duration::from_secs(2), "{:?}", told.elapsed());

    let running = start(worker(&db).lease(Duration::from_secs(2)));
    cluster.start().unwrap();
    eventually("the server to take the migrations", || async { db.migrate().await.ok() }).await;
    create_runs(&db).await;
    let id = db.enqueue(echo("late")).await.unwrap();
    wait_for(&db, id, JobState::Completed).await;
    running.stop().await;
}
