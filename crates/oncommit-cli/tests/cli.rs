//! The `oncommit` binary, run as a user runs it: its JSON is a public interface.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::process::{Command, Output};

use oncommit_testing::backend_test;
use serde_json::Value;

fn oncommit(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run the oncommit binary")
}

fn json(url: &str, args: &[&str]) -> Value {
    let out = oncommit(url, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON object on one line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

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

#[test]
fn bad_urls_and_unreachable_servers_are_clear_errors() {
    let out = oncommit("mysql://localhost/x", &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid database url") && err.contains("unknown scheme `mysql`"), "{err}");

    let out = oncommit("postgres://postgres:secret@127.0.0.1:1/x", &["migrate"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the postgres server at 127.0.0.1:1"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}
