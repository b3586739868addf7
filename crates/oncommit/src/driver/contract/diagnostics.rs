//! The statements of `oncommit doctor`: the catalog and the statistics, read only.

use std::time::Duration;

use super::Driver;
use crate::error::Result;

/// Something that holds back vacuum of the database (PostgreSQL): dead rows of every table
/// stay until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VacuumHolder {
    /// `transaction`, `prepared transaction` or `replication slot`.
    pub(crate) kind: &'static str,
    /// The session's pid, the prepared transaction's gid, or the slot's name.
    pub(crate) name: String,
    /// How long it has held back vacuum, in seconds (a slot: `None`, it has no start).
    pub(crate) age_secs: Option<i64>,
    /// The session's application, the prepared transaction's owner, or the slot's type.
    pub(crate) application: Option<String>,
    /// The session's state (`idle in transaction`, …), or whether the slot is `active`.
    pub(crate) state: Option<String>,
    /// When the session's last statement started, epoch milliseconds.
    pub(crate) query_start_ms: Option<i64>,
}

/// What `oncommit doctor` reads (`doctor.rs` decides what is wrong).
pub(crate) trait Diagnostics: Driver {
    /// oncommit's indexes left INVALID (an interrupted `CREATE INDEX CONCURRENTLY`).
    async fn invalid_indexes(c: &mut Self::Conn) -> Result<Vec<String>>;

    /// The jobs table's own vacuum settings (`name=value`), if it has any.
    async fn vacuum_settings(c: &mut Self::Conn) -> Result<Vec<String>>;

    /// What holds back vacuum of this database, oldest first: the oldest transactions of
    /// other client sessions, prepared transactions, replication slots that keep rows.
    async fn vacuum_holders(c: &mut Self::Conn) -> Result<Vec<VacuumHolder>>;

    /// Running jobs whose lease ran out over `grace` ago and whose owner has not beaten
    /// for `grace`: how many, and the lowest id.
    async fn stale_leases(c: &mut Self::Conn, grace: Duration) -> Result<(i64, Option<i64>)>;

    /// The workers that beat within `alive`, each with its clock's offset from the
    /// database's at its last beat, milliseconds (`None` if it did not say).
    async fn worker_clocks(c: &mut Self::Conn, alive: Duration) -> Result<Vec<(String, Option<i64>)>>;
}
