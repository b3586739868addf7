//! Applying a migration set on a connection, without stopping the queue that uses the
//! tables (docs/upgrading.md).
//!
//! - Each migration is its own transaction, so a lock it takes is held for that migration
//!   only. Its statements wait at most `lock_timeout` (200 ms on PostgreSQL) for a lock: a
//!   DDL statement waiting for its lock makes every later statement on the table queue
//!   behind it, so the migration gives up, backs off and tries again rather than stall the
//!   application behind a long transaction.
//! - A migration marked [`OUTSIDE_TRANSACTION`] runs each statement on its own, so an index
//!   builds `CONCURRENTLY` while writes go on. Before a statement builds an index, an
//!   INVALID index of that name (a build that was interrupted, which `IF NOT EXISTS` would
//!   skip) is dropped.
//! - Concurrent migrators (a rolling deploy starting ten processes) take turns: on
//!   PostgreSQL on an advisory lock held by the session for the whole run, polled rather
//!   than waited for (a migrator blocked in a statement would hold a snapshot that a
//!   concurrent index build waits for: the deadlock of two such builds), and taken again
//!   by each migration's transaction; on SQLite on the write lock. Each re-reads what is
//!   applied, so each migration is applied once and the others see it done.
//! - Behind a transaction pooler a session lock cannot be held: the migrations run in
//!   transactions only, and an index is built inside one, blocking writes to its table
//!   while it builds. `oncommit migrate` against a direct URL avoids that.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::driver::conn::PoolConn;
use crate::driver::contract::MigrationSql;
use crate::error::{Error, Result};
use crate::migrate::{Migration, MigrationSet};

/// The line that marks a migration whose statements each run on their own, outside a
/// transaction (`CREATE INDEX CONCURRENTLY` cannot run in one).
pub(crate) const OUTSIDE_TRANSACTION: &str = "-- oncommit: outside a transaction";

/// How long a migration keeps trying to take its locks before it fails.
const LOCK_PATIENCE: Duration = Duration::from_secs(600);

/// How long a migrator waits for another to finish before it fails.
const TURN_PATIENCE: Duration = Duration::from_secs(3600);

/// Applies the pending migrations of `set` on `conn`, each once; `pooled_begin` is what a
/// transaction opens with behind a transaction pooler (the session may hold another
/// client's statements, and no session lock).
pub(crate) async fn run(conn: &mut PoolConn, pooled_begin: Option<&str>, set: &MigrationSet) -> Result<()> {
    let backend = conn.backend();
    let sql = on_backend!(backend, const MIGRATIONS);
    let migrations = on_backend!(backend, migrations(set));
    let session_lock = if pooled_begin.is_none() { sql.session_lock } else { None };
    if let Some((try_lock, _)) = session_lock {
        wait_for_turn(conn, try_lock, set).await?;
    }
    let result = apply(conn, pooled_begin, &sql, set, migrations, session_lock.is_some()).await;
    if let Some((_, unlock)) = session_lock {
        // Closing the session would free it too; a pooled connection lives on.
        let unlocked = crate::with_conn!(conn.conn(), c => sqlx::raw_sql(unlock).execute(c).await.map(drop));
        if let Err(err) = unlocked {
            tracing::warn!(error = %err, "could not release the migrators' lock; closing the connection");
            conn.close_on_drop();
        }
    }
    result
}

/// What the database records of `set`, read only: the newest version applied and the
/// oldest version a binary must know to use the schema (`None` for each where nothing is
/// recorded, the tables included).
pub(crate) async fn recorded(
    conn: &mut PoolConn,
    pooled_begin: Option<&str>,
    set: &MigrationSet,
) -> Result<(Option<i64>, Option<i64>)> {
    let opened = conn.open_pooled(pooled_begin).await?;
    let result = read_record(conn, set).await;
    conn.close_pooled(opened, result.is_ok()).await?;
    result
}

