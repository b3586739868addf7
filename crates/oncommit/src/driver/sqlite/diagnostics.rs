//! SQLite's statements for `oncommit doctor`. One file, one writer: no index is left
//! INVALID, no other session holds back a vacuum, and the table has no vacuum settings.

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{Diagnostics, VacuumHolder};
use crate::driver::millis;
use crate::error::Result;

impl Diagnostics for SqliteDriver {
    async fn invalid_indexes(_: &mut SqliteConnection) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    async fn vacuum_settings(c: &mut SqliteConnection) -> Result<Vec<String>> {
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut *c).await?;
        let name = match mode {
            1 => "full",
            2 => "incremental",
            _ => "none",
        };
        Ok(vec![format!("auto_vacuum={name}")])
    }

    async fn vacuum_holders(_: &mut SqliteConnection) -> Result<Vec<VacuumHolder>> {
        Ok(Vec::new())
    }

    async fn stale_leases(c: &mut SqliteConnection, grace: Duration) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as(concat!(
            "SELECT count(*), min(j.id) FROM oncommit_jobs j \
             WHERE j.state = 'running' AND j.lease_expires_at < ",
            sqlite_now_ms!(),
            " - $1 AND NOT EXISTS (SELECT 1 FROM oncommit_workers w WHERE w.id = j.lease_owner AND w.heartbeat_at > ",
            sqlite_now_ms!(),
            " - $1)"
        ))
        .bind(millis(grace))
        .fetch_one(&mut *c)
        .await?)
    }

    async fn worker_clocks(c: &mut SqliteConnection, alive: Duration) -> Result<Vec<(String, Option<i64>)>> {
        Ok(sqlx::query_as(concat!(
            "SELECT id, clock_offset_ms FROM oncommit_workers WHERE heartbeat_at > ",
            sqlite_now_ms!(),
            " - $1 ORDER BY id"
        ))
        .bind(millis(alive))
        .fetch_all(&mut *c)
        .await?)
    }
}
