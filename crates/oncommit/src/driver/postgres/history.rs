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

/// A class's leaves with their bounds, read from the catalog, and the database's clock.
const LEAVES: &str = "\
     SELECT now(), c.relname::text, \
            (regexp_match(b, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz, \
            (regexp_match(b, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz \
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid, pg_get_expr(c.relpartbound, c.oid) AS b \
     WHERE i.inhparent = to_regclass($1) AND b <> 'DEFAULT' \
     ORDER BY 3";

/// A row of `LEAVES`: now, a leaf's name, its bounds.
type LeafRow = (DateTime<Utc>, String, DateTime<Utc>, DateTime<Utc>);

/// The class's table: `job_history_completed` or `job_history_discarded`.
fn table(class: HistoryClass) -> String {
    format!("oncommit.job_history_{}", class.as_str())
}

impl History for PostgresDriver {
    async fn history_leaves(c: &mut PgConnection, class: HistoryClass) -> Result<Option<Leaves>> {
        let rows: Vec<LeafRow> = sqlx::query_as(LEAVES).bind(table(class)).fetch_all(&mut *c).await?;
        let unplaced_until: Option<DateTime<Utc>> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT max(finished_at) FROM {}_default", table(class))))
                .fetch_one(&mut *c)
                .await?;
        let now = match rows.first() {
            Some((now, ..)) => *now,
            None => sqlx::query_scalar("SELECT now()").fetch_one(&mut *c).await?,
        };
        let leaves = rows.into_iter().map(|(_, name, from, to)| Leaf { name, from, to }).collect();
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

    async fn history_leaf_drop(c: &mut PgConnection, name: &str) -> Result<()> {
        // A name the catalog gave, of a leaf of oncommit's own: quoted all the same. A
        // dependant's edges go with it, as with a pruned one (the edge table is small: it is
        // the one read whole); a parent's stay, for its dependants.
        let leaf = format!("oncommit.\"{}\"", name.replace('"', "\"\""));
        let sql = format!(
            "{LOCK_WAIT}; \
             DELETE FROM oncommit.job_dependencies d WHERE EXISTS (SELECT 1 FROM {leaf} h WHERE h.id = d.job_id); \
             DROP TABLE {leaf}"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await?;
        Ok(())
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
                 ORDER BY finished_at LIMIT $2)) RETURNING id), \
             edges AS (DELETE FROM oncommit.job_dependencies WHERE job_id = ANY(ARRAY(SELECT id FROM gone))) \
             SELECT count(*) FROM gone"
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
