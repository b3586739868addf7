//! `oncommit enqueue --unique …`: unique jobs by content from the shell.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::JobId;
use oncommit_testing::backend_test;
use serde_json::json;
use support::{json, oncommit};

fn id(url: &str, args: &[&str]) -> i64 {
    json(url, args)["id"].as_i64().unwrap()
}

backend_test!(async fn enqueue_unique_returns_the_existing_job_or_replaces_it(t) {
    let url = t.url.clone();
    let (first, debounced) = tokio::task::spawn_blocking(move || {
        let report = ["enqueue", "report", "--args", r#"{"customer": 7, "page": 1}"#, "--json"];
        let first = id(&url, &[&report[..], &["--unique", "args"]].concat());
        assert_eq!(id(&url, &[&report[..], &["--unique", "args"]].concat()), first);
        let other_page = ["enqueue", "report", "--args", r#"{"customer": 7, "page": 2}"#, "--json"];
        assert_ne!(id(&url, &[&other_page[..], &["--unique", "args"]].concat()), first);
        assert_eq!(
            id(&url, &[&other_page[..], &["--unique", "args:customer", "--unique-period", "1h"]].concat()),
            id(&url, &[&report[..], &["--unique", "args:customer", "--unique-period", "1h"]].concat()),
        );
        // A debounce: the waiting job takes the latest arguments.
        let digest = |n: i64| {
            let args = json!({ "user": 1, "n": n }).to_string();
            id(&url, &["enqueue", "digest", "--args", &args, "--delay-ms", "60000", "--unique", "args:user",
                       "--unique-states", "scheduled,available", "--replace", "--json"])
        };
        let debounced = digest(1);
        assert_eq!(digest(2), debounced);

        for (args, says) in [
            (vec!["enqueue", "x", "--unique", "bogus"], "write args"),
            (vec!["enqueue", "x", "--unique", "args", "--unique-period", "5"], "write a period"),
            (vec!["enqueue", "x", "--replace"], "--unique"),
            (vec!["enqueue", "x", "--unique-key", "k", "--unique", "args"], "cannot be used with"),
            (vec!["enqueue", "x", "--args", "[1]", "--unique", "args:a"], "JSON object"),
        ] {
            let out = oncommit(&url, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(stderr.contains(says), "{args:?}: {stderr}");
        }
        (first, debounced)
    })
    .await
    .unwrap();
    assert_eq!(t.db.jobs().get(JobId(first)).await.unwrap().unwrap().task, "report");
    let digest = t.db.jobs().get(JobId(debounced)).await.unwrap().unwrap();
    assert_eq!(digest.args, json!({ "user": 1, "n": 2 }));
});