/// Two round trips: which tables are there, then what they record.
async fn read_record(conn: &mut PoolConn, set: &MigrationSet) -> Result<(Option<i64>, Option<i64>)> {
    let sql = on_backend!(conn.backend(), const MIGRATIONS);
    let (record, compatibility): (bool, bool) = crate::with_conn!(conn.conn(), c => {
        sqlx::query_as(sql.tables_exist).bind(sql.record_table).bind(sql.compatibility_table).fetch_one(c).await?
    });
    Ok(match (record, compatibility) {
        (false, _) => (None, None),
        (true, false) => {
            let latest =
                crate::with_conn!(conn.conn(), c => sqlx::query_scalar(sql.latest).bind(set.name).fetch_one(c).await?);
            (latest, None)
        }
        (true, true) => {
            crate::with_conn!(conn.conn(), c => sqlx::query_as(sql.status).bind(set.name).fetch_one(c).await?)
        }
    })
}

/// Waits, polling, until this session holds the migrators' lock.
async fn wait_for_turn(conn: &mut PoolConn, try_lock: &'static str, set: &MigrationSet) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        let got: bool = crate::with_conn!(conn.conn(), c => sqlx::query_scalar(try_lock).fetch_one(c).await?);
        if got {
            return Ok(());
        }
        if started.elapsed() > TURN_PATIENCE {
            return Err(Error::TimedOut { what: "waiting for another process's migration", after: TURN_PATIENCE });
        }
        if delay == Duration::from_millis(20) {
            tracing::info!(set = set.name, "another process is migrating; waiting for it to finish");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// The bookkeeping, then each migration not yet applied, then the compatibility record.
async fn apply(
    conn: &mut PoolConn,
    pooled_begin: Option<&str>,
    sql: &MigrationSql,
    set: &MigrationSet,
    migrations: &[Migration],
    session_locked: bool,
) -> Result<()> {
    let begin = format!("{}{}", sql.begin, pooled_begin.unwrap_or_default());
    transaction(conn, &begin, sql, set, Step::Bookkeeping).await?;
    // A migration once applied stays applied: those seen here are skipped without a
    // transaction each, so a migrate on a current schema costs a few reads. The others are
    // checked again under the lock (another migrator may be applying them now).
    let (seen, compatible_from) = applied_and_compatibility(conn, pooled_begin, sql, set).await?;
    for m in migrations.iter().filter(|m| !seen.contains(&m.version)) {
        let outside = session_locked && m.sql.lines().any(|l| l.trim_end() == OUTSIDE_TRANSACTION);
        let started = Instant::now();
        let applied = if outside {
            apply_outside(conn, sql, set, m).await
        } else {
            transaction(conn, &begin, sql, set, Step::Migration(m)).await
        };
        match applied {
            Ok(true) => tracing::info!(
                set = set.name,
                version = m.version,
                name = m.name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "migration applied"
            ),
            Ok(false) => {}
            Err(err) => {
                return Err(Error::Migration {
                    set: set.name,
                    version: m.version,
                    name: m.name,
                    source: Box::new(err),
                });
            }
        }
    }
    let floor = crate::migrate::compatible_from(set, migrations);
    if let Some(floor) = floor.filter(|floor| compatible_from.is_none_or(|recorded| recorded < *floor)) {
        transaction(conn, &begin, sql, set, Step::Compatibility(floor)).await?;
    }
    Ok(())
}

/// The versions of `set` applied, and its recorded oldest compatible version, read once
/// (in a transaction of its own behind a pooler). The bookkeeping tables exist by now.
async fn applied_and_compatibility(
    conn: &mut PoolConn,
    pooled_begin: Option<&str>,
    sql: &MigrationSql,
    set: &MigrationSet,
) -> Result<(HashSet<i64>, Option<i64>)> {
    let opened = conn.open_pooled(pooled_begin).await?;
    let read = async {
        let applied = applied_versions(conn, sql, set).await?;
        let (_, compatible_from): (Option<i64>, Option<i64>) =
            crate::with_conn!(conn.conn(), c => sqlx::query_as(sql.status).bind(set.name).fetch_one(c).await?);
        Ok::<_, Error>((applied, compatible_from))
    }
    .await;
    conn.close_pooled(opened, read.is_ok()).await?;
    read
}

async fn applied_versions(c: &mut PoolConn, sql: &MigrationSql, set: &MigrationSet) -> Result<HashSet<i64>> {
    let versions: Vec<i64> =
        crate::with_conn!(c.conn(), c => sqlx::query_scalar(sql.applied).bind(set.name).fetch_all(c).await?);
    Ok(versions.into_iter().collect())
}

/// Whether `m` is applied already, read on `c`.
async fn is_applied(c: &mut PoolConn, sql: &MigrationSql, set: &MigrationSet, m: &Migration) -> Result<bool> {
    Ok(applied_versions(c, sql, set).await?.contains(&m.version))
}

/// Applies `m` in the open transaction on `c` unless it is applied; whether it applied it.
/// Behind a pooler a migration meant to run outside a transaction runs inside this one,
/// its indexes built without `CONCURRENTLY`.
async fn apply_inside(c: &mut PoolConn, sql: &MigrationSql, set: &MigrationSet, m: &Migration) -> Result<bool> {
    if is_applied(c, sql, set, m).await? {
        return Ok(false);
    }
    tracing::info!(set = set.name, version = m.version, name = m.name, "applying migration");
    if m.sql.lines().any(|l| l.trim_end() == OUTSIDE_TRANSACTION) {
        for statement in statements(m.sql) {
            run_sql(c, &statement.replacen(" CONCURRENTLY", "", 1)).await?;
        }
    } else {
        run_sql(c, m.sql).await?;
    }
    crate::with_conn!(c.conn(), c => sqlx::query(sql.record).bind(set.name).bind(m.version).bind(m.name).execute(c).await.map(drop)?);
    Ok(true)
}

/// Applies `m` one statement at a time, outside a transaction, holding the session lock;
/// whether it applied it. An interrupted run leaves it unrecorded, and its statements are
/// written to run again (`IF NOT EXISTS`, an INVALID index dropped first).
async fn apply_outside(conn: &mut PoolConn, sql: &MigrationSql, set: &MigrationSet, m: &Migration) -> Result<bool> {
    if is_applied(conn, sql, set, m).await? {
        return Ok(false);
    }
    tracing::info!(set = set.name, version = m.version, name = m.name, "applying migration, outside a transaction");
    for statement in statements(m.sql) {
        if let (Some(check), Some(index)) = (sql.invalid_index, built_index(&statement)) {
            let invalid: Option<bool> =
                crate::with_conn!(conn.conn(), c => sqlx::query_scalar(check).bind(&index).fetch_optional(c).await?);
            if invalid == Some(true) {
                tracing::warn!(index, "dropping an INVALID index left by an interrupted build, to build it again");
                run_sql(conn, &format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")).await?;
            }
        }
        let mut patience = Patience::new();
        loop {
            match run_sql(conn, &statement).await {
                Err(err) if patience.wait_again(&err).await => {}
                other => break other?,
            }
        }
    }
    crate::with_conn!(conn.conn(), c => sqlx::query(sql.record).bind(set.name).bind(m.version).bind(m.name).execute(c).await.map(drop)?);
    Ok(true)
}

/// What one migrating transaction does.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Creates the record of applied migrations.
    Bookkeeping,
    /// Applies one migration unless it is applied.
    Migration(&'a Migration),
    /// Raises the set's oldest compatible version to this.
    Compatibility(i64),
}

/// Runs `step` in a transaction opened with `begin` (and the dialect's in-transaction
/// statements), committing on success; whether it changed anything. A lock not granted in
/// time rolls it back and tries again after a pause, until [`LOCK_PATIENCE`] runs out.
async fn transaction(
    conn: &mut PoolConn,
    begin: &str,
    sql: &MigrationSql,
    set: &MigrationSet,
    step: Step<'_>,
) -> Result<bool> {
    let mut patience = Patience::new();
    loop {
        // SQLite's `BEGIN IMMEDIATE` takes the write lock, and may find it taken.
        if let Err(err) = run_sql(conn, begin).await {
            if patience.wait_again(&err).await {
                continue;
            }
            return Err(err);
        }
        let result = async {
            if let Some(first) = sql.in_transaction {
                run_sql(conn, first).await?;
            }
            match step {
                Step::Bookkeeping => run_sql(conn, sql.bookkeeping).await.map(|()| true),
                Step::Migration(m) => apply_inside(conn, sql, set, m).await,
                Step::Compatibility(floor) => {
                    crate::with_conn!(conn.conn(), c => sqlx::query(sql.raise_compatible_from).bind(set.name).bind(floor).execute(c).await.map(drop)?);
                    Ok(true)
                }
            }
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = run_sql(conn, end).await;
        match result.and_then(|changed| ended.map(|()| changed)) {
            Err(err) if patience.wait_again(&err).await => {}
            other => return other,
        }
    }
}

/// Retries after a lock not granted in time (PostgreSQL's `lock_timeout`, SQLite's busy
/// timeout), after a growing pause, until [`LOCK_PATIENCE`] runs out.
struct Patience {
    started: Instant,
    delay: Duration,
}

impl Patience {
    fn new() -> Patience {
        Patience { started: Instant::now(), delay: Duration::from_millis(50) }
    }

    /// Whether to try again after `err` (having waited).
    async fn wait_again(&mut self, err: &Error) -> bool {
        let lock = matches!(err, Error::LockNotAvailable { .. } | Error::Busy { .. });
        if !lock || self.started.elapsed() >= LOCK_PATIENCE {
            return false;
        }
        tracing::info!(error = %err, retry_in_ms = self.delay.as_millis() as u64, "a migration's lock is taken; trying again");
        tokio::time::sleep(self.delay.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        true
    }
}

async fn run_sql(c: &mut PoolConn, statement: &str) -> Result<()> {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    crate::with_conn!(c.conn(), c => sqlx::raw_sql(statement).execute(c).await.map(drop)?);
    Ok(())
}

/// The statements of a migration, split after each `;` that ends a line; comment lines
/// dropped.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
        current.push_str(line);
        current.push('\n');
        if line.trim_end().ends_with(';') {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The index a `CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON schema.table`
/// statement builds, qualified with the table's schema (where PostgreSQL puts it).
fn built_index(statement: &str) -> Option<String> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let mut i = 0;
    let mut next = |expected: &[&str]| {
        let ok = words.get(i).is_some_and(|w| expected.iter().any(|e| w.eq_ignore_ascii_case(e)));
        if ok {
            i += 1;
        }
        ok
    };
    if !next(&["CREATE"]) {
        return None;
    }
    next(&["UNIQUE"]);
    if !next(&["INDEX"]) {
        return None;
    }
    next(&["CONCURRENTLY"]);
    if next(&["IF"]) {
        next(&["NOT"]);
        next(&["EXISTS"]);
    }
    let name = words.get(i)?;
    let table = words.get(i + 2)?;
    match table.rsplit_once('.') {
        Some((schema, _)) if !name.contains('.') => Some(format!("{schema}.{name}")),
        _ => Some((*name).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::{built_index, statements};

    #[test]
    fn an_index_statement_names_its_index_in_its_tables_schema() {
        let s = "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_pending ON oncommit.jobs (id) WHERE state = 'pending';";
        assert_eq!(built_index(s).as_deref(), Some("oncommit.jobs_pending"));
        assert_eq!(built_index("create unique index x on t (a)").as_deref(), Some("x"));
        assert_eq!(built_index("DROP INDEX CONCURRENTLY IF EXISTS oncommit.jobs_state;"), None);
        assert_eq!(
            statements("-- a comment\nCREATE INDEX a\n  ON t (x);\nDROP INDEX b;\n"),
            vec!["CREATE INDEX a\n  ON t (x);\n".to_owned(), "DROP INDEX b;\n".to_owned()]
        );
    }
}
