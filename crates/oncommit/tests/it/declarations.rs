//! Options a task declares apply however its jobs are enqueued: explicit option > the task's
//! declaration (recorded by the workers that register it) > the default, on both backends.

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Backend, Db, EnqueueOptions, Error, Job, JobState, Task, TaskContext, TaskError, TaskOptions};
use oncommit_testing::{backend_test, eventually};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::exec;
use super::tasks::{create_runs, start, wait_for, worker};

/// Declares every option away from its default; never run here.
#[derive(Serialize, Deserialize)]
struct Routed;

impl Task for Routed {
    const NAME: &'static str = "routed";
    fn options() -> TaskOptions {
        TaskOptions::default().queue("routed").priority(4).max_attempts(2)
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Declares a queue no worker could be told to serve.
#[derive(Serialize, Deserialize)]
struct Unservable;

impl Task for Unservable {
    const NAME: &'static str = "unservable";
    fn options() -> TaskOptions {
        TaskOptions::default().queue("a:b")
    }
    async fn run(self, _cx: &mut TaskContext) -> Result<(), TaskError> {
        Ok(())
    }
}

/// Starts a worker that registers `Routed` (and the usual test tasks) and waits until its
/// declarations are recorded.
async fn declared(db: &Db) -> super::tasks::Running {
    let running = start(worker(db).register::<Routed>());
    eventually("the declarations to be recorded", || async {
        let tasks = db.workers().tasks().await.unwrap();
        tasks.iter().any(|t| t.task == "routed").then_some(())
    })
    .await;
    running
}

/// The newest job's queue, priority and attempts, as stored.
async fn options_of(db: &Db, id: oncommit::JobId) -> (String, i16, i32) {
    let job: Job = db.jobs().get(id).await.unwrap().unwrap();
    (job.queue, job.priority, job.max_attempts)
}

/// The id of the job a plain SQL statement just inserted.
async fn last_job(db: &Db) -> oncommit::JobId {
    let jobs = db.jobs().list(&JobSelection::default(), &PageRequest::newest(1)).await.map(|page| page.jobs).unwrap();
    jobs[0].id
}

backend_test!(pooled async fn declarations_are_recorded_by_workers(t) {
    create_runs(&t.db).await;
    let running = declared(&t.db).await;
    let tasks = t.db.workers().tasks().await.unwrap();
    let routed = tasks.iter().find(|d| d.task == "routed").unwrap();
    assert_eq!((routed.queue.as_str(), routed.priority, routed.max_attempts), ("routed", 4, 2));
    let flaky = tasks.iter().find(|d| d.task == "flaky").unwrap();
    assert_eq!((flaky.queue.as_str(), flaky.max_attempts), ("default", 3));
    assert_eq!(routed.declared_by, t.db.workers().list().await.unwrap()[0].id);
    running.stop().await;
});

backend_test!(pooled async fn raw_enqueues_take_the_declaration(t) {
    create_runs(&t.db).await;
    let running = declared(&t.db).await;
    let none = EnqueueOptions::new();

    // From Rust by name, as the CLI does.
    let id = t.db.enqueue_raw("routed", &json!({}), none.clone()).await.unwrap();
    assert_eq!(options_of(&t.db, id).await, ("routed".into(), 4, 2));
    // An explicit option wins over the declaration; the others still apply.
    let id = t.db.enqueue_raw("routed", &json!({}), none.clone().queue("elsewhere").max_attempts(7)).await.unwrap();
    assert_eq!(options_of(&t.db, id).await, ("elsewhere".into(), 4, 7));
    // A task nobody declared gets the defaults.
    let id = t.db.enqueue_raw("nobody_declares_me", &json!({}), none.clone()).await.unwrap();
    assert_eq!(options_of(&t.db, id).await, ("default".into(), 0, 25));

    // From plain SQL, the way other languages enqueue.
    exec(&t.db, "SELECT oncommit.enqueue('routed')", "INSERT INTO oncommit_jobs (task) VALUES ('routed')").await.unwrap();
    assert_eq!(options_of(&t.db, last_job(&t.db).await).await, ("routed".into(), 4, 2));
    exec(
        &t.db,
        "SELECT oncommit.enqueue('routed', priority => 1)",
        "INSERT INTO oncommit_jobs (task, priority) VALUES ('routed', 1)",
    )
    .await
    .unwrap();
    assert_eq!(options_of(&t.db, last_job(&t.db).await).await, ("routed".into(), 1, 2));
    exec(
        &t.db,
        "INSERT INTO oncommit.jobs (task, max_attempts) VALUES ('routed', 9)",
        "INSERT INTO oncommit_jobs (task, max_attempts) VALUES ('routed', 9)",
    )
    .await
    .unwrap();
    assert_eq!(options_of(&t.db, last_job(&t.db).await).await, ("routed".into(), 4, 9));
    exec(&t.db, "SELECT oncommit.enqueue('nobody')", "INSERT INTO oncommit_jobs (task) VALUES ('nobody')").await.unwrap();
    assert_eq!(options_of(&t.db, last_job(&t.db).await).await, ("default".into(), 0, 25));
    // Several rows in one statement each take their own task's declaration.
    exec(
        &t.db,
        "INSERT INTO oncommit.jobs (task) VALUES ('routed'), ('nobody')",
        "INSERT INTO oncommit_jobs (task) VALUES ('routed'), ('nobody')",
    )
    .await
    .unwrap();
    let two = t.db.jobs().list(&JobSelection::default(), &PageRequest::newest(2)).await.map(|page| page.jobs).unwrap();
    let got: Vec<_> = two.iter().map(|j| (j.task.as_str(), j.queue.as_str(), j.max_attempts)).collect();
    assert_eq!(got, [("nobody", "default", 25), ("routed", "routed", 2)]);

    // A unique key still finds the job it names.
    let first = t.db.enqueue_raw("routed", &json!({}), none.clone().unique_key("u")).await.unwrap();
    let again = t.db.enqueue_raw("routed", &json!({}), none.clone().unique_key("u")).await.unwrap();
    assert_eq!(first, again);
    running.stop().await;
});

backend_test!(pooled async fn invalid_attempts_are_refused_everywhere(t) {
    create_runs(&t.db).await;
    let zero = EnqueueOptions::new().max_attempts(0);
    let err = t.db.enqueue_raw("routed", &json!({}), zero.clone()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "max_attempts", .. }), "{err}");
    let err = t.db.enqueue_with(Routed, zero).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "max_attempts", .. }), "{err}");
    let err = exec(
        &t.db,
        "SELECT oncommit.enqueue('routed', max_attempts => 0)",
        "INSERT INTO oncommit_jobs (task, max_attempts) VALUES ('routed', 0)",
    )
    .await
    .unwrap_err();
    assert!(err.contains("max_attempts"), "{err}");
    assert!(t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().is_empty());
});

