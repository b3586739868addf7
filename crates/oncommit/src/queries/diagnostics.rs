//! The statements `oncommit doctor` reads (`doctor.rs`), each on a connection of its own.

use std::time::Duration;

use crate::db::Db;
use crate::driver::contract::VacuumHolder;
use crate::error::Result;

pub(crate) async fn schema_describe(db: &Db) -> Result<String> {
    statement!(db, "describing the schema", schema_describe())
}

pub(crate) async fn invalid_indexes(db: &Db) -> Result<Vec<String>> {
    statement!(db, "listing INVALID indexes", invalid_indexes())
}

pub(crate) async fn vacuum_settings(db: &Db) -> Result<Vec<String>> {
    statement!(db, "reading the jobs table's vacuum settings", vacuum_settings())
}

pub(crate) async fn vacuum_holders(db: &Db) -> Result<Vec<VacuumHolder>> {
    statement!(db, "reading what holds back vacuum", vacuum_holders())
}

pub(crate) async fn stale_leases(db: &Db, grace: Duration) -> Result<(i64, Option<i64>)> {
    statement!(db, "counting stale leases", stale_leases(grace))
}

pub(crate) async fn worker_clocks(db: &Db, alive: Duration) -> Result<Vec<(String, Option<i64>)>> {
    statement!(db, "reading the workers' clocks", worker_clocks(alive))
}
