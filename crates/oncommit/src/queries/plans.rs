//! The claim and completion statements keep their plans however the statistics stand: on a
//! table with many `running` rows, in a session with the worker's planner settings, both as
//! PostgreSQL plans them for the values bound (custom plan) and as it plans them once for
//! any value (generic plan, what a prepared statement falls back to after five runs).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::PLANNER_SETTINGS;
use crate::db::Db;
use crate::driver::postgres::{CLAIM, COMPLETE, COUNT_UNFINISHED};

/// The plans of `statement` with these argument literals, custom and generic, as JSON text.
pub(super) async fn plans(c: &mut PgConnection, types: &str, statement: &str, args: &str) -> [String; 2] {
    let mut plans = [String::new(), String::new()];
    sqlx::raw_sql(AssertSqlSafe(format!("PREPARE probe({types}) AS {statement}"))).execute(&mut *c).await.unwrap();
    for (mode, plan) in ["force_custom_plan", "force_generic_plan"].iter().zip(plans.iter_mut()) {
        sqlx::raw_sql(AssertSqlSafe(format!("SET plan_cache_mode = {mode}"))).execute(&mut *c).await.unwrap();
        let json: serde_json::Value =
            sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) EXECUTE probe({args})")))
                .fetch_one(&mut *c)
                .await
                .unwrap();
        *plan = json.to_string();
    }
    sqlx::raw_sql("DEALLOCATE probe").execute(&mut *c).await.unwrap();
    plans
}

/// The tables a plan (`plans`' JSON) reads whole, by name, but for the history's default
/// partitions: they hold only the jobs that finished where no partition was (none, once a
/// leader runs), and the planner rightly reads an empty table whole.
pub(super) fn seq_scans(plan: &str) -> Vec<String> {
    fn walk(node: &serde_json::Value, out: &mut Vec<String>) {
        if node["Node Type"] == "Seq Scan" {
            let name = node["Relation Name"].as_str().unwrap_or("?").to_owned();
            if !name.starts_with("job_history_") || !name.ends_with("_default") {
                out.push(name);
            }
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, out);
        }
    }
    let json: serde_json::Value = serde_json::from_str(plan).unwrap();
    let mut out = Vec::new();
    for root in json.as_array().into_iter().flatten() {
        walk(&root["Plan"], &mut out);
    }
    out
}

/// A fresh migrated database: its name, its URL, and an admin connection to drop it with.
pub(crate) async fn scratch_database(prefix: &str) -> (String, String, PgConnection) {
    // The integration tests' server, or their private cluster when it cannot be used.
    let admin_url = oncommit_testing::admin_url();
    let name = format!("{prefix}_{}_{}", std::process::id(), fastrand::u32(..));
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let url = oncommit_testing::with_database(&admin_url, &name);
    let db = Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    db.close().await;
    (name, url, admin)
}

#[tokio::test]
async fn a_metrics_scrape_does_not_read_the_finished_jobs() {
    let (name, url, mut admin) = scratch_database("oncommit_scrape").await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    // A table that has lived for a while: 100,000 finished jobs, a small backlog.
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at) \
         SELECT 'noop', 'default', 0, 25, CASE WHEN g % 100 = 0 THEN 'failed' ELSE 'completed' END, now() \
         FROM generate_series(1, 100000) AS g; \
         INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state) \
         SELECT 'noop', 'q' || (g % 3), 0, 25, 'available' FROM generate_series(1, 500) AS g; \
         ANALYZE oncommit.jobs",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let [custom, _] = plans(&mut c, "int4", &format!("{COUNT_UNFINISHED} LIMIT $1"), "1000").await;
    assert!(!custom.contains("Seq Scan"), "the scrape's count reads the partial indexes: {custom}");
    assert!(custom.contains("jobs_claim"), "available jobs are counted from the claim index: {custom}");
    c.close().await.ok();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn claim_and_completion_plans_do_not_depend_on_statistics() {
    let (name, url, mut admin) = scratch_database("oncommit_plans").await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    for (name, value) in PLANNER_SETTINGS {
        sqlx::raw_sql(AssertSqlSafe(format!("SET {name} = {value}"))).execute(&mut c).await.unwrap();
    }
    // 200,000 jobs: 30,000 running (a worker's pile-up), the rest finished or waiting.
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, attempt, lease_owner, lease_expires_at) \
         SELECT 'noop', 'default', 0, 25, \
                CASE WHEN g <= 30000 THEN 'running' WHEN g <= 150000 THEN 'completed' ELSE 'available' END, \
                CASE WHEN g <= 30000 THEN 1 ELSE 0 END, \
                CASE WHEN g <= 30000 THEN 'w' END, \
                CASE WHEN g <= 30000 THEN now() + interval '30 seconds' END \
         FROM generate_series(1, 200000) AS g; \
         ANALYZE oncommit.jobs",
    )
    .execute(&mut c)
    .await
    .unwrap();

    let [custom, generic] = plans(
        &mut c,
        "int8[], int4[], text[], int8[], text[], int4[], text[]",
        COMPLETE,
        "(array_fill(5001, ARRAY[1000]))::int8[], array_fill(1, ARRAY[1000]), \
         array_fill('completed'::text, ARRAY[1000]), array_fill(NULL::int8, ARRAY[1000]), \
         array_fill(NULL::text, ARRAY[1000]), array_fill(0, ARRAY[1000]), array_fill(NULL::text, ARRAY[1000])",
    )
    .await;
    for plan in [&custom, &generic] {
        assert!(plan.contains("\"jobs_pkey\""), "the completion probes the primary key: {plan}");
        assert!(!plan.contains("jobs_running"), "the completion does not read the running index: {plan}");
        assert!(!plan.contains("Seq Scan"), "the completion does not scan the table: {plan}");
    }

    let [custom, generic] = plans(&mut c, "text, int8, text, float8", CLAIM, "'default', 1000, 'w2', 30").await;
    for plan in [&custom, &generic] {
        assert!(plan.contains("\"jobs_claim\""), "the claim reads the claim index: {plan}");
        assert!(!plan.contains("Seq Scan"), "the claim does not scan the table: {plan}");
    }

    c.close().await.ok();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}
