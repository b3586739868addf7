//! PostgreSQL's dialect: `BEGIN ISOLATION LEVEL …`, `SET LOCAL` timeouts, row locks,
//! NOTIFY, migrations serialized on an advisory lock.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use crate::driver::contract::{BeginSettings, Dialect, MigrationSql, Sessions};
use crate::driver::options::{Lock, LockStrength, LockWait};
use crate::error::Result;
use crate::migrate::{Migration, MigrationSet};

impl Dialect for PostgresDriver {
    const SYSTEM_NAME: &'static str = "postgresql";
    const NOTIFIES: bool = true;
    const COMMIT_HIDES_FAILURE: bool = true;

    fn begin_sql(s: &BeginSettings<'_>) -> Result<(String, Option<String>)> {
        let millis = |d: std::time::Duration| d.as_millis().max(1);
        let mut sql = String::from("BEGIN");
        if let Some(level) = s.isolation {
            let _ = write!(sql, " ISOLATION LEVEL {}", level.sql());
        }
        if s.read_only {
            sql.push_str(" READ ONLY");
        }
        if let Some(t) = s.lock_timeout {
            let _ = write!(sql, "; SET LOCAL lock_timeout = {}", millis(t));
        }
        if let Some(suffix) = s.pooled {
            // Behind a transaction pooler: the session's leftover statements go, and a
            // worker's session settings come as SET LOCAL (before the caller's own
            // timeouts, which win).
            sql.push_str(suffix);
        }
        if let Some(t) = s.statement_timeout {
            let _ = write!(sql, "; SET LOCAL statement_timeout = {}", millis(t));
        }
        Ok((sql, None))
    }

    fn lock_clause(lock: &Lock) -> String {
        let mut sql = String::from(match lock.strength {
            LockStrength::Update => " FOR UPDATE",
            LockStrength::NoKeyUpdate => " FOR NO KEY UPDATE",
            LockStrength::Share => " FOR SHARE",
            LockStrength::KeyShare => " FOR KEY SHARE",
        });
        for (i, table) in lock.of.iter().enumerate() {
            sql.push_str(if i == 0 { " OF " } else { ", " });
            let _ = write!(sql, "\"{}\"", table.replace('"', "\"\""));
        }
        sql.push_str(match lock.wait {
            LockWait::Wait => "",
            LockWait::NoWait => " NOWAIT",
            LockWait::SkipLocked => " SKIP LOCKED",
        });
        sql
    }

    fn migrations(set: &MigrationSet) -> &'static [Migration] {
        set.postgres
    }

    fn cannot_open(_: &str) -> bool {
        // 3D000 (no such database) is classified with the server's other answers.
        false
    }

    const SCHEMA_SNAPSHOT: &'static str = include_str!("../../../schema/postgres.txt");

    const MIGRATIONS: MigrationSql = MigrationSql {
        begin: "BEGIN",
        // The key is "oncommit" in ASCII: it names this lock among advisory locks. A DDL
        // statement waiting for its lock makes every later statement on the table queue
        // behind it, so no lock is waited for long: the runner retries instead.
        in_transaction: Some("SELECT pg_advisory_xact_lock(8029464515876579700); SET LOCAL lock_timeout = '200ms'"),
        session_lock: Some((
            "SELECT pg_try_advisory_lock(8029464515876579700)",
            "SELECT pg_advisory_unlock(8029464515876579700)",
        )),
        bookkeeping: "CREATE SCHEMA IF NOT EXISTS oncommit;
CREATE TABLE IF NOT EXISTS oncommit.schema_migrations (
    set_name   text        NOT NULL,
    version    bigint      NOT NULL,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (set_name, version)
);
CREATE TABLE IF NOT EXISTS oncommit.schema_compatibility (
    set_name        text   PRIMARY KEY,
    compatible_from bigint NOT NULL
)",
        tables_exist: "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NOT NULL",
        record_table: "oncommit.schema_migrations",
        compatibility_table: "oncommit.schema_compatibility",
        applied: "SELECT version FROM oncommit.schema_migrations WHERE set_name = $1",
        record: "INSERT INTO oncommit.schema_migrations (set_name, version, name) VALUES ($1, $2, $3)",
        latest: "SELECT max(version) FROM oncommit.schema_migrations WHERE set_name = $1",
        status: "SELECT (SELECT max(version) FROM oncommit.schema_migrations WHERE set_name = $1), \
                 (SELECT compatible_from FROM oncommit.schema_compatibility WHERE set_name = $1)",
        raise_compatible_from: "INSERT INTO oncommit.schema_compatibility (set_name, compatible_from) VALUES ($1, $2)
ON CONFLICT (set_name) DO UPDATE SET compatible_from = greatest(schema_compatibility.compatible_from, EXCLUDED.compatible_from)",
        invalid_index: Some("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)"),
    };
}

impl Sessions for PostgresDriver {
    async fn rows_lock_in_order(
        c: &mut PgConnection,
        table: &str,
        key: &str,
        keys: &[i64],
        clause: &str,
    ) -> Result<Vec<i64>> {
        let sql = format!("SELECT {key} FROM {table} WHERE {key} = ANY($1) ORDER BY {key}{clause}");
        Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(keys).fetch_all(&mut *c).await?)
    }

    async fn transaction_idle_limit(c: &mut PgConnection, lease: Duration) -> Result<()> {
        let ms = u128::max(lease.as_millis(), 1);
        sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL idle_in_transaction_session_timeout = {ms}")))
            .execute(&mut *c)
            .await?;
        Ok(())
    }

    async fn sleepers_wake(c: &mut PgConnection, queues: &[String]) -> Result<()> {
        if queues.is_empty() {
            return Ok(());
        }
        sqlx::query("SELECT count(oncommit.wake_sleepers(q)) FROM unnest($1::text[]) AS q")
            .bind(queues)
            .execute(&mut *c)
            .await?;
        Ok(())
    }
}
