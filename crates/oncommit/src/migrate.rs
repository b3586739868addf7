//! Embedded, numbered, idempotent migrations.
//!
//! oncommit's own tables live in the `oncommit` schema on PostgreSQL and carry an
//! `oncommit_` prefix on SQLite, so they cannot collide with an application's. Applied
//! migrations are recorded in `oncommit.schema_migrations` (SQLite:
//! `oncommit_schema_migrations`), keyed by set name, so oncommit never touches the
//! `_sqlx_migrations` table of an application that also uses sqlx migrations, and an
//! application may record its own sets there too.
//!
//! Running migrations from several processes at once is safe: PostgreSQL serializes them
//! on an advisory lock, SQLite on its write lock.

/// One migration: a number, a name saying what it does, and its SQL (several statements
/// allowed).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Position in its set, from 1.
    pub version: i64,
    /// What it does, as in its file name (`001_create_jobs.sql` → `create_jobs`).
    pub name: &'static str,
    /// The statements.
    pub sql: &'static str,
}

/// A named list of migrations, written once for each backend.
///
/// ```
/// use oncommit::migrate::{Migration, MigrationSet};
///
/// static APP: MigrationSet = MigrationSet {
///     name: "app",
///     postgres: &[Migration { version: 1, name: "create_notes", sql: "CREATE TABLE notes (id BIGSERIAL PRIMARY KEY)" }],
///     sqlite: &[Migration { version: 1, name: "create_notes", sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY)" }],
/// };
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// db.migrate_set(&APP).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MigrationSet {
    /// Recorded with each applied migration; must be unique among the sets of a database.
    pub name: &'static str,
    /// The migrations for PostgreSQL, in order.
    pub postgres: &'static [Migration],
    /// The migrations for SQLite, in order.
    pub sqlite: &'static [Migration],
}

/// Declares a [`Migration`] from a file under the calling crate's `migrations/` folder,
/// embedded at compile time: `migration!(1, "create_jobs", "postgres/001_create_jobs.sql")`.
#[macro_export]
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        $crate::migrate::Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/", $file)),
        }
    };
}

/// One of oncommit's own migrations, as the build script rendered it (its includes of
/// `current/` and its defaults filled in; see `migrations/README.md`).
macro_rules! own_migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration { version: $version, name: $name, sql: include_str!(concat!(env!("OUT_DIR"), "/migrations/", $file)) }
    };
}

