//! SQLite's dialect: one writer, so a writing transaction takes the write lock at its
//! `BEGIN IMMEDIATE` and row locks are that lock; per-transaction settings are pragmas
//! undone after it; no NOTIFY.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::Backend;
use crate::driver::contract::{BeginSettings, Dialect, MigrationSql, Sessions};
use crate::driver::options::Lock;
use crate::driver::options::SQLITE_BUSY_TIMEOUT;
use crate::error::{Error, Result};
use crate::migrate::{Migration, MigrationSet};

impl Dialect for SqliteDriver {
    const SYSTEM_NAME: &'static str = "sqlite";
    const NOTIFIES: bool = false;
    const COMMIT_HIDES_FAILURE: bool = false;

    fn begin_sql(s: &BeginSettings<'_>) -> Result<(String, Option<String>)> {
        if s.statement_timeout.is_some() {
            return Err(Error::Unsupported { feature: "statement_timeout", backend: Backend::Sqlite });
        }
        let mut sql = String::new();
        let mut reset = Vec::new();
        if let Some(t) = s.lock_timeout {
            let _ = write!(sql, "PRAGMA busy_timeout = {}; ", t.as_millis());
            reset.push(format!("PRAGMA busy_timeout = {}", SQLITE_BUSY_TIMEOUT.as_millis()));
        }
        if s.read_only {
            sql.push_str("BEGIN DEFERRED; PRAGMA query_only = 1");
            reset.push("PRAGMA query_only = 0".to_owned());
        } else {
            // A deferred BEGIN that later writes must upgrade its lock, and that upgrade
            // fails with BUSY at once whatever the busy timeout: take the write lock up
            // front instead.
            sql.push_str("BEGIN IMMEDIATE");
        }
        Ok((sql, (!reset.is_empty()).then(|| reset.join("; "))))
    }

    fn lock_clause(_: &Lock) -> String {
        String::new()
    }

    fn migrations(set: &MigrationSet) -> &'static [Migration] {
        set.sqlite
    }

    fn cannot_open(code: &str) -> bool {
        // "unable to open database file": SQLITE_CANTOPEN and its extended codes all end in
        // 14 mod 256.
        code.parse::<i32>().is_ok_and(|c| c & 0xff == 14)
    }

    const SCHEMA_SNAPSHOT: &'static str = include_str!("../../../schema/sqlite.txt");

    const MIGRATIONS: MigrationSql = MigrationSql {
        begin: "BEGIN IMMEDIATE",
        // The write lock taken by BEGIN IMMEDIATE serializes migrators (and everyone else).
        in_transaction: None,
        session_lock: None,
        bookkeeping: "CREATE TABLE IF NOT EXISTS oncommit_schema_migrations (
    set_name   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (set_name, version)
);
CREATE TABLE IF NOT EXISTS oncommit_schema_compatibility (
    set_name        TEXT    PRIMARY KEY,
    compatible_from INTEGER NOT NULL
)",
        tables_exist: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1), \
                       EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $2)",
        record_table: "oncommit_schema_migrations",
        compatibility_table: "oncommit_schema_compatibility",
        applied: "SELECT version FROM oncommit_schema_migrations WHERE set_name = $1",
        record: "INSERT INTO oncommit_schema_migrations (set_name, version, name) VALUES ($1, $2, $3)",
        latest: "SELECT max(version) FROM oncommit_schema_migrations WHERE set_name = $1",
        status: "SELECT (SELECT max(version) FROM oncommit_schema_migrations WHERE set_name = $1), \
                 (SELECT compatible_from FROM oncommit_schema_compatibility WHERE set_name = $1)",
        raise_compatible_from: "INSERT INTO oncommit_schema_compatibility (set_name, compatible_from) VALUES ($1, $2)
ON CONFLICT (set_name) DO UPDATE SET compatible_from = max(compatible_from, excluded.compatible_from)",
        invalid_index: None,
    };
}

impl Sessions for SqliteDriver {
    async fn rows_lock_in_order(
        c: &mut SqliteConnection,
        table: &str,
        key: &str,
        keys: &[i64],
        _clause: &str,
    ) -> Result<Vec<i64>> {
        let sql = format!("SELECT {key} FROM {table} WHERE {key} IN (SELECT value FROM json_each($1)) ORDER BY {key}");
        let keys = serde_json::to_string(keys).map_err(Error::app)?;
        Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(keys).fetch_all(&mut *c).await?)
    }

    async fn transaction_idle_limit(_: &mut SqliteConnection, _: Duration) -> Result<()> {
        // One file on this machine: no network to fall silent.
        Ok(())
    }

    async fn sleepers_wake(_: &mut SqliteConnection, _: &[String]) -> Result<()> {
        Ok(())
    }
}
