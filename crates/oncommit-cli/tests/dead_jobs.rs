//! Dead jobs handled from the shell: `oncommit retry | cancel | delete` with a selection
//! (`--state`, `--queue`, `--task`, `--since`, `--until`, `--error`), counted first with
//! `--dry-run`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::admin::JobSelection;
use oncommit::{EnqueueOptions, JobState};
use oncommit_testing::backend_test;
use serde_json::json;
use support::{json, oncommit};

backend_test!(async fn dead_jobs_are_selected_counted_and_handled_in_bulk(t) {
    t.db.migrate().await.unwrap();
    let once = EnqueueOptions::new().queue("mail").max_attempts(1);
    for message in ["SMTP: connection refused", "connection refused", "Connection Refused!", "refused", "mailbox full", "mailbox full"] {
        t.db.enqueue_raw("fail", &json!({ "message": message }), once.clone()).await.unwrap();
    }
    let drained = oncommit_demo::tasks::worker(&t.db).queue("mail", 4).drain(10).await.unwrap();
    assert_eq!(drained.failed, 6);

    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let v = json(&url, &["retry", "--state", "failed", "--queue", "mail", "--error", "connection REFUSED", "--dry-run", "--json"]);
        assert_eq!(v, json!({ "action": "retry", "dry_run": true, "matched": 3 }));
        let v = json(&url, &["retry", "--state", "failed", "--search", "MAILBOX", "--priority", "0", "--dry-run", "--json"]);
        assert_eq!(v, json!({ "action": "retry", "dry_run": true, "matched": 2 }), "the dashboard's search, from the shell");
        let v = json(&url, &["retry", "--state", "failed", "--until", "1h", "--json"]);
        assert_eq!(v, json!({ "retried": 0 }), "they failed just now, not an hour ago");
        let v = json(&url, &["retry", "--state", "failed", "--queue", "mail", "--error", "refused", "--since", "1h", "--json"]);
        assert_eq!(v, json!({ "retried": 4 }));
        let v = json(&url, &["cancel", "--state", "available", "--task", "fail", "--json"]);
        assert_eq!(v, json!({ "cancelled": 4, "requested": 0 }));
        let text = String::from_utf8(oncommit(&url, &["delete", "--state", "failed,cancelled", "--dry-run"]).stdout).unwrap();
        assert!(text.contains("6 jobs selected; nothing done"), "{text}");
        let v = json(&url, &["delete", "--state", "failed,cancelled", "--json"]);
        assert_eq!(v, json!({ "deleted": 6 }));

        for (args, code, says) in [
            (vec!["delete", "999"], 3, "no job 999"),
            (vec!["retry"], 2, "--state"),
            (vec!["retry", "5", "--state", "failed"], 2, "cannot be used with"),
            (vec!["retry", "--queue", "mail"], 2, "--state"),
            (vec!["retry", "--state", "failed", "--since", "yesterday"], 2, "give an age"),
            (vec!["cancel", "--state", "dead"], 2, "unknown job state"),
        ] {
            let out = oncommit(&url, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
    })
    .await
    .unwrap();
    assert_eq!(t.db.jobs().count(&JobSelection::new(JobState::ALL)).await.unwrap(), 0);
});

backend_test!(async fn jobs_are_listed_with_the_dashboards_filters_and_cursor(t) {
    t.db.migrate().await.unwrap();
    let mut mail = Vec::new();
    for i in 0..5 {
        let args = json!({ "to": format!("user{i}@example.com") });
        mail.push(t.db.enqueue_raw("send", &args, EnqueueOptions::new().queue("mail").priority(3)).await.unwrap().0);
    }
    t.db.enqueue_raw("charge", &json!({}), EnqueueOptions::new().queue("billing")).await.unwrap();
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let ids = |v: &serde_json::Value| v["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect::<Vec<_>>();
        let first = json(&url, &["jobs", "--queue", "mail", "--limit", "2", "--json"]);
        assert_eq!(ids(&first), vec![mail[4], mail[3]]);
        let cursor = first["next_cursor"].as_i64().unwrap().to_string();
        let next = json(&url, &["jobs", "--queue", "mail", "--limit", "2", "--cursor", &cursor, "--json"]);
        assert_eq!(ids(&next), vec![mail[2], mail[1]]);
        let v = json(&url, &["jobs", "--search", "USER3@", "--json"]);
        assert_eq!(ids(&v), vec![mail[3]]);
        let v = json(&url, &["jobs", "--state", "available,failed", "--priority", "3", "--order", "oldest", "--since", "1h", "--json"]);
        assert_eq!(ids(&v), mail);
        assert_eq!(v["next_cursor"], serde_json::Value::Null);
        let text = String::from_utf8(oncommit(&url, &["jobs", "--task", "send", "--limit", "1"]).stdout).unwrap();
        assert!(text.contains("--cursor"), "the text names the next page: {text}");
        for (args, says) in [
            (vec!["jobs", "--order", "sideways"], "newest or oldest"),
            (vec!["jobs", "--limit", "0"], "0 is not in 1..=1000"),
            (vec!["jobs", "--state", "dead"], "unknown job state"),
            (vec!["jobs", "--since", "yesterday"], "give an age"),
        ] {
            let out = oncommit(&url, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
    })
    .await
    .unwrap();
});

// On a terminal a long command says what it is doing while it runs; piped, it prints only
// its result. (`script` gives the command a terminal.)
backend_test!(async fn long_commands_show_progress_on_a_terminal_only(t) {
    t.db.migrate().await.unwrap();
    // Enough dead jobs for a delete that takes more than a tick.
    let mut conn = t.db.acquire().await.unwrap();
    let insert = "SELECT 'dead', 'failed', {now} FROM ";
    let (pg, lite) = (
        format!("INSERT INTO oncommit.jobs (task, state, finished_at) {} generate_series(1, 150000)", insert.replace("{now}", "now()")),
        format!(
            "INSERT INTO oncommit_jobs (task, state, finished_at) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 150000) {} s",
            insert.replace("{now}", "0")
        ),
    );
    match conn.conn() {
        oncommit::Conn::Postgres(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(pg)).execute(c).await.map(drop),
        oncommit::Conn::Sqlite(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(lite)).execute(c).await.map(drop),
    }
    .unwrap();
    drop(conn);
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || {
        let binary = env!("CARGO_BIN_EXE_oncommit");
        let on_terminal = std::process::Command::new("script")
            .args(["-qec", &format!("{binary} delete --state failed"), "/dev/null"])
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&on_terminal.stdout);
        assert!(on_terminal.status.success(), "{shown}");
        assert!(shown.contains("delete: 150000 jobs selected… "), "{shown:?}");
        assert!(shown.contains("150000 jobs deleted"), "{shown:?}");
        let piped = oncommit(&url, &["delete", "--state", "failed"]);
        let stderr = String::from_utf8_lossy(&piped.stderr);
        assert!(!stderr.contains('…'), "no progress when not on a terminal: {stderr:?}");
    })
    .await
    .unwrap();
});
