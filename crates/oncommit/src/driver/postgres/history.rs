//! PostgreSQL's statements on the history of finished jobs: `oncommit.job_history`, a list
//! partition per class (`job_history_completed`, `job_history_discarded`), each partitioned
//! by finish time into leaves named after their first hour, plus a default leaf for jobs
//! that finish where no leaf is.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use super::jobs::ARCHIVE;
use crate::driver::contract::{History, HistoryClass, Leaf, Leaves};
use crate::driver::secs;
use crate::error::Result;

/// How long a change of the history's partitions waits for its locks before it gives up
/// until the leader's next pass: while it waits, every finishing job queues behind it.
const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '200ms'";

/// A class's leaves with their bounds and whether they are counted, read from the catalog.
const LEAVES: &str = "\
     SELECT c.relname::text, \
            (regexp_match(b, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz, \
            (regexp_match(b, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz, \
            EXISTS (SELECT 1 FROM oncommit.history_counts h WHERE h.partition = c.oid AND h.queue = '') \
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, pg_get_expr(c.relpartbound, c.oid) AS b \
     WHERE i.inhparent = to_regclass($1) AND b <> 'DEFAULT' \
     ORDER BY 2";

/// A row of `LEAVES`: a leaf's name, its bounds, whether it is counted.
type LeafRow = (String, DateTime<Utc>, DateTime<Utc>, bool);

/// The partitions of both classes not counted yet (the default ones never are): their
/// oids and names.
const UNCOUNTED: &str = "\
     SELECT c.oid::int8, c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent IN ('oncommit.job_history_completed'::regclass, 'oncommit.job_history_discarded'::regclass) \
       AND NOT EXISTS (SELECT 1 FROM oncommit.history_counts h WHERE h.partition = c.oid AND h.queue = '')";

/// A partition's name as an identifier in the `oncommit` schema.
fn quoted(name: &str) -> String {
    format!("oncommit.\"{}\"", name.replace('"', "\"\""))
}

/// The class's table: `job_history_completed` or `job_history_discarded`.
fn table(class: HistoryClass) -> String {
    format!("oncommit.job_history_{}", class.as_str())
}

impl History for PostgresDriver {
    async fn history_leaves(c: &mut PgConnection, class: HistoryClass) -> Result<Option<Leaves>> {
        let rows: Vec<LeafRow> = sqlx::query_as(LEAVES).bind(table(class)).fetch_all(&mut *c).await?;
        let (now, unplaced_until): (DateTime<Utc>, Option<DateTime<Utc>>) =
            sqlx::query_as(AssertSqlSafe(format!("SELECT now(), max(finished_at) FROM {}_default", table(class))))
                .fetch_one(&mut *c)
                .await?;
        let leaves = rows.into_iter().map(|(name, from, to, counted)| Leaf { name, from, to, counted }).collect();
        Ok(Some(Leaves { now, leaves, unplaced_until }))
    }

