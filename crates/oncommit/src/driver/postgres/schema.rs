//! PostgreSQL's description of oncommit's schema, for the snapshot the migrations must keep
//! producing (`schema/` beside `src/`).

use sqlx::postgres::PgConnection;

use crate::error::Result;

/// Catalog queries, each yielding lines of text in a fixed order: what the `oncommit`
/// schema holds, without names that differ between databases (no oids, no database name).
const DESCRIBE: &[(&str, &str)] = &[
    (
        "columns",
        "SELECT format('%s.%s %s%s%s', table_name, column_name, data_type, \
                CASE WHEN is_nullable = 'NO' THEN ' NOT NULL' ELSE '' END, \
                coalesce(' DEFAULT ' || column_default, '')) \
         FROM information_schema.columns WHERE table_schema = 'oncommit' \
         ORDER BY table_name, ordinal_position",
    ),
    (
        "constraints",
        "SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE connamespace = 'oncommit'::regnamespace ORDER BY conrelid::regclass::text, conname",
    ),
    ("indexes", "SELECT indexdef FROM pg_indexes WHERE schemaname = 'oncommit' ORDER BY indexname"),
    (
        "triggers",
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         WHERE c.relnamespace = 'oncommit'::regnamespace AND NOT t.tgisinternal ORDER BY c.relname, t.tgname",
    ),
    (
        "functions",
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p \
         WHERE p.pronamespace = 'oncommit'::regnamespace ORDER BY p.oid::regprocedure::text",
    ),
    (
        "migrations",
        "SELECT format('%s %s', version, name) FROM oncommit.schema_migrations \
         WHERE set_name = 'oncommit' ORDER BY version",
    ),
];

/// The `oncommit` schema as text: columns, constraints, indexes, triggers, whole function
/// definitions and the migrations recorded, each section in a fixed order.
pub(crate) async fn describe(c: &mut PgConnection) -> Result<String> {
    let mut sections = Vec::with_capacity(DESCRIBE.len());
    for (section, sql) in DESCRIBE {
        sections.push((*section, sqlx::query_scalar(*sql).fetch_all(&mut *c).await?));
    }
    Ok(crate::driver::schema_text(sections))
}
