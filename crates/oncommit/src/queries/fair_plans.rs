//! A fair queue's claim reads a probe per key it serves, never the backlog: checked with
//! `EXPLAIN ANALYZE` on a queue of 100,000 jobs over 10,000 keys, half of them claimed since
//! the statistics were taken (what a drain looks like to the planner), beside 100,000
//! finished ones, with the worker's planner settings, and in the generic plan a prepared
//! statement falls back to; and the claim in one call (`oncommit.claim_fair`) in the generic
//! plan it is made with, also on a table that is one tenant's backlog.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::PLANNER_SETTINGS;
use super::plans::{plans, scratch_database};
use crate::driver::postgres::{FAIR_JOBS, FAIR_KEYS};

/// Every node of a JSON plan.
fn nodes(plan: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    out.push(plan.clone());
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

/// The rows the scans of `statement` (its parameters inlined) read, and their node types.
async fn scanned(c: &mut PgConnection, statement: &str, args: &[&str]) -> (f64, Vec<String>) {
    let mut sql = statement.to_owned();
    // Highest first, so that $1 does not match the start of $10.
    for (i, arg) in args.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), arg);
    }
    let json: serde_json::Value = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}")))
        .fetch_one(&mut *c)
        .await
        .unwrap();
    let mut all = Vec::new();
    nodes(&json[0]["Plan"], &mut all);
    let scans: Vec<&serde_json::Value> =
        all.iter().filter(|n| n["Node Type"].as_str().unwrap_or_default().contains("Scan")).collect();
    let rows = scans
        .iter()
        .filter(|n| n["Relation Name"] == "jobs")
        .map(|n| {
            let read = n["Actual Rows"].as_f64().unwrap_or(0.0) + n["Rows Removed by Filter"].as_f64().unwrap_or(0.0);
            read * n["Actual Loops"].as_f64().unwrap_or(1.0)
        })
        .sum();
    let kinds = scans
        .iter()
        .filter(|n| n["Relation Name"] == "jobs")
        .map(|n| format!("{} {}", n["Node Type"].as_str().unwrap(), n["Index Name"].as_str().unwrap_or("-")))
        .collect();
    (rows, kinds)
}

