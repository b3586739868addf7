// The module's documentation is on its declaration in lib.rs: build.rs includes this file.

/// The queue of a job that names none.
pub const QUEUE: &str = "default";
/// The priority of a job that gives none (lower runs first).
pub const PRIORITY: i16 = 0;
/// The attempts of a job that gives none.
pub const MAX_ATTEMPTS: i32 = 25;
/// The database of the `oncommit` command when neither `DATABASE_URL` nor
/// `--database-url` names one: the embedded SQLite file, made at first use.
pub const DATABASE_URL: &str = "sqlite://oncommit.db";
