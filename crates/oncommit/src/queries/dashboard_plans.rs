//! Every statement the dashboard makes per refresh is served by an index on a million jobs
//! (on PostgreSQL most of them finished, in the history's partitions), as PostgreSQL plans it for the values bound and for any value, and as
//! SQLite plans it: no read of the whole jobs table, whatever the filter. (The count of
//! finished jobs, made at most once a minute per process and shared, is the exception the
//! docs name: it reads every finished row.)
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};

use super::plans::{plans, scratch_database, seq_scans};
use crate::driver::postgres::QUEUE_SETTINGS as QUEUE_SETTINGS_POSTGRES;
use crate::driver::postgres::{
    ACTIVITY_SINCE as PG_ACTIVITY_SINCE, BOUNDS as PG_BOUNDS, COUNT_UNFINISHED, QUEUE_LAG, WINDOWS as PG_WINDOWS,
};
use crate::driver::sqlite::WINDOWS as SQLITE_WINDOWS;

const ALL: &str = "ARRAY['pending','scheduled','available','running','retryable','completed','failed','cancelled']";

/// Filters as the page sends them: `$1`–`$9` of the window statement.
const FILTERS: [(&str, &str); 6] = [
    ("every job", "{ALL}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"),
    ("the failed tab", "ARRAY['failed'], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"),
    ("a queue's available jobs", "ARRAY['available'], 'q1', NULL, NULL, NULL, NULL, NULL, NULL, NULL"),
    ("a search", "{ALL}, NULL, NULL, NULL, NULL, NULL, NULL, 'needle', NULL"),
    ("a task, priority and time range", "{ALL}, NULL, 'noop', 1790000000000, 1800000000000, NULL, 0::int2, NULL, NULL"),
    ("ticked ids", "{ALL}, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ARRAY[5, 999000]::int8[]"),
];