#[tokio::test]
async fn a_fair_claim_reads_a_probe_per_key_it_serves() {
    let (name, url, mut admin) = scratch_database("oncommit_fair").await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    for (setting, value) in PLANNER_SETTINGS {
        sqlx::raw_sql(AssertSqlSafe(format!("SET {setting} = {value}"))).execute(&mut c).await.unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, finished_at) \
         SELECT 'noop', 'fair', 0, 25, 'completed', now() FROM generate_series(1, 100000); \
         INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, fair_key) \
         SELECT 'noop', 'fair', 0, 25, 'available', 'tenant:' || lpad((g % 10000)::text, 5, '0') \
         FROM generate_series(1, 100000) AS g; \
         ANALYZE oncommit.jobs; \
         UPDATE oncommit.jobs SET state = 'running' WHERE id IN \
             (SELECT id FROM oncommit.jobs WHERE state = 'available' ORDER BY id LIMIT 50000)",
    )
    .execute(&mut c)
    .await
    .unwrap();

    for after in ["NULL", "'tenant:05000'", "'tenant:09990'"] {
        let (rows, kinds) = scanned(&mut c, FAIR_KEYS, &["'fair'", "0", after, "100"]).await;
        // Per key: one probe for the next key, one for its oldest job's weight.
        assert!(rows <= 2.0 * 100.0 + 2.0, "{rows} rows read for 100 keys after {after}: {kinds:?}");
        assert!(kinds.iter().all(|k| k.ends_with("jobs_fair_available")), "{kinds:?}");
    }
    let keys: Vec<String> = (5000..5100).map(|k| format!("tenant:{k:05}")).collect();
    let keys = format!("ARRAY['{}']", keys.join("','"));
    let (rows, kinds) = scanned(&mut c, FAIR_JOBS, &["'fair'", "0", &keys, "array_fill(2::int8, ARRAY[100])"]).await;
    assert!(rows <= 200.0 + 100.0, "{rows} rows read for two jobs of 100 keys: {kinds:?}");
    assert!(kinds.iter().all(|k| k.ends_with("jobs_fair_available")), "{kinds:?}");

    // One key holding a backlog of 50,000 (its statistics say every row is its), half
    // claimed: the key's oldest job is found in the key's part of the fair index, not by
    // walking the primary key past the claimed and finished ones.
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, fair_key) \
         SELECT 'noop', 'one', 0, 25, 'available', 'A' FROM generate_series(1, 50000); \
         ANALYZE oncommit.jobs; \
         UPDATE oncommit.jobs SET state = 'running' WHERE id IN \
             (SELECT id FROM oncommit.jobs WHERE state = 'available' AND queue = 'one' ORDER BY id LIMIT 25000)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let (rows, kinds) = scanned(&mut c, FAIR_KEYS, &["'one'", "0", "NULL", "100"]).await;
    assert!(rows <= 4.0, "{rows} rows read for one key: {kinds:?}");
    assert!(kinds.iter().all(|k| k.ends_with("jobs_fair_available")), "{kinds:?}");

    // The generic plans, which a prepared statement may fall back to, stay index probes.
    let [custom, generic] = plans(&mut c, "text, int2, text, int8", FAIR_KEYS, "'fair', 0, NULL, 100").await;
    for plan in [custom, generic] {
        assert!(!plan.contains("Seq Scan") && plan.contains("jobs_fair_available"), "{plan}");
    }
    let [custom, generic] = plans(
        &mut c,
        "text, int2, text[], int8[]",
        FAIR_JOBS,
        &format!("'fair', 0, {keys}, array_fill(2::int8, ARRAY[100])"),
    )
    .await;
    for plan in [custom, generic] {
        assert!(!plan.contains("Seq Scan") && plan.contains("jobs_fair_available"), "{plan}");
    }

    // The claim in one call (`oncommit.claim_fair`): its statement in the generic plan the
    // function uses, run and rolled back.
    let prepare = format!("PREPARE claim_fair(text, int8) AS {}", claim_fair_statement());
    sqlx::raw_sql(AssertSqlSafe(prepare)).execute(&mut c).await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut c).await.unwrap();
    for (queue, limit, most) in [("fair", 100, 3.0 * 100.0 + 2.0), ("one", 100, 2.0 * 100.0 + 2.0)] {
        claim_fair_reads(&mut c, queue, limit, most).await;
    }
    // A table that is one tenant's backlog, as the statistics of a single-tenant drain say:
    // a key's jobs ordered by id alone would be walked from the primary key, past every
    // job claimed since the last vacuum.
    sqlx::raw_sql(
        "TRUNCATE oncommit.jobs; \
         INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, fair_key) \
         SELECT 'noop', 'one', 0, 25, 'available', 'A' FROM generate_series(1, 50000); \
         ANALYZE oncommit.jobs; \
         UPDATE oncommit.jobs SET state = 'running' WHERE id IN (SELECT id FROM oncommit.jobs ORDER BY id LIMIT 25000)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    claim_fair_reads(&mut c, "one", 250, 2.0 * 250.0 + 2.0).await;
    sqlx::raw_sql("RESET plan_cache_mode; DEALLOCATE claim_fair").execute(&mut c).await.unwrap();
    c.close().await.ok();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}

/// The statement `oncommit.claim_fair` runs once it holds the turn, with `$1` for its queue
/// and `$2` for its limit.
fn claim_fair_statement() -> String {
    let body = include_str!("../../migrations/postgres/current/claim_fair.sql");
    let start = body.find("RETURN QUERY").unwrap() + "RETURN QUERY".len();
    let end = body.rfind(";\nEND").unwrap();
    body[start..end]
        .replace("queue_name", "$1")
        .replace("max_jobs", "$2::int8")
        .replace("lease_owner = worker", "lease_owner = 'w'")
        .replace("lease_secs", "60")
        .replace("= started", "= statement_timestamp()")
        .replace("started +", "statement_timestamp() +")
}

/// Checks that the prepared `claim_fair` claims `limit` jobs of `queue` reading at most
/// `most` rows, in the fair index and the primary key only; rolled back.
async fn claim_fair_reads(c: &mut PgConnection, queue: &str, limit: i64, most: f64) {
    sqlx::raw_sql("BEGIN").execute(&mut *c).await.unwrap();
    let (rows, kinds) = scanned(c, "EXECUTE claim_fair($1, $2)", &[&format!("'{queue}'"), &format!("{limit}")]).await;
    sqlx::raw_sql("ROLLBACK").execute(&mut *c).await.unwrap();
    // A probe per key, one per key's jobs, one primary-key probe per job claimed.
    assert!(rows <= most, "{rows} rows read to claim {limit} jobs of {queue}: {kinds:?}");
    assert!(kinds.iter().all(|k| k.ends_with("jobs_fair_available") || k.ends_with("jobs_pkey")), "{kinds:?}");
}