/// oncommit's own tables.
pub(crate) static ONCOMMIT: MigrationSet = MigrationSet {
    name: "oncommit",
    postgres: &[
        own_migration!(1, "create_jobs_workers_leaders", "postgres/001_create_jobs_workers_leaders.sql"),
        own_migration!(2, "create_enqueue_function", "postgres/002_create_enqueue_function.sql"),
        own_migration!(3, "create_periodic_runs", "postgres/003_create_periodic_runs.sql"),
        own_migration!(4, "index_only_discarded_jobs_by_state", "postgres/004_index_only_discarded_jobs_by_state.sql"),
        own_migration!(5, "refuse_unservable_jobs_at_insert", "postgres/005_refuse_unservable_jobs_at_insert.sql"),
        own_migration!(6, "apply_task_declarations", "postgres/006_apply_task_declarations.sql"),
        own_migration!(7, "vacuum_the_jobs_table_early", "postgres/007_vacuum_the_jobs_table_early.sql"),
        own_migration!(8, "create_enqueue_many_function", "postgres/008_create_enqueue_many_function.sql"),
        own_migration!(9, "store_trace_context", "postgres/009_store_trace_context.sql"),
        own_migration!(10, "create_queue_controls", "postgres/010_create_queue_controls.sql"),
        own_migration!(11, "unique_by_content", "postgres/011_unique_by_content.sql"),
        own_migration!(12, "job_dependencies", "postgres/012_job_dependencies.sql"),
        own_migration!(13, "concurrency_keys", "postgres/013_concurrency_keys.sql"),
        own_migration!(14, "rate_limit_per_key", "postgres/014_rate_limit_per_key.sql"),
        own_migration!(15, "record_queue_activity", "postgres/015_record_queue_activity.sql"),
        own_migration!(16, "notify_only_sleeping_workers", "postgres/016_notify_only_sleeping_workers.sql"),
        own_migration!(
            17,
            "enqueue_a_keyless_job_with_a_plain_insert",
            "postgres/017_enqueue_a_keyless_job_with_a_plain_insert.sql"
        ),
        own_migration!(
            18,
            "refuse_control_characters_in_queue_names",
            "postgres/018_refuse_control_characters_in_queue_names.sql"
        ),
        own_migration!(
            19,
            "build_job_indexes_without_blocking_writes",
            "postgres/019_build_job_indexes_without_blocking_writes.sql"
        ),
        own_migration!(20, "record_worker_clocks", "postgres/020_record_worker_clocks.sql"),
        own_migration!(21, "fair_queuing_per_key", "postgres/021_fair_queuing_per_key.sql"),
        own_migration!(22, "index_fair_keys", "postgres/022_index_fair_keys.sql"),
        own_migration!(
            23,
            "keep_finished_jobs_in_a_partitioned_history",
            "postgres/023_keep_finished_jobs_in_a_partitioned_history.sql"
        ),
        own_migration!(24, "claim_a_fair_queue_in_one_call", "postgres/024_claim_a_fair_queue_in_one_call.sql"),
    ],
    sqlite: &[
        own_migration!(1, "create_jobs_workers_leaders", "sqlite/001_create_jobs_workers_leaders.sql"),
        own_migration!(2, "create_periodic_runs", "sqlite/002_create_periodic_runs.sql"),
        own_migration!(3, "index_only_discarded_jobs_by_state", "sqlite/003_index_only_discarded_jobs_by_state.sql"),
        own_migration!(4, "refuse_unservable_jobs_at_insert", "sqlite/004_refuse_unservable_jobs_at_insert.sql"),
        own_migration!(5, "apply_task_declarations", "sqlite/005_apply_task_declarations.sql"),
        own_migration!(6, "store_trace_context", "sqlite/006_store_trace_context.sql"),
        own_migration!(7, "create_queue_controls", "sqlite/007_create_queue_controls.sql"),
        own_migration!(8, "unique_by_content", "sqlite/008_unique_by_content.sql"),
        own_migration!(9, "job_dependencies", "sqlite/009_job_dependencies.sql"),
        own_migration!(10, "concurrency_keys", "sqlite/010_concurrency_keys.sql"),
        own_migration!(11, "rate_limit_per_key", "sqlite/011_rate_limit_per_key.sql"),
        own_migration!(12, "record_queue_activity", "sqlite/012_record_queue_activity.sql"),
        own_migration!(
            13,
            "refuse_control_characters_in_queue_names",
            "sqlite/013_refuse_control_characters_in_queue_names.sql"
        ),
        own_migration!(14, "record_worker_clocks", "sqlite/014_record_worker_clocks.sql"),
        own_migration!(15, "fair_queuing_per_key", "sqlite/015_fair_queuing_per_key.sql"),
    ],
};

/// oncommit's own migrations up to and including `version`, under the set name
/// `oncommit`: to start a test database at an older schema, then upgrade it with
/// [`Db::migrate`](crate::Db::migrate) as a deployment would.
///
/// ```
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// db.migrate_set(&oncommit::migrate::oncommit_until(4)).await?;
/// db.migrate().await?; // the rest
/// # Ok(()) }
/// ```
pub fn oncommit_until(version: i64) -> MigrationSet {
    let until = |ms: &'static [Migration]| &ms[..ms.iter().take_while(|m| m.version <= version).count()];
    MigrationSet { name: ONCOMMIT.name, postgres: until(ONCOMMIT.postgres), sqlite: until(ONCOMMIT.sqlite) }
}

/// oncommit's migrations after which a worker that does not know them must not claim:
/// they moved a rule into the claim itself (pausing and queue limits, rate limits per
/// key), which an older worker would ignore. Every other migration only adds (a column,
/// an index, a trigger that enforces its rule whoever writes), so the binary of the
/// release before keeps working on it during a rolling deploy (docs/upgrading.md).
const CLAIMS_CHANGED_BY: &[&str] = &["create_queue_controls", "rate_limit_per_key"];

/// The oldest version of `set` a binary must know to use a schema with all of
/// `migrations` applied, for the sets whose compatibility is known (oncommit's own).
pub(crate) fn compatible_from(set: &MigrationSet, migrations: &[Migration]) -> Option<i64> {
    (set.name == ONCOMMIT.name).then(|| {
        migrations.iter().filter(|m| CLAIMS_CHANGED_BY.contains(&m.name)).map(|m| m.version).max().unwrap_or(1)
    })
}