#[tokio::test]
async fn the_dashboards_statements_read_indexes_on_a_million_jobs_in_postgres() {
    let (name, url, mut admin) = scratch_database("oncommit_dashboard_plans").await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO oncommit.jobs (task, queue, priority, max_attempts, state, attempt, run_at, finished_at, lease_owner, \
                                    lease_expires_at, errors) \
         SELECT 'noop', 'q' || (g % 5), 0, 25, s, 1, now() + CASE WHEN s = 'scheduled' THEN interval '1 hour' ELSE '0' END, \
                CASE WHEN s IN ('completed', 'failed') THEN now() END, CASE WHEN s = 'running' THEN 'w' END, \
                CASE WHEN s = 'running' THEN now() + interval '1 minute' END, \
                CASE WHEN s = 'failed' THEN '[{\"attempt\": 1, \"at\": 0, \"error\": \"boom\"}]'::jsonb ELSE '[]' END \
         FROM (SELECT g, CASE WHEN g % 100 < 95 THEN 'completed' WHEN g % 100 < 97 THEN 'failed' \
                              WHEN g % 100 < 99 THEN 'available' WHEN g % 200 = 199 THEN 'running' ELSE 'scheduled' END AS s \
               FROM generate_series(1, 1000000) AS g) AS rows; \
         CREATE TABLE oncommit.job_history_completed_today PARTITION OF oncommit.job_history_completed \
             FOR VALUES FROM (now() - interval '1 day') TO (now() + interval '1 day'); \
         CREATE TABLE oncommit.job_history_discarded_today PARTITION OF oncommit.job_history_discarded \
             FOR VALUES FROM (now() - interval '1 day') TO (now() + interval '1 day'); \
         WITH moved AS (DELETE FROM oncommit.jobs WHERE state IN ('completed', 'failed') RETURNING *) \
         INSERT INTO oncommit.job_history SELECT * FROM moved; \
         INSERT INTO oncommit.queue_activity (minute, queue, metric, bucket, count) \
         SELECT 29000000 + m, 'q' || q, 'wait', b, 1 \
         FROM generate_series(1, 1440) AS m, generate_series(0, 4) AS q, generate_series(0, 9) AS b; \
         ANALYZE oncommit.job_history; ANALYZE oncommit.queue_activity",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // As the vacuum duty leaves it: the moved rows' space reclaimed.
    sqlx::raw_sql("VACUUM ANALYZE oncommit.jobs").execute(&mut c).await.unwrap();
    let window = "text[], text, text, int8, int8, text, int2, text, int8[], int8, int8, int8";
    for (what, filter) in FILTERS {
        let filter = filter.replace("{ALL}", ALL);
        for (statement, range) in PG_WINDOWS.iter().zip(["990000, 1000001", "1, 10001"]) {
            for plan in plans(&mut c, window, statement, &format!("{filter}, {range}, 50")).await {
                assert!(seq_scans(&plan).is_empty(), "{what}: the page reads a window of the primary key: {plan}");
                assert!(plan.contains("Index"), "{what}: {plan}");
            }
        }
    }
    let others = [
        ("the id range", format!("{PG_BOUNDS} LIMIT $1"), "int4", "1"),
        ("the waiting and running counts", format!("{COUNT_UNFINISHED} LIMIT $1"), "int4", "100"),
        ("the queues' settings", format!("{QUEUE_SETTINGS_POSTGRES} LIMIT $1"), "int4", "100"),
        ("the last hour's activity", PG_ACTIVITY_SINCE.to_owned(), "int8", "29001380"),
        ("the queues' lag", format!("{QUEUE_LAG} LIMIT $1"), "int4", "100"),
    ];
    for (what, statement, types, args) in others {
        for plan in plans(&mut c, types, &statement, args).await {
            assert!(seq_scans(&plan).iter().all(|t| t != "jobs" && !t.starts_with("job_history")), "{what}: {plan}");
            assert!(!plan.contains("Seq Scan on queue_activity"), "{what}: {plan}");
        }
    }
    c.close().await.ok();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn the_dashboards_statements_read_indexes_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("plans.db").display());
    let db = crate::Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    db.close().await;
    let mut c = SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO oncommit_jobs (task, queue, state, finished_at) \
         WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200000) \
         SELECT 'noop', 'q' || (i % 5), CASE WHEN i % 100 < 95 THEN 'completed' WHEN i % 100 < 97 THEN 'failed' ELSE 'available' END, \
                1795500000000 FROM s; ANALYZE",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let all = r#"'["pending","scheduled","available","running","retryable","completed","failed","cancelled"]'"#;
    for (what, filter) in FILTERS {
        let filter = filter
            .replace("{ALL}", all)
            .replace("ARRAY['failed']", r#"'["failed"]'"#)
            .replace("ARRAY['available']", r#"'["available"]'"#)
            .replace("ARRAY[5, 999000]::int8[]", "'[5,199000]'")
            .replace("0::int2", "0");
        for statement in SQLITE_WINDOWS {
            // Bind by substitution: EXPLAIN QUERY PLAN takes the statement's text.
            let mut sql = statement.to_owned();
            let values: Vec<String> =
                filter.split(", ").map(str::to_owned).chain(["190000".into(), "200001".into(), "50".into()]).collect();
            for (i, value) in values.iter().enumerate().rev() {
                sql = sql.replace(&format!("${}", i + 1), value);
            }
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))).fetch_all(&mut c).await.unwrap();
            let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter().all(|step| !step.starts_with("SCAN oncommit_jobs") || step.contains("USING")),
                "{what}: {plan:?}"
            );
            assert!(plan.iter().any(|step| step.contains("USING")), "{what}: {plan:?}");
        }
    }
    // The queues' lag: index searches only, however many jobs are available.
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", crate::driver::sqlite::QUEUE_LAG)))
            .fetch_all(&mut c)
            .await
            .unwrap();
    let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    let jobs = |step: &&&str| step.starts_with("SCAN oncommit_jobs") || step.starts_with("SCAN j ");
    assert!(plan.iter().filter(jobs).all(|step| step.contains("USING COVERING INDEX oncommit_jobs_claim")), "{plan:?}");
    assert!(plan.iter().any(|step| step.contains("USING")), "{plan:?}");
    c.close().await.ok();
}
