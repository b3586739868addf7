//! `oncommit enqueue --depends-on`, `--concurrency-key` and `oncommit workflow ID` from the shell.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::{JobId, JobState, Step, Workflow};
use oncommit_testing::backend_test;
use serde_json::json;
use support::{json, oncommit};

backend_test!(async fn dependants_and_workflows_from_the_shell(t) {
    t.db.migrate().await.unwrap();
    let flow = Workflow::named("shell").then(Step::raw("a", json!({}))).then_all([Step::raw("b", json!({})), Step::raw("c", json!({}))]);
    let ids = t.db.enqueue_workflow(flow).await.unwrap();
    let url = t.url.clone();
    let id = ids.id.clone();
    let (child, first) = tokio::task::spawn_blocking(move || {
        let v = json(&url, &["workflow", &id, "--json"]);
        assert_eq!(v["jobs"].as_array().unwrap().len(), 3, "{v}");
        assert_eq!(v["jobs"][1]["job"]["state"], "pending");
        let text = String::from_utf8(oncommit(&url, &["workflow", &id]).stdout).unwrap();
        assert!(text.contains("3 jobs, 2 pending, 1 available"), "{text}");
        assert!(text.lines().nth(2).unwrap().starts_with("    "), "a second-stage step is indented deeper: {text}");
        let out = oncommit(&url, &["workflow", "missing"]);
        assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

        let first = json(&url, &["enqueue", "noop", "--json"])["id"].as_i64().unwrap();
        let child = json(&url, &["enqueue", "noop", "--depends-on", &first.to_string(), "--json"])["id"].as_i64().unwrap();
        let out = oncommit(&url, &["enqueue", "noop", "--depends-on", "987654"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("no job 987654"), "{stderr}");
        let out = oncommit(&url, &["enqueue", "noop", "--run-after-failed-parents"]);
        assert_eq!(out.status.code(), Some(2));
        // A concurrency key: the second job of the key waits for the first.
        let keyed = ["enqueue", "noop", "--concurrency-key", "customer:7", "--key-limit", "1", "--json"];
        let first_keyed = json(&url, &keyed)["id"].as_i64().unwrap();
        let second_keyed = json(&url, &keyed)["id"].as_i64().unwrap();
        let v = json(&url, &["job", &second_keyed.to_string(), "--json"]);
        assert_eq!(v["state"], "pending", "{v}");
        let v = json(&url, &["job", &first_keyed.to_string(), "--json"]);
        assert_eq!(v["state"], "available", "{v}");
        let out = oncommit(&url, &["enqueue", "noop", "--key-limit", "2"]);
        assert_eq!(out.status.code(), Some(2));
        (child, first)
    })
    .await
    .unwrap();
    assert_eq!(t.db.jobs().get(JobId(child)).await.unwrap().unwrap().state, JobState::Pending);
    assert_eq!(t.db.jobs().get(JobId(first)).await.unwrap().unwrap().state, JobState::Available);
});