/// Whether every migration of `set` written for `db`'s database is applied (read only).
///
/// ```
/// # async fn demo(db: oncommit::Db, app: oncommit::migrate::MigrationSet) -> oncommit::Result<()> {
/// if !oncommit::migrate::is_applied(&db, &app).await? {
///     db.migrate_set(&app).await?;
/// }
/// # Ok(()) }
/// ```
pub async fn is_applied(db: &crate::Db, set: &MigrationSet) -> crate::Result<bool> {
    let mut conn = db.acquire().await?;
    let (latest, _) = crate::driver::migrations::recorded(&mut conn, db.pooled_begin(), set).await?;
    let expected = on_backend!(db.backend(), migrations(set)).last().map(|m| m.version);
    Ok(latest >= expected)
}

/// What a database's schema is to this binary: read by [`Db::schema_status`](crate::Db::schema_status),
/// checked by every worker and `oncommit` command before it uses the database.
///
/// ```
/// # async fn demo(db: oncommit::Db) -> oncommit::Result<()> {
/// let status = db.schema_status().await?;
/// if status.check().is_err() {
///     eprintln!("{status}"); // says what to run
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaStatus {
    /// The newest of oncommit's migrations applied to the database; `None` when none is.
    pub applied: Option<i64>,
    /// The newest this binary knows.
    pub expected: i64,
    /// The oldest version a binary must know to use the database's schema, as recorded by
    /// the newest `migrate` that ran; `None` when none recorded it.
    pub compatible_from: Option<i64>,
}

impl SchemaStatus {
    /// Whether the database is at exactly this binary's version.
    pub fn is_current(&self) -> bool {
        self.applied == Some(self.expected)
    }

    /// `Ok` when this binary may use the schema: it is current, or newer and still
    /// compatible with this binary; otherwise [`Error::SchemaVersion`](crate::Error::SchemaVersion),
    /// whose message says what to run.
    pub fn check(&self) -> crate::Result<()> {
        match self.applied {
            Some(applied) if applied >= self.expected && self.compatible_from.unwrap_or(1) <= self.expected => Ok(()),
            _ => Err(crate::Error::SchemaVersion { status: *self }),
        }
    }
}

impl std::fmt::Display for SchemaStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (expected, from) = (self.expected, self.compatible_from.unwrap_or(1));
        match self.applied {
            None => write!(f, "oncommit's tables are not in this database: run `oncommit migrate`"),
            Some(applied) if applied < expected => write!(
                f,
                "the database's schema is at oncommit migration {applied}, this binary needs {expected}: run `oncommit migrate`"
            ),
            Some(applied) if from > expected => write!(
                f,
                "the database's schema (oncommit migration {applied}) needs a binary that knows migration {from} or later; \
                 this one knows {expected}: upgrade it"
            ),
            Some(applied) if applied > expected => {
                write!(
                    f,
                    "the database's schema is at oncommit migration {applied}, newer than this binary's {expected} and compatible with it"
                )
            }
            Some(applied) => {
                write!(f, "the database's schema is at oncommit migration {applied}, as this binary expects")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use std::path::Path;

    /// The numbered migrations of `db` and its `current/` definitions, by file name.
    fn files(db: &str) -> (Vec<(String, String)>, Vec<String>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(db);
        let read = |dir: &Path| {
            let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
                .collect();
            files.sort();
            files
        };
        let current = read(&dir.join("current")).into_iter().map(|(name, _)| name).collect();
        (read(&dir), current)
    }

    #[test]
    fn the_migrations_have_one_source_per_function() {
        let bodies: [(&str, &[&str]); 2] =
            [("postgres", &["CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"]), ("sqlite", &["CREATE TRIGGER"])];
        for (db, starts) in bodies {
            let (migrations, current) = files(db);
            for (name, sql) in &migrations {
                let code = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
                let written = starts.iter().any(|start| code.contains(start));
                assert!(!written, "{db}/{name} writes a body out: put it in current/ and include it");
            }
            for file in &current {
                let line = format!("-- include: current/{file}");
                assert!(
                    migrations.iter().any(|(_, sql)| sql.lines().any(|l| l.trim_end() == line)),
                    "{db}/current/{file} is included by no migration"
                );
            }
        }
    }
}
