//! `oncommit doctor`, read only: each finding provoked on a real database and seen
//! reported, with exit 0 when healthy and 1 when not.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use oncommit::Backend;
use oncommit_testing::{PgBouncer, TestDb, backend_test};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use support::{migrated, unmigrated};

/// `oncommit doctor --json ARGS` on `url`: its exit code and its findings by check.
fn doctor(url: &str, args: &[&str]) -> (Option<i32>, serde_json::Map<String, Value>) {
    let out = unmigrated(url, &[&["doctor", "--json"], args].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    let findings =
        report["findings"].as_array().unwrap().iter().map(|f| (f["check"].as_str().unwrap().to_owned(), f.clone()));
    (out.status.code(), findings.collect())
}

fn verdict(findings: &serde_json::Map<String, Value>, check: &str) -> String {
    findings[check]["verdict"].as_str().unwrap().to_owned()
}

async fn exec(t: &TestDb, sql: &str) {
    let mut conn = t.db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(c).await.map(drop)).unwrap();
}

backend_test!(async fn the_doctor_finds_a_missing_schema_a_missing_index_a_stale_lease_and_a_skewed_clock(t) {
    let url = t.url.clone();
    // No schema: a finding, not a refusal.
    let (code, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(findings["schema"]["summary"].as_str().unwrap().contains("run `oncommit migrate`"), "{findings:?}");

    let url = t.url.clone();
    let (code, findings) = tokio::task::spawn_blocking(move || {
        migrated(&url);
        doctor(&url, &[])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "healthy: {findings:?}");
    for check in ["schema", "schema_drift", "invalid_indexes", "jobs_table", "vacuum_horizon", "stale_leases", "worker_clocks"] {
        assert_eq!(verdict(&findings, check), "ok", "{check}: {:?}", findings[check]);
    }
    let listen = if t.db.backend() == Backend::Postgres { "ok" } else { "note" };
    assert_eq!(verdict(&findings, "listen"), listen, "{:?}", findings["listen"]);

    let (jobs, workers, index, past) = match t.db.backend() {
        Backend::Postgres => ("oncommit.jobs", "oncommit.workers", "oncommit.jobs_pending", "now() - interval '2 minutes'"),
        Backend::Sqlite => (
            "oncommit_jobs",
            "oncommit_workers",
            "oncommit_jobs_pending",
            "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - 120000",
        ),
    };
    exec(t, &format!("DROP INDEX {index}")).await;
    exec(
        t,
        &format!(
            "INSERT INTO {jobs} (task, queue, priority, max_attempts, state, attempt, lease_owner, lease_expires_at) \
             VALUES ('noop', 'default', 0, 25, 'running', 1, 'gone', {past})"
        ),
    )
    .await;
    exec(t, &format!("INSERT INTO {workers} (id, hostname, pid, queues, clock_offset_ms) VALUES ('skewed', 'h', 1, '{{}}', 5000)"))
        .await;
    let url = t.url.clone();
    let (code, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(verdict(&findings, "schema_drift"), "problem");
    let missing = findings["schema_drift"]["details"]["missing"].to_string();
    assert!(missing.contains("jobs_pending"), "{missing}");
    assert_eq!(findings["stale_leases"]["details"]["count"], 1, "{:?}", findings["stale_leases"]);
    assert!(findings["worker_clocks"]["summary"].as_str().unwrap().contains("skewed (+5000 ms)"), "{:?}", findings["worker_clocks"]);
    for check in ["schema_drift", "stale_leases", "worker_clocks"] {
        assert!(findings[check]["advice"].is_string(), "{check} says what to do");
    }
});

backend_test!(async fn the_doctor_finds_jobs_finishing_where_no_partition_of_the_history_was_made(t) {
    let url = t.url.clone();
    let (_, findings) = tokio::task::spawn_blocking(move || {
        migrated(&url);
        doctor(&url, &[])
    })
    .await
    .unwrap();
    if t.db.backend() == Backend::Sqlite {
        assert_eq!(verdict(&findings, "history"), "note", "{:?}", findings["history"]);
        return;
    }
    assert_eq!(verdict(&findings, "history"), "ok", "nothing finished yet: {:?}", findings["history"]);
    // A job that finished now, with no partition made (no leader ran): its default partition.
    exec(
        t,
        "INSERT INTO oncommit.job_history (id, queue, task, args, state, priority, attempt, max_attempts, run_at, \
                                           created_at, finished_at, cancel_requested, errors, has_dependants) \
         VALUES (nextval('oncommit.jobs_id_seq'), 'q', 't', '{}', 'completed', 0, 1, 25, now(), now(), now(), false, '[]', false)",
    )
    .await;
    let url = t.url.clone();
    let (code, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(verdict(&findings, "history"), "problem", "{:?}", findings["history"]);
    assert!(findings["history"]["summary"].as_str().unwrap().contains("completed"), "{:?}", findings["history"]);
    // Partitions made ahead (as a leader would): healthy again.
    exec(
        t,
        "CREATE TABLE oncommit.job_history_completed_ahead PARTITION OF oncommit.job_history_completed \
             FOR VALUES FROM (now() + interval '1 minute') TO (now() + interval '2 hours')",
    )
    .await;
    let url = t.url.clone();
    let (_, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(verdict(&findings, "history"), "ok", "{:?}", findings["history"]);
    assert_eq!(findings["history"]["details"]["completed"]["partitions"], 1);
});

/// What only PostgreSQL has: a session idle in a transaction holding back vacuum, an INVALID
/// index, and a transaction pooler the URL does not announce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_names_the_transaction_holding_vacuum_back_an_invalid_index_and_an_unannounced_pooler() {
    let t = TestDb::postgres().await;
    let url = t.url.clone();
    tokio::task::spawn_blocking(move || migrated(&url)).await.unwrap();
    let mut idle = PgConnection::connect(&t.url).await.unwrap();
    sqlx::raw_sql("SET application_name = 'forgotten report'; BEGIN; SELECT txid_current()")
        .execute(&mut idle)
        .await
        .unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut idle).await.unwrap();
    exec(&t, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'oncommit.jobs_workflow'::regclass").await;
    let url = t.url.clone();
    let (code, findings) =
        tokio::task::spawn_blocking(move || doctor(&url, &["--transaction-age", "0"])).await.unwrap();
    assert_eq!(code, Some(1));
    let horizon = findings["vacuum_horizon"]["summary"].as_str().unwrap();
    assert!(horizon.contains(&format!("session {pid} (forgotten report, idle in transaction)")), "{horizon}");
    assert_eq!(findings["invalid_indexes"]["details"], serde_json::json!(["oncommit.jobs_workflow"]));
    assert_eq!(verdict(&findings, "pooler"), "ok");
    sqlx::raw_sql("ROLLBACK").execute(&mut idle).await.unwrap();
    exec(&t, "UPDATE pg_index SET indisvalid = true WHERE indexrelid = 'oncommit.jobs_workflow'::regclass").await;

    // Through PgBouncer in transaction mode, without `pooler=transaction` in the URL: it
    // refuses a startup parameter sqlx sends, so connecting says so.
    let name = t.url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let bouncer = PgBouncer::start(&t.url, &["default_pool_size = 4"]).unwrap();
    let url = bouncer.url(&name);
    let (code, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(verdict(&findings, "pooler"), "problem", "{findings:?}");
    assert!(findings["pooler"]["advice"].as_str().unwrap().contains("pooler=transaction"));
    drop(bouncer);
    // One that takes it (as Supavisor and RDS Proxy do): one connection's statements land
    // on different server sessions, which the doctor sees.
    let bouncer =
        PgBouncer::start(&t.url, &["default_pool_size = 4", "ignore_startup_parameters = extra_float_digits"]).unwrap();
    let url = bouncer.url(&name);
    let (code, findings) = tokio::task::spawn_blocking(move || doctor(&url, &[])).await.unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(verdict(&findings, "pooler"), "problem", "{findings:?}");
    assert!(findings["pooler"]["summary"].as_str().unwrap().contains("different server sessions"), "{findings:?}");
    drop(bouncer);
    t.finish().await;
}