    async fn history_leaf_create(
        c: &mut PgConnection,
        class: HistoryClass,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<()> {
        // Made apart, then attached: attaching locks the class's table against other
        // changes of its partitions only (SHARE UPDATE EXCLUSIVE), where `PARTITION OF`
        // would lock out every finishing job. It checks the new leaf (empty) and the default
        // leaf (the leader starts after the jobs there) against the new bounds.
        let parent = table(class);
        let leaf = format!("{parent}_{}", from.format("%Y%m%d_%H%M"));
        let bound = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f+00");
        let sql = format!(
            "{LOCK_WAIT}; \
             CREATE TABLE {leaf} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             ALTER TABLE {parent} ATTACH PARTITION {leaf} FOR VALUES FROM ('{}') TO ('{}')",
            bound(from),
            bound(to)
        );
        // One implicit transaction (several statements in one simple query): the leaf is
        // made and attached, or neither.
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await?;
        Ok(())
    }

    async fn history_leaf_drop(c: &mut PgConnection, class: HistoryClass, name: &str) -> Result<()> {
        // Detached first, in a transaction of its own: that locks out the class's other
        // readers and writers (every finishing job) for a catalog change only; then
        // dropped, with any partition a pass detached but did not drop (the DROP, which
        // unlinks the files, a quarter of a second for 5,000,000 jobs, locks nothing else). A dependant's edges go with it, as with a pruned one (the edge
        // table is small: it is the one read whole); a parent's stay, for its dependants.
        // (Behind a transaction pooler both run in the caller's one transaction.)
        let leaf = quoted(name);
        let detach = format!(
            "{LOCK_WAIT}; \
             DELETE FROM oncommit.job_dependencies d WHERE EXISTS (SELECT 1 FROM {leaf} h WHERE h.id = d.job_id); \
             DELETE FROM oncommit.history_counts WHERE partition = '{leaf}'::regclass; \
             ALTER TABLE {} DETACH PARTITION {leaf}",
            table(class)
        );
        sqlx::raw_sql(AssertSqlSafe(detach)).execute(&mut *c).await?;
        // With any partition detached but left behind by a pass that stopped in between.
        let orphans: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'oncommit'::regnamespace AND relkind = 'r' \
               AND NOT relispartition AND relname LIKE 'job\\_history\\_%'",
        )
        .fetch_all(&mut *c)
        .await?;
        for orphan in orphans {
            sqlx::raw_sql(AssertSqlSafe(format!("{LOCK_WAIT}; DROP TABLE IF EXISTS {}", quoted(&orphan))))
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }

    async fn history_leaf_count(c: &mut PgConnection, name: &str) -> Result<()> {
        // Under a lock that lets readers in but holds off a retry or delete out of it until
        // its count is in (a count that missed one would be off for good).
        let leaf = quoted(name);
        let sql = format!(
            "{LOCK_WAIT}; LOCK TABLE {leaf} IN SHARE MODE; \
             INSERT INTO oncommit.history_counts (partition, queue, state, jobs) \
             SELECT '{leaf}'::regclass, queue, state, count(*) FROM {leaf} GROUP BY queue, state \
             UNION ALL SELECT '{leaf}'::regclass, '', '', 0 \
             ON CONFLICT DO NOTHING"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await?;
        Ok(())
    }

    async fn history_count(c: &mut PgConnection) -> Result<Vec<(String, String, i64)>> {
        // Two statements: which partitions are not counted, then a count that reads those
        // and adds up the others' counts (skipping any partition read, so one counted in
        // between is not counted twice). A partition dropped in between makes the second
        // fail: then again.
        let mut attempts = 0;
        loop {
            let uncounted: Vec<(i64, String)> = sqlx::query_as(UNCOUNTED).fetch_all(&mut *c).await?;
            let oids = uncounted.iter().map(|(oid, _)| oid.to_string()).collect::<Vec<_>>().join(", ");
            let mut sql = format!(
                "SELECT queue, state, sum(n)::int8 FROM ( \
                   SELECT queue, state, count(*) AS n FROM oncommit.jobs \
                   WHERE state IN ('completed', 'failed', 'cancelled') GROUP BY queue, state \
                   UNION ALL SELECT queue, state, jobs FROM oncommit.history_counts \
                   WHERE queue <> '' AND partition NOT IN ({})",
                if oids.is_empty() { "0".to_owned() } else { oids }
            );
            for (_, name) in &uncounted {
                sql.push_str(&format!(
                    " UNION ALL SELECT queue, state, count(*) FROM {} GROUP BY queue, state",
                    quoted(name)
                ));
            }
            sql.push_str(") AS c GROUP BY queue, state HAVING sum(n) > 0 ORDER BY queue, state");
            match sqlx::query_as(AssertSqlSafe(sql)).fetch_all(&mut *c).await {
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") && attempts < 3 => attempts += 1,
                counts => return Ok(counts?),
            }
        }
    }

    async fn history_prune(
        c: &mut PgConnection,
        class: HistoryClass,
        older_than: Duration,
        everywhere: bool,
        limit: i64,
    ) -> Result<u64> {
        let from = if everywhere { table(class) } else { format!("{}_default", table(class)) };
        // A pruned dependant's edges go with it, as `job_prune` does.
        let pruned: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH gone AS (DELETE FROM {from} WHERE finished_at < now() - make_interval(secs => $1) AND id = ANY(ARRAY( \
                 SELECT id FROM {from} WHERE finished_at < now() - make_interval(secs => $1) \
                 ORDER BY finished_at LIMIT $2)) RETURNING id, tableoid, queue, state), \
             edges AS (DELETE FROM oncommit.job_dependencies WHERE job_id = ANY(ARRAY(SELECT id FROM gone))), \
             {} \
             SELECT count(*) FROM gone",
            pg_uncount_gone!()
        )))
        .bind(secs(older_than))
        .bind(limit)
        .fetch_one(&mut *c)
        .await?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }

    async fn job_archive(c: &mut PgConnection, limit: i64) -> Result<u64> {
        let moved: i64 = sqlx::query_scalar(ARCHIVE).bind(limit).fetch_one(&mut *c).await?;
        Ok(u64::try_from(moved).unwrap_or(0))
    }
}
