//! The rows some statements return to callers outside the crate: declarations, workers, the
//! table's footprint, counts.

use crate::job::JobState;

/// What a task declares for its jobs, as the last worker registering it recorded it: the
/// queue, priority and attempts a job of it gets when it is enqueued without them (from SQL,
/// the CLI, another language).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskDeclaration {
    /// The task's name.
    pub task: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// Their priority (lower runs first).
    pub priority: i16,
    /// Their number of attempts.
    pub max_attempts: i32,
    /// The worker that recorded it.
    pub declared_by: String,
    /// When, epoch milliseconds.
    pub declared_at: i64,
}

/// A worker's row in the workers table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerInfo {
    /// Its id (host, process and a random part).
    pub id: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i32,
    /// The queues it serves, with their concurrency.
    pub queues: serde_json::Value,
    /// When it started, epoch milliseconds.
    pub started_at: i64,
    /// Its latest heartbeat, epoch milliseconds.
    pub heartbeat_at: i64,
}

/// The jobs table's footprint: what pruning and vacuum keep in check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableStats {
    /// Bytes on disk: on PostgreSQL the jobs table with its indexes and TOAST; on SQLite
    /// the whole database file.
    pub bytes: i64,
    /// Of those, bytes free for reuse (SQLite's free pages); `None` on PostgreSQL, where
    /// dead rows say it.
    pub free_bytes: Option<i64>,
    /// Live rows, as PostgreSQL's statistics estimate them; `None` on SQLite.
    pub live_rows: Option<i64>,
    /// Dead row versions not yet vacuumed, likewise; `None` on SQLite.
    pub dead_rows: Option<i64>,
    /// When the table was last vacuumed (by hand or autovacuum), epoch milliseconds.
    pub last_vacuum_at: Option<i64>,
}

/// Counts of jobs per queue and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateCount {
    pub(crate) queue: String,
    pub(crate) state: JobState,
    pub(crate) count: i64,
}

/// A `TaskDeclaration` from its row: name, queue, priority, attempts, worker, epoch ms.
pub(crate) fn declaration(
    (task, queue, priority, max_attempts, declared_by, declared_at): (String, String, i16, i32, String, i64),
) -> TaskDeclaration {
    TaskDeclaration { task, queue, priority, max_attempts, declared_by, declared_at }
}
