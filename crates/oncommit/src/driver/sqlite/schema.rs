//! SQLite's description of oncommit's schema, for the snapshot the migrations must keep
//! producing (`schema/` beside `src/`).

use sqlx::sqlite::SqliteConnection;

use crate::error::Result;

/// Every table, index and trigger of oncommit's tables as SQLite stores its `CREATE`
/// statement, then the migrations recorded.
const DESCRIBE: &[(&str, &str)] = &[
    (
        "objects",
        "SELECT type || ' ' || name || char(10) || coalesce(sql, '(implicit)') FROM sqlite_master \
         WHERE tbl_name LIKE 'oncommit\\_%' ESCAPE '\\' ORDER BY type, name",
    ),
    (
        "migrations",
        "SELECT version || ' ' || name FROM oncommit_schema_migrations WHERE set_name = 'oncommit' ORDER BY version",
    ),
];

/// The schema of oncommit's tables as text, each section in a fixed order.
pub(crate) async fn describe(c: &mut SqliteConnection) -> Result<String> {
    let mut sections = Vec::with_capacity(DESCRIBE.len());
    for (section, sql) in DESCRIBE {
        sections.push((*section, sqlx::query_scalar(*sql).fetch_all(&mut *c).await?));
    }
    Ok(crate::driver::schema_text(sections))
}
