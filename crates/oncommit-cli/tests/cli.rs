//! The `oncommit` binary, run as a user runs it: its JSON is a public interface.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::admin::{JobSelection, PageRequest};
use std::process::Command;

use oncommit_testing::backend_test;
use serde_json::Value;
use support::{json, oncommit, unmigrated};

backend_test!(async fn demo_subcommands_print_one_json_object(t) {
    let url = t.url.clone();
    let backend = t.backend().to_string();
    tokio::task::spawn_blocking(move || {
        let out = oncommit(&url, &["migrate"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let v = json(&url, &["demo", "select-for-update", "--hold-ms", "20", "--json"]);
        assert_eq!(v["backend"], backend.as_str());
        assert_eq!(v["hold_ms"], 20);
        assert_eq!(v["blocked"], true);
        assert!(v["waited_ms"].as_u64().is_some(), "{v}");

        let v = json(&url, &["demo", "deadlock", "--json"]);
        let expected_deadlocks = if backend == "postgres" { 1 } else { 0 };
        assert_eq!(v["deadlock_errors"], expected_deadlocks, "{v}");
        assert_eq!(v["with_retry_committed"], true, "{v}");
        assert_eq!(v["ordered_locking_deadlocks"], 0, "{v}");
        if backend == "postgres" {
            assert_eq!(v["victim_error"], "deadlock detected");
        }

        // Every scenario at once: one object, a member each.
        let v = json(&url, &["demo", "--json"]);
        for member in ["select_for_update", "deadlock", "isolation", "race"] {
            assert_eq!(v[member]["backend"], backend.as_str(), "{member}: {v}");
        }

        let v = json(&url, &["demo", "isolation", "--json"]);
        for anomaly in ["lost_update", "write_skew"] {
            let levels: Vec<&str> =
                v[anomaly].as_array().unwrap().iter().map(|o| o["isolation"].as_str().unwrap()).collect();
            assert_eq!(levels, ["read_committed", "repeatable_read", "serializable"]);
        }
    })
    .await
    .unwrap();
});

backend_test!(async fn only_migrate_changes_the_schema_and_other_commands_say_what_to_run(t) {
    // Every table outside SQLite's own: oncommit's and the demo's.
    let tables = || async {
        let mut conn = t.db.acquire().await.unwrap();
        let names: Vec<String> = match conn.conn() {
            oncommit::Conn::Postgres(c) => sqlx::query_scalar(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables \
                 WHERE table_schema IN ('public', 'oncommit') ORDER BY 1",
            )
            .fetch_all(c)
            .await
            .unwrap(),
            oncommit::Conn::Sqlite(c) => {
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY 1")
                    .fetch_all(c)
                    .await
                    .unwrap()
            }
        };
        names
    };
    let run = |args: &'static [&'static str]| {
        let url = t.url.clone();
        async move { tokio::task::spawn_blocking(move || unmigrated(&url, args)).await.unwrap() }
    };
    let refused = |out: std::process::Output, says: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(5), "refused: {stderr}");
        assert!(stderr.contains(says), "{stderr}");
    };
    // A fresh database: every command but `migrate` refuses, and creates nothing.
    for args in [&["stats", "--json"][..], &["jobs"], &["enqueue", "noop"], &["queues"], &["bench", "--jobs", "10"]] {
        refused(run(args).await, "not in this database: run `oncommit migrate`");
    }
    assert_eq!(tables().await, Vec::<String>::new(), "nothing created");

    let out = run(&["migrate"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(tables().await.iter().all(|t| t.contains("oncommit")), "oncommit's tables only: {:?}", tables().await);
    assert!(run(&["stats", "--json"]).await.status.success());
    if t.db.backend() == oncommit::Backend::Postgres {
        refused(run(&["demo", "select-for-update"]).await, "run `oncommit migrate --demo`");
    }
    let out = run(&["migrate", "--demo"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let demo: Vec<String> = tables().await.into_iter().filter(|t| !t.contains("oncommit")).collect();
    assert!(demo.iter().all(|t| ["data", "demo_runs", "socks"].iter().any(|d| t.ends_with(d))) && demo.len() == 3, "{demo:?}");

    // The schema one migration behind this binary: refused, naming `oncommit migrate`.
    let status = t.db.schema_status().await.unwrap();
    assert!(status.is_current(), "{status}");
    let (record, compatibility) = match t.db.backend() {
        oncommit::Backend::Postgres => ("oncommit.schema_migrations", "oncommit.schema_compatibility"),
        oncommit::Backend::Sqlite => ("oncommit_schema_migrations", "oncommit_schema_compatibility"),
    };
    let expected = status.expected;
    let sql = |s: String| async move {
        let mut conn = t.db.acquire().await.unwrap();
        oncommit::with_conn!(conn.conn(), c => sqlx::raw_sql(sqlx::AssertSqlSafe(s)).execute(c).await.map(drop)).unwrap();
    };
    sql(format!("DELETE FROM {record} WHERE set_name = 'oncommit' AND version = {expected}")).await;
    refused(run(&["stats"]).await, &format!("is at oncommit migration {}, this binary needs {expected}", expected - 1));
    // A newer schema that still suits this binary (it only added): used.
    sql(format!("INSERT INTO {record} (set_name, version, name) VALUES ('oncommit', {expected}, 'x'), ('oncommit', {}, 'y')", expected + 1)).await;
    assert!(run(&["stats"]).await.status.success());
    // A newer one that changed what this binary relies on: refused, asking for a newer binary.
    sql(format!("UPDATE {compatibility} SET compatible_from = {} WHERE set_name = 'oncommit'", expected + 1)).await;
    refused(run(&["stats"]).await, &format!("needs a binary that knows migration {} or later", expected + 1));
});

#[test]
fn bad_urls_and_unreachable_servers_are_clear_errors() {
    let out = oncommit("mysql://localhost/x", &["migrate"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid database url") && err.contains("unknown scheme `mysql`"), "{err}");

    let out = oncommit("postgres://postgres:secret@127.0.0.1:1/x", &["migrate"]);
    assert_eq!(out.status.code(), Some(4), "unreachable");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the postgres server at 127.0.0.1:1"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn passwords_never_reach_stderr_whatever_the_url_form() {
    for url in [
        // libpq's key=value form, which oncommit does not take.
        "host=127.0.0.1 user=u password=hunter2 dbname=x",
        "host=127.0.0.1 password='hun ter2' port=1",
        "host=h password=a:hunter2",
        // Unencoded `/` and `?` in the password, and a port misread from it.
        "postgres://u:p/hunter2@127.0.0.1:1/db",
        "postgres://u:p?hunter2@127.0.0.1:1/db",
        "postgres://u:hunter2@127.0.0.1:notaport/db",
        "postgres://u:hunter2:x@127.0.0.1:1/db",
        "postgres://u@127.0.0.1:1/db?password=hunter2&pooler=bogus",
    ] {
        let out = oncommit(url, &["stats"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(2 | 4)), "{url}: {err}");
        for secret in ["hunter2", "hun ter2", "hun"] {
            assert!(!err.contains(secret), "{url}: {err}");
        }
    }
}

backend_test!(async fn exit_codes_tell_not_found_from_refused_and_actions_print_json(t) {
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let v = json(&url, &["migrate", "--json"]);
        assert_eq!(v["migrated"], true, "{v}");
        for args in [&["job", "999"][..], &["retry", "999"], &["cancel", "999"]] {
            let out = oncommit(&url, args);
            assert_eq!(out.status.code(), Some(3), "not found: {args:?}: {out:?}");
        }
        let id = json(&url, &["enqueue", "noop", "--queue", "nobody-serves", "--json"])["id"].as_i64().unwrap().to_string();
        let v = json(&url, &["cancel", &id, "--json"]);
        assert_eq!(v["outcome"], "cancelled", "{v}");
        let out = oncommit(&url, &["cancel", &id]);
        assert_eq!(out.status.code(), Some(5), "refused: {out:?}");
        let v = json(&url, &["retry", &id, "--json"]);
        assert_eq!(v["state"], "available", "{v}");
        let out = oncommit(&url, &["jobs", "--no-such-flag"]);
        assert_eq!(out.status.code(), Some(2), "usage: {out:?}");
        // `--json` is one global flag, before the command or after it.
        let (before, after) = (json(&url, &["--json", "stats"]), json(&url, &["stats", "--json"]));
        assert_eq!((&before["available"], &before["queues"]), (&after["available"], &after["queues"]));
        assert!(json(&url, &["--json", "queue", "pause", "q"])["queue"]["paused"].as_bool().unwrap());
        for service in ["worker", "serve"] {
            let out = oncommit(&url, &[service, "--json"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{service}: {stderr}");
            assert!(stderr.contains("--json is for commands that print a result"), "{stderr}");
        }
    })
    .await
    .unwrap();
});

backend_test!(async fn demo_race_shows_the_race_only_the_naive_way(t) {
    let url = t.url.clone();
    let v = tokio::task::spawn_blocking(move || json(&url, &["demo", "race", "--iterations", "5", "--json"])).await.unwrap();
    for way in ["naive", "on_commit", "transactional"] {
        assert_eq!(v[way]["runs"], 5, "{v}");
    }
    assert!(v["naive"]["task_saw_missing_row"].as_u64().unwrap() >= 1, "the naive way must show the race: {v}");
    assert_eq!(v["on_commit"]["task_saw_missing_row"], 0, "{v}");
    assert_eq!(v["transactional"]["task_saw_missing_row"], 0, "{v}");
    assert_eq!(v["transactional"]["completed"], 5, "{v}");
});

backend_test!(async fn queue_commands_enqueue_list_count_cancel_and_retry(t) {
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let v = json(&url, &["enqueue", "fail", "--args", r#"{"message": "boom"}"#, "--max-attempts", "1", "--json"]);
        let id = v["id"].as_i64().unwrap();
        let id_arg = id.to_string();

        let v = json(&url, &["jobs", "--state", "available", "--json"]);
        assert_eq!(v["jobs"][0]["id"], id, "{v}");
        assert_eq!(v["jobs"][0]["args"]["message"], "boom");

        let v = json(&url, &["stats", "--json"]);
        for state in ["scheduled", "available", "running", "retryable", "completed", "failed", "cancelled"] {
            assert!(v[state].is_i64(), "{state} missing: {v}");
        }
        assert_eq!(v["available"], 1, "{v}");
        assert_eq!(v["queues"]["default"]["available"], 1, "{v}");

        assert!(oncommit(&url, &["cancel", &id_arg]).status.success());
        assert_eq!(json(&url, &["stats", "--json"])["cancelled"], 1);
        assert!(!oncommit(&url, &["cancel", &id_arg]).status.success(), "a finished job cannot be cancelled");

        assert!(oncommit(&url, &["retry", &id_arg]).status.success());
        let v = json(&url, &["job", &id_arg, "--json"]);
        assert_eq!(v["state"], "available", "{v}");

        let out = oncommit(&url, &["enqueue", "noop", "--args", "{not json"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--args is not JSON"));
    })
    .await
    .unwrap();
});

// A worker process killed with SIGKILL mid-job: its job comes back after the lease and
// another worker process runs it; every `record` job is recorded exactly once.
backend_test!(async fn a_worker_killed_mid_job_loses_nothing(t) {
    let url = t.url.clone();
    let worker = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_oncommit"))
            .args(["worker", "--lease-ms", "1000", "--poll-ms", "100", "--concurrency", "4"])
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "error")
            .spawn()
            .expect("start a worker process")
    };
    let db = t.db.clone();
    let v = { let url = url.clone(); tokio::task::spawn_blocking(move || json(&url, &["enqueue", "sleep", "--args", r#"{"ms": 1500}"#, "--json"])).await.unwrap() };
    let sleeper = oncommit::JobId(v["id"].as_i64().unwrap());
    let mut first = worker(&url);
    wait_for_state(&db, sleeper, oncommit::JobState::Running).await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let keys: Vec<String> = (0..10).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        db.enqueue_raw("record", &serde_json::json!({ "key": key }), oncommit::EnqueueOptions::new()).await.unwrap();
    }
    let second = worker(&url);
    let job = wait_for_state(&db, sleeper, oncommit::JobState::Completed).await;
    assert_eq!(job.attempt, 2, "{job:?}");
    assert!(job.errors[0].error.starts_with("lease expired"), "{job:?}");
    let all = db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap();
    for j in &all {
        wait_for_state(&db, j.id, oncommit::JobState::Completed).await;
    }
    let mut conn = db.acquire().await.unwrap();
    let mut recorded: Vec<String> = oncommit::with_conn!(conn.conn(), c => {
        sqlx::query_scalar("SELECT key FROM demo_runs").fetch_all(c).await.unwrap()
    });
    recorded.sort();
    assert_eq!(recorded, keys);

    // SIGTERM: a graceful stop, exit status 0.
    let pid = second.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || { let mut second = second; second.wait() }).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
});

async fn wait_for_state(db: &oncommit::Db, id: oncommit::JobId, state: oncommit::JobState) -> oncommit::Job {
    oncommit_testing::wait_for_job(db, id, state.as_str(), |job| job.state == state).await
}

backend_test!(async fn bench_reports_every_figure(t) {
    let url = t.url.clone();
    let v = tokio::task::spawn_blocking(move || json(&url, &["bench", "--jobs", "300", "--json"])).await.unwrap();
    let mut figures = vec![
        "baseline_claim_complete_jobs_per_sec",
        "end_to_end_jobs_per_sec",
        "end_to_end_vs_baseline",
        "enqueue_batched_jobs_per_sec",
        "enqueue_single_jobs_per_sec",
        "insert_single_raw_jobs_per_sec",
        "enqueue_single_vs_raw",
        "commit_to_start_p50_ms",
        "commit_to_start_p99_ms",
    ];
    // SQL functions and NOTIFY across processes are PostgreSQL's.
    let postgres_only = [
        "enqueue_single_sql_jobs_per_sec",
        "enqueue_single_sql_vs_raw",
        "enqueue_many_sql_jobs_per_sec",
        "insert_select_raw_jobs_per_sec",
        "enqueue_many_sql_vs_raw",
        "commit_to_start_across_processes_p50_ms",
        "commit_to_start_across_processes_p99_ms",
    ];
    match t.backend() {
        oncommit::Backend::Postgres => figures.extend(postgres_only),
        oncommit::Backend::Sqlite => assert!(postgres_only.iter().all(|f| v[f].is_null()), "{v}"),
    }
    for figure in figures {
        assert!(v[figure].as_f64().is_some_and(|x| x > 0.0), "{figure}: {v}");
    }
});

backend_test!(async fn bench_vacuum_pressure_runs_overlapping_readers_and_samples_the_backlog(t) {
    let url = t.url.clone();
    let postgres = t.backend() == oncommit::Backend::Postgres;
    let args = ["bench", "--vacuum-pressure", "--rate", "100", "--reader-secs", "3", "--concurrency", "8", "--json"];
    let out = tokio::task::spawn_blocking(move || oncommit(&url, &args)).await.unwrap();
    if !postgres {
        assert_eq!(out.status.code(), Some(2), "PostgreSQL's: {out:?}");
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"].as_array().unwrap();
    assert!(samples.len() >= 3, "{v}");
    // The readers overlap, and none is left open.
    assert!(samples.iter().any(|s| s["readers"].as_u64().unwrap() >= 2), "{v}");
    assert!(samples.iter().all(|s| s["backlog_secs"].as_f64().is_some() && s["lag_secs"].as_f64().is_some()), "{v}");
    assert!(v["worst_backlog_secs"].as_f64().is_some() && v["baseline_backlog_secs"].as_f64().is_some(), "{v}");
    let db = oncommit::Db::connect(&t.url).await.unwrap();
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND xact_start IS NOT NULL AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(db.pg_pool().unwrap())
    .await
    .unwrap();
    assert_eq!(open, 0, "a reader was left open");
});

backend_test!(async fn bench_breaks_the_one_job_gap_down_step_by_step(t) {
    let url = t.url.clone();
    let postgres = t.backend() == oncommit::Backend::Postgres;
    let out = tokio::task::spawn_blocking(move || oncommit(&url, &["bench", "--breakdown", "--jobs", "48", "--json"]))
        .await
        .unwrap();
    if !postgres {
        assert_eq!(out.status.code(), Some(2), "the SQL function is PostgreSQL's: {out:?}");
        return;
    }
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps[0]["step"], "bare insert");
    assert_eq!(steps[steps.len() - 1]["step"], "tx.enqueue from Rust instead");
    // One step per index of oncommit's table, the triggers, the function and its parts.
    for step in ["+ index jobs_unique_key", "+ its insert triggers (oncommit.jobs)", "+ the sleeping workers checked"] {
        assert!(steps.iter().any(|s| s["step"] == step), "{step}: {v}");
    }
    assert!(steps.iter().all(|s| s["jobs_per_sec"].as_f64().is_some_and(|x| x > 0.0)), "{v}");
    // The added times make up the gap.
    let added: f64 = steps.iter().map(|s| s["added_us"].as_f64().unwrap()).sum();
    let gap = v["gap_us_per_job"].as_f64().unwrap();
    assert!((added - gap).abs() < 1e-6 * gap.abs().max(1.0), "{added} vs {gap}: {v}");
    // The ladder's tables are gone.
    let db = oncommit::Db::connect(&t.url).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'oncommit_bench%'")
        .fetch_one(db.pg_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(left, 0);
});

backend_test!(async fn bench_backlog_drains_with_raw_sql_and_a_worker_process(t) {
    let url = t.url.clone();
    let v = tokio::task::spawn_blocking(move || json(&url, &["bench", "--backlog", "3000", "--concurrency", "8", "--json"]))
        .await
        .unwrap();
    assert_eq!((v["backlog"].as_u64(), v["concurrency"].as_u64()), (Some(3000), Some(8)), "{v}");
    for drain in ["raw", "oncommit"] {
        let d = &v[drain];
        assert!(d["jobs_per_sec"].as_f64().is_some_and(|x| x > 0.0), "{drain}: {v}");
        assert_eq!(d["slices_jobs_per_sec"].as_array().map(Vec::len), Some(10), "{drain}: {v}");
        assert!(d["slowest_vs_fastest_slice"].as_f64().is_some_and(|x| x > 0.0 && x <= 1.0), "{drain}: {v}");
    }
    // The worker holds at most its slots and 1,000 prefetched (one completion batch).
    assert!(v["oncommit"]["peak_running"].as_i64().is_some_and(|n| n <= 8 + 1000), "{v}");
    assert!(v["oncommit_vs_raw"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    // The bench queue is left empty, and the worker process stopped gracefully (a stopping
    // worker removes its row).
    assert!(t.db.jobs().list(&JobSelection::default(), &PageRequest::default()).await.map(|page| page.jobs).unwrap().is_empty());
    assert!(t.db.workers().list().await.unwrap().is_empty());
});

/// A worker started before its database exists waits for it (logging that it does), then
/// runs jobs; SIGTERM stops it while it waits or works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_before_its_database_waits_for_it() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // Not there yet: the directory is missing, so the file cannot be opened.
    let path = dir.path().join("later").join("app.db");
    let url = format!("sqlite://{}", path.display());
    let mut worker = Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["worker", "--migrate", "--poll-ms", "50"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(worker.stderr.take().unwrap()).lines();
    let waiting = tokio::task::spawn_blocking(move || {
        let line = stderr.by_ref().map_while(Result::ok).find(|l| l.contains("waiting for the database"));
        (line, stderr)
    });
    let (line, stderr) = waiting.await.unwrap();
    assert!(line.is_some(), "the worker exited instead of waiting");
    // Drain the rest so the worker never blocks on a full pipe.
    std::thread::spawn(move || stderr.for_each(drop));
    std::fs::create_dir(path.parent().unwrap()).unwrap();
    let db = oncommit_testing::eventually("the worker to create and migrate the database", || async {
        let db = oncommit::Db::connect(&url).await.ok()?;
        db.workers().list().await.ok().filter(|w| !w.is_empty()).map(|_| db)
    })
    .await;
    let id = db.enqueue_raw("noop", &serde_json::json!({}), oncommit::EnqueueOptions::new()).await.unwrap();
    wait_for_state(&db, id, oncommit::JobState::Completed).await;
    assert!(Command::new("kill").args(["-TERM", &worker.id().to_string()]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || worker.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn connect_timeout_bounds_the_wait_for_the_database() {
    let started = std::time::Instant::now();
    let out = oncommit("postgres://postgres@127.0.0.1:1/none", &["worker", "--connect-timeout", "1"]);
    assert_eq!(out.status.code(), Some(4), "unreachable");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("did not answer within --connect-timeout"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

backend_test!(async fn bad_enqueue_options_are_errors_not_panics(t) {
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        for (args, says) in [
            (&["enqueue", "noop", "--max-attempts", "0"][..], "invalid max_attempts"),
            (&["enqueue", "noop", "--delay-ms", "18446744073709551615"][..], "invalid delay"),
            (&["enqueue", "noop", "--queue", "a,b"][..], "invalid queue name"),
        ] {
            let out = oncommit(&url, args);
            assert_eq!(out.status.code(), Some(2), "a usage error: {args:?}: {out:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
    })
    .await
    .unwrap();
});

backend_test!(async fn listings_escape_control_characters_in_stored_text(t) {
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let v = json(&url, &["enqueue", "evil\u{1b}[2J", "--args", r#"{"title": "\u001b]0;pwned\u0007\u009b"}"#, "--json"]);
        let id = v["id"].to_string();
        for args in [&["jobs"][..], &["job", &id][..]] {
            let out = oncommit(&url, args);
            assert!(out.status.success(), "{out:?}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert!(!stdout.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {stdout:?}");
            assert!(stdout.contains(r"evil\u{1b}[2J"), "{stdout}");
        }
    })
    .await
    .unwrap();
});

/// `serve` with a long request sent: the first SIGTERM starts the graceful shutdown; a
/// second one exits at once (130), whatever the shutdown waits for.
#[test]
fn a_second_sigterm_stops_serve_at_once() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["serve", "--addr", "127.0.0.1:0", "--no-worker"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines().map_while(Result::ok);
    let addr = lines
        .by_ref()
        .find_map(|l| l.split("listening on http://").nth(1).map(|rest| rest.split('/').next().unwrap().to_owned()))
        .expect("serve prints its address");
    let mut held = std::net::TcpStream::connect(&addr).unwrap();
    write!(held, "GET /demo/select-for-update?hold_ms=10000 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let term = || assert!(Command::new("kill").args(["-TERM", &serve.id().to_string()]).status().unwrap().success());
    // Once the request holds its lock, the graceful shutdown would wait up to its grace
    // period for it (a request not yet read would just be dropped).
    assert!(lines.by_ref().any(|l| l.contains("A holds the lock")), "the request started");
    term();
    assert!(lines.by_ref().any(|l| l.contains("send another to exit at once")));
    let started = std::time::Instant::now();
    term();
    let status = serve.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    let mut rest = String::new();
    held.read_to_string(&mut rest).ok();
}

backend_test!(async fn cli_enqueues_take_what_the_task_declares(t) {
    // `fail` declares 3 attempts: a job enqueued by name without --max-attempts gets them,
    // not the default 25, once a worker registering it has recorded the declaration.
    let url = t.url.clone();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["worker", "--poll-ms", "100"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "error")
        .spawn()
        .expect("start a worker process");
    let declared = oncommit_testing::eventually("the worker to record its tasks' declarations", || {
        let url = url.clone();
        async move {
            let v = tokio::task::spawn_blocking(move || oncommit(&url, &["tasks", "--json"])).await.unwrap();
            let v: Value = serde_json::from_slice(&v.stdout).ok()?;
            v["tasks"].as_array()?.iter().find(|t| t["task"] == "fail").cloned()
        }
    })
    .await;
    assert_eq!((declared["queue"].as_str(), declared["max_attempts"].as_i64()), (Some("default"), Some(3)));

    let enqueue = |extra: &'static [&'static str]| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["enqueue", "fail", "--args", r#"{"message": "boom"}"#, "--json"];
            args.extend_from_slice(extra);
            oncommit::JobId(json(&url, &args)["id"].as_i64().unwrap())
        })
    };
    let declared = enqueue(&[]).await.unwrap();
    let explicit = enqueue(&["--max-attempts", "1"]).await.unwrap();
    let job = wait_for_state(&t.db, declared, oncommit::JobState::Failed).await;
    assert_eq!((job.attempt, job.max_attempts), (3, 3), "{job:?}");
    let job = wait_for_state(&t.db, explicit, oncommit::JobState::Failed).await;
    assert_eq!((job.attempt, job.max_attempts), (1, 1), "{job:?}");

    let text = { let url = url.clone(); tokio::task::spawn_blocking(move || oncommit(&url, &["tasks"])).await.unwrap() };
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("fail ") && l.contains(" 3 ")), "{text}");
    worker.kill().unwrap();
    worker.wait().unwrap();
});
