//! A rolling deploy: ten `oncommit migrate` processes start at once on a live table, from
//! the first schema oncommit shipped. Each migration is applied once, by one of them; the
//! others wait for it and then see it done; none fails, none deadlocks.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oncommit::{Backend, Conn};
use oncommit_testing::backend_test;

backend_test!(async fn ten_processes_migrating_at_once_apply_each_step_exactly_once(t) {
    t.db.migrate_set(&oncommit::migrate::oncommit_until(1)).await.unwrap();
    let (jobs, seed) = match t.db.backend() {
        Backend::Postgres => (
            "oncommit.jobs",
            "INSERT INTO oncommit.jobs (task, state) SELECT 'noop', 'completed' FROM generate_series(1, 50000)",
        ),
        Backend::Sqlite => (
            "oncommit_jobs",
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50000) \
             INSERT INTO oncommit_jobs (task, state) SELECT 'noop', 'completed' FROM g",
        ),
    };
    let pool = t.db.clone();
    let run = move |sql: String| {
        let db = pool.clone();
        async move {
            let mut conn = db.acquire().await?;
            oncommit::with_conn!(conn.conn(), c => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(c).await.map(drop))
                .map_err(oncommit::Error::from)
        }
    };
    run(seed.to_owned()).await.unwrap();
    // A producer of the old binary enqueues throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (stop, run) = (stop.clone(), run.clone());
        let insert = format!("INSERT INTO {jobs} (task, queue, priority, max_attempts) VALUES ('noop', 'default', 0, 25)");
        tokio::spawn(async move {
            let mut enqueued = 0;
            while !stop.load(Ordering::Relaxed) {
                run(insert.clone()).await.unwrap();
                enqueued += 1;
            }
            enqueued
        })
    };
    let url = t.url.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..10)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_oncommit"))
                    .arg("migrate")
                    .env("DATABASE_URL", &url)
                    .env("RUST_LOG", "oncommit=info")
                    .env("NO_COLOR", "1")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(producer.await.unwrap() > 0, "the producer went on");

    // Which process applied which migration, from their logs.
    let mut applied: BTreeMap<i64, usize> = BTreeMap::new();
    for out in &outputs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a migrator failed: {stderr}");
        for line in stderr.lines().filter(|l| l.contains("migration applied")) {
            let version = line.split("version=").nth(1).and_then(|v| v.split_whitespace().next()).unwrap();
            *applied.entry(version.parse().unwrap()).or_default() += 1;
        }
    }
    let status = t.db.schema_status().await.unwrap();
    assert!(status.is_current(), "{status}");
    let expected: BTreeMap<i64, usize> = (2..=status.expected).map(|v| (v, 1)).collect();
    assert_eq!(applied, expected, "each migration applied by exactly one process");
    if let Conn::Postgres(c) = t.db.acquire().await.unwrap().conn() {
        let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetch_one(c).await.unwrap();
        assert_eq!(invalid, 0, "no index left INVALID");
    }
});
