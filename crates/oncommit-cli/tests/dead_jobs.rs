//! Dead jobs handled from the shell: `oncommit retry | cancel | delete` with a selection
//! (`--state`, `--queue`, `--task`, `--since`, `--until`, `--error`), counted first with
//! `--dry-run`.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::{EnqueueOptions, JobSelection, JobState};
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
    assert_eq!(t.db.count_jobs(&JobSelection::new(JobState::ALL)).await.unwrap(), 0);
});
