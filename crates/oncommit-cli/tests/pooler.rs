//! oncommit through PgBouncer in transaction pooling mode, with its stock settings (no
//! `ignore_startup_parameters`, no prepared-statement support), as managed deployments run
//! it: the CLI, `serve` and worker processes work with `pooler=transaction`; met without it,
//! the pooler is named in a configuration error (exit 2); SQL producers and workers killed
//! mid-run still run every committed job exactly once; and nothing a worker sets leaks to
//! the next client of a server connection.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::process::{Child, Command, Stdio};

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Db, DbOptions, JobState, Pooler};
use oncommit_testing::{PgBouncer, TestDb, eventually};
use support::{KillOnDrop, json, oncommit};

/// A fresh database on the test server, and a PgBouncer in front of that server.
async fn pooled() -> (TestDb, PgBouncer, String) {
    let t = TestDb::postgres().await;
    let bouncer = PgBouncer::start(&t.url, &["max_client_conn = 400", "default_pool_size = 20"]).unwrap();
    let name = t.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let url = format!("{}?pooler=transaction", bouncer.url(&name));
    (t, bouncer, url)
}

/// An `oncommit worker` process through the pooler (`listen` a direct URL for LISTEN).
fn worker(url: &str, listen: Option<&str>, concurrency: usize) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oncommit"));
    cmd.args(["worker", "--concurrency", &concurrency.to_string(), "--lease-ms", "1500", "--poll-ms", "100"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(listen) = listen {
        cmd.args(["--listen-url", listen]);
    }
    cmd.spawn().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooler_the_url_does_not_announce_is_a_configuration_error() {
    let (t, bouncer, pooled_url) = pooled().await;
    let unannounced = pooled_url.replace("?pooler=transaction", "");
    for args in [&["stats"][..], &["migrate"], &["worker", "--connect-timeout", "5"]] {
        let out = oncommit(&unannounced, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("pooler=transaction"), "{args:?}: {stderr}");
    }
    drop(bouncer);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_through_a_transaction_pooler() {
    let (t, bouncer, url) = pooled().await;
    let migrated = json(&url, &["migrate", "--demo", "--json"]);
    assert_eq!(migrated["migrated"], true);
    let id = json(&url, &["enqueue", "noop", "--queue", "mail", "--json"])["id"].as_i64().unwrap();
    json(&url, &["enqueue", "noop", "--queue", "mail", "--json"]);
    let stats = json(&url, &["stats", "--json"]);
    assert_eq!(stats["queues"]["mail"]["available"], 2, "{stats}");
    let jobs = json(&url, &["jobs", "--queue", "mail", "--json"]);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    assert_eq!(json(&url, &["job", &id.to_string(), "--json"])["state"], "available");
    json(&url, &["cancel", &id.to_string(), "--json"]);
    assert_eq!(json(&url, &["job", &id.to_string(), "--json"])["state"], "cancelled");
    json(&url, &["queue", "pause", "mail", "--json"]);
    let queues = json(&url, &["queues", "--json"]);
    assert!(queues.to_string().contains("\"paused\":true"), "{queues}");
    // The bench measures the server: refused at the door through the pooler, rather than
    // its raw twins failing on the pooler's shared prepared statements (and hanging).
    let bench = oncommit(&url, &["bench", "--backlog", "100"]);
    let stderr = String::from_utf8_lossy(&bench.stderr);
    assert_eq!(bench.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("direct URL"), "{stderr}");
    drop(bouncer);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_and_runs_jobs_through_a_transaction_pooler() {
    let (t, bouncer, url) = pooled().await;
    let (_server, addr) = support::serve(&url);
    // The seeds' scenario: a row and its job in one request's transaction, the job run by
    // serve's own worker (polling: no listen URL).
    let (status, body) = support::request(&addr, "POST", "/data/transactional?name=pooled", &addr);
    assert_eq!(status, 200, "{body}");
    let db = Db::connect(&t.url).await.unwrap();
    eventually("the scenario's job to complete", || async {
        let jobs =
            db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
        (!jobs.is_empty() && jobs.iter().all(|j| j.state == JobState::Completed)).then_some(())
    })
    .await;
    let (status, body) = support::request(&addr, "GET", "/dashboard/api/overview", &addr);
    assert_eq!(status, 200, "{body}");
    drop(bouncer);
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_run_behind_a_pooler_run_every_committed_job_once() {
    let (t, bouncer, url) = pooled().await;
    oncommit_demo::schema::migrate(&t.db).await.unwrap();
    // SQL producers through the pooler, each job committed in its own transaction.
    // The pooler said in the options rather than the URL.
    let unannounced = url.replace("?pooler=transaction", "");
    let options = DbOptions { pooler: Some(Pooler::Transaction), ..DbOptions::default() };
    let producer = Db::connect_with(&unannounced, options).await.unwrap();
    assert_eq!(producer.pooler(), Pooler::Transaction);
    let mut workers = vec![KillOnDrop(Some(worker(&url, Some(&t.url), 4))), KillOnDrop(Some(worker(&url, None, 4)))];
    let total = 300;
    let mut produced = Vec::new();
    for chunk in 0..3 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let producer = producer.clone();
                tokio::spawn(async move {
                    let key = format!("k{}", chunk * 100 + i);
                    oncommit::atomic!(&producer, |tx| {
                        Ok(oncommit::with_conn!(tx.conn(), c => {
                            sqlx::query_scalar::<_, i64>(
                                "SELECT oncommit.enqueue('record', jsonb_build_object('key', $1::text, 'ms', 20))",
                            )
                            .bind(&key)
                            .fetch_one(c)
                            .await?
                        }))
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for task in tasks {
            produced.push(task.await.unwrap());
        }
        if chunk == 1 {
            // SIGKILL the worker with the direct LISTEN URL once it holds a job.
            let victim = workers[0].0.as_ref().unwrap().id();
            eventually("the first worker to hold a job", || async {
                let jobs =
                    t.db.jobs()
                        .list(&JobSelection::default(), &PageRequest::default())
                        .await
                        .map(|page| page.jobs)
                        .unwrap();
                jobs.iter()
                    .any(|j| {
                        j.state == JobState::Running
                            && j.lease_owner.as_deref().is_some_and(|o| o.contains(&format!("-{victim}-")))
                    })
                    .then_some(())
            })
            .await;
            let mut killed = workers[0].0.take().unwrap();
            killed.kill().unwrap();
            killed.wait().unwrap();
            workers.push(KillOnDrop(Some(worker(&url, Some(&t.url), 4))));
        }
    }
    assert_eq!(produced.len(), total);
    let pool = t.db.pg_pool().unwrap();
    eventually("every committed job to complete", || async {
        let completed: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.all_jobs WHERE state = 'completed'")
            .fetch_one(pool)
            .await
            .ok()?;
        (completed == total as i64).then_some(())
    })
    .await;
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM demo_runs").fetch_one(pool).await.unwrap();
    assert_eq!((rows, distinct), (total as i64, total as i64), "each job's effect exactly once");
    drop(workers);
    drop(producer);

    // Nothing a worker set (timeouts, planner settings) is left on the server sessions the
    // pooler hands to the next clients.
    let plain = url.replace("?pooler=transaction", "?pooler=transaction&application_name=probe");
    for _ in 0..25 {
        let probe = Db::connect(&plain).await.unwrap();
        let settings: (String, String, String, String) = oncommit::atomic!(&probe, |tx| {
            Ok(oncommit::with_conn!(tx.conn(), c => {
                sqlx::query_as(
                    "SELECT current_setting('statement_timeout'), current_setting('enable_seqscan'), \
                     current_setting('idle_in_transaction_session_timeout'), current_setting('enable_hashjoin')",
                )
                .fetch_one(c)
                .await?
            }))
        })
        .await
        .unwrap();
        assert_eq!(settings, ("0".into(), "on".into(), "0".into(), "on".into()));
    }
    drop(bouncer);
    t.finish().await;
}