backend_test!(pooled async fn a_job_enqueued_from_sql_gets_the_declared_attempts(t) {
    // Flaky declares 3 attempts; asked to fail 5 times it must end `failed` after its third,
    // where the old default of 25 would have let it complete on its sixth.
    create_runs(&t.db).await;
    let running = declared(&t.db).await;
    exec(
        &t.db,
        "SELECT oncommit.enqueue('flaky', '{\"failures\": 5}')",
        "INSERT INTO oncommit_jobs (task, args) VALUES ('flaky', '{\"failures\": 5}')",
    )
    .await
    .unwrap();
    let id = last_job(&t.db).await;
    let job = wait_for(&t.db, id, JobState::Failed).await;
    assert_eq!((job.attempt, job.max_attempts, job.errors.len()), (3, 3, 3));
    running.stop().await;
});

backend_test!(pooled async fn a_worker_refuses_a_declaration_no_job_could_have(t) {
    create_runs(&t.db).await;
    let (_trigger, shutdown) = oncommit::Shutdown::new();
    let err = worker(&t.db).register::<Unservable>().run(shutdown).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption { option: "queue name", .. }), "{err}");
    assert!(t.db.workers().tasks().await.unwrap().is_empty());
});

/// An existing SQLite database keeps its jobs, their ids and its id counter through the
/// rebuild of the jobs table that lets a left-out option be told from a given one.
#[tokio::test]
async fn sqlite_jobs_survive_the_rebuild() {
    let t = oncommit_testing::TestDb::new(Backend::Sqlite).await;
    t.db.migrate_set(&oncommit::migrate::oncommit_until(4)).await.unwrap();
    for sql in [
        "INSERT INTO oncommit_jobs (task, queue, priority, max_attempts, state) VALUES \
         ('a', 'q1', 2, 5, 'available'), ('b', 'q2', 0, 25, 'completed'), ('c', 'q3', 1, 1, 'failed')",
        // A pruned tail: the counter is past the largest id left.
        "DELETE FROM oncommit_jobs WHERE id = 3",
    ] {
        exec(&t.db, "", sql).await.unwrap();
    }
    t.db.migrate().await.unwrap();
    let jobs = t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    let got: Vec<_> =
        jobs.iter().map(|j| (j.id.0, j.task.as_str(), j.queue.as_str(), j.priority, j.max_attempts, j.state)).collect();
    assert_eq!(got, [(2, "b", "q2", 0, 25, JobState::Completed), (1, "a", "q1", 2, 5, JobState::Available)]);
    let next = t.db.enqueue_raw("d", &json!({}), EnqueueOptions::new()).await.unwrap();
    assert_eq!(next.0, 4, "ids are never reused");
    // The rebuilt table kept its rules: a bad queue is still refused, a future job scheduled.
    let err = exec(&t.db, "", "INSERT INTO oncommit_jobs (task, queue) VALUES ('a', 'x,y')").await.unwrap_err();
    assert!(err.contains("invalid queue name"), "{err}");
    exec(&t.db, "", "INSERT INTO oncommit_jobs (task, run_at) VALUES ('a', 253402300799000)").await.unwrap();
    assert_eq!(
        t.db.jobs().list(&JobSelection::default(), &PageRequest::newest(1)).await.map(|page| page.jobs).unwrap()[0]
            .state,
        JobState::Scheduled
    );
    t.finish().await;
}
