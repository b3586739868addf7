//! A failover under load: a primary with a synchronous standby, a worker process and `serve`
//! on a multi-host URL (`target_session_attrs=read-write`), SQL producers committing jobs.
//! The primary crashes (`pg_ctl stop -m immediate`) and the standby is promoted: the worker
//! runs jobs and `serve` answers writes on the new primary within seconds; the old primary,
//! rewound and back as a standby first in the host list, never captures them; every
//! committed job runs exactly once, and a job whose COMMIT failed is wholly present (and run
//! once) or wholly absent.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oncommit::{Db, Error};
use oncommit_testing::{ReplicatedPair, eventually};
use support::KillOnDrop;

/// What the producer learnt of each job it tried to commit, by key.
#[derive(Default)]
struct Produced {
    committed: Vec<String>,
    /// The COMMIT's outcome is unknown (the connection broke during it).
    unknown: Vec<String>,
}

/// Commits `record` jobs one per transaction until `stop`, as an application would, retrying
/// a key whose transaction surely did not commit.
async fn produce(db: Db, produced: Arc<Mutex<Produced>>, stop: Arc<std::sync::atomic::AtomicBool>) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let key = format!("k{n}");
        let result = oncommit::atomic!(&db, |tx| {
            Ok(oncommit::with_conn!(tx.conn(), c => {
                sqlx::query_scalar::<_, i64>("SELECT oncommit.enqueue('record', jsonb_build_object('key', $1::text, 'ms', 10))")
                    .bind(&key)
                    .fetch_one(c)
                    .await?
            }))
        })
        .await;
        match result {
            Ok(_) => produced.lock().unwrap().committed.push(key),
            Err(Error::CommitOutcomeUnknown(_)) => produced.lock().unwrap().unknown.push(key),
            // Not committed (refused, or lost before COMMIT): the next key.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        n += 1;
    }
}

/// Rows of `sql` (one count) on the server at `url`, or `None` while it does not answer.
async fn count(url: &str, sql: &'static str) -> Option<i64> {
    let db = Db::connect(url).await.ok()?;
    let n = db.pg_pool()?.acquire().await.ok()?;
    let mut n = n;
    sqlx::query_scalar(sql).fetch_one(&mut *n).await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_serve_follow_a_failover_and_run_every_committed_job_once() {
    let pair = ReplicatedPair::start().unwrap();
    let (first, second) = (pair.first, pair.second);
    let setup = Db::connect(&pair.url(first)).await.unwrap();
    oncommit_demo::schema::migrate(&setup).await.unwrap();
    drop(setup);
    let multi = format!(
        "postgres://postgres@127.0.0.1:{first},127.0.0.1:{second}/postgres?target_session_attrs=read-write&connect_timeout=2"
    );
    let log = pair.dir().join("worker.log");
    let worker = Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["worker", "--concurrency", "4", "--lease-ms", "2000", "--poll-ms", "100"])
        .env("DATABASE_URL", &multi)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _worker = KillOnDrop(Some(worker));
    let (_server, addr) = support::serve(&multi);

    let producer = Db::connect_with(
        &multi,
        oncommit::DbOptions { acquire_timeout: Duration::from_secs(10), ..Default::default() },
    )
    .await
    .unwrap();
    let produced = Arc::new(Mutex::new(Produced::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producing = tokio::spawn(produce(producer, produced.clone(), stop.clone()));

    // Some jobs run on the first primary.
    eventually("jobs to run before the failover", || async {
        (count(&pair.url(first), "SELECT count(*) FROM demo_runs").await? >= 20).then_some(())
    })
    .await;

    pair.crash(first).unwrap();
    pair.promote(second).unwrap();
    let promoted = Instant::now();
    let ran_before = count(&pair.url(second), "SELECT count(*) FROM demo_runs").await.unwrap();

    // The worker runs jobs on the new primary within seconds.
    eventually("a job to run on the new primary", || async {
        (count(&pair.url(second), "SELECT count(*) FROM demo_runs").await? > ran_before).then_some(())
    })
    .await;
    let first_job_after = promoted.elapsed();

    // serve answers writes there.
    eventually("serve to answer a write after the failover", || async {
        let addr = addr.clone();
        let answer = tokio::task::spawn_blocking(move || {
            support::request(&addr, "POST", "/data/transactional?name=after", &addr)
        });
        (answer.await.ok()?.0 == 200).then_some(())
    })
    .await;
    let serve_after = promoted.elapsed();

    // The old primary comes back, rewound, as a standby, first in the host list.
    pair.rejoin_as_standby(first, second).unwrap();
    let rejoined = count(&pair.url(second), "SELECT count(*) FROM oncommit.all_jobs").await.unwrap();
    eventually("producers to commit after the old primary came back", || async {
        (count(&pair.url(second), "SELECT count(*) FROM oncommit.all_jobs").await? >= rejoined + 20).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producing.await.unwrap();

    // Every committed job runs, exactly once, on the new primary.
    let produced = std::mem::take(&mut *produced.lock().unwrap());
    let new_primary = Db::connect(&pair.url(second)).await.unwrap();
    let pool = new_primary.pg_pool().unwrap();
    eventually("every committed job to complete", || async {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM oncommit.all_jobs WHERE state <> 'completed'")
            .fetch_one(pool)
            .await
            .ok()?;
        (open == 0).then_some(())
    })
    .await;
    let per_key = |sql: &'static str| async move {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(pool).await.unwrap();
        rows.into_iter().collect::<std::collections::HashMap<_, _>>()
    };
    let runs = per_key("SELECT key, count(*) FROM demo_runs WHERE key LIKE 'k%' GROUP BY key").await;
    let jobs = per_key("SELECT args->>'key', count(*) FROM oncommit.all_jobs WHERE task = 'record' GROUP BY 1").await;
    for key in &produced.committed {
        assert_eq!(jobs.get(key), Some(&1), "committed job {key} is there once");
        assert_eq!(runs.get(key), Some(&1), "committed job {key} ran once");
    }
    for key in &produced.unknown {
        let (present, ran) = (jobs.get(key).copied().unwrap_or(0), runs.get(key).copied().unwrap_or(0));
        assert!((present, ran) == (0, 0) || (present, ran) == (1, 1), "{key}: {present} jobs, {ran} runs");
    }
    assert!(runs.values().all(|&n| n == 1), "no job ran twice");
    let worker_log = std::fs::read_to_string(&log).unwrap();
    assert!(worker_log.contains("lost the database server"), "{worker_log}");
    let found =
        worker_log.lines().find(|l| l.contains("found the database server")).unwrap_or_else(|| panic!("{worker_log}"));
    assert!(found.contains(&format!("127.0.0.1:{second}")), "{found}");
    eprintln!(
        "failover: {} jobs committed, {} with unknown outcome; first job on the new primary {:?} after promotion, \
         serve answered a write after {:?}",
        produced.committed.len(),
        produced.unknown.len(),
        first_job_after,
        serve_after
    );
}
