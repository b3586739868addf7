//! Applying a migration set on a connection: the dialect's bookkeeping (where applied
//! migrations are recorded, how concurrent migrators are serialized) around each pending
//! migration, in one transaction.

use std::collections::HashSet;

use crate::driver::conn::PoolConn;
use crate::error::{Error, Result};
use crate::migrate::MigrationSet;

/// Applies the pending migrations of `set` in one transaction on `conn`; `pooled_begin`
/// is what a transaction opens with behind a transaction pooler (the session may hold
/// another client's statements).
pub(crate) async fn run(conn: &mut PoolConn, pooled_begin: Option<&str>, set: &MigrationSet) -> Result<()> {
    let backend = conn.backend();
    let dialect = on_backend!(backend, const MIGRATIONS);
    let migrations = on_backend!(backend, migrations(set));
    let begin = format!("{}{}", dialect.begin, pooled_begin.unwrap_or_default());
    crate::with_conn!(conn.conn(), c => {
        sqlx::raw_sql(sqlx::AssertSqlSafe(begin)).execute(&mut *c).await?;
        let result = async {
            if let Some(lock) = dialect.lock {
                sqlx::raw_sql(lock).execute(&mut *c).await?;
            }
            sqlx::raw_sql(dialect.bookkeeping).execute(&mut *c).await?;
            let applied: HashSet<i64> = sqlx::query_scalar(dialect.applied)
                .bind(set.name)
                .fetch_all(&mut *c)
                .await?
                .into_iter()
                .collect();
            for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
                tracing::info!(set = set.name, version = m.version, name = m.name, "applying migration");
                let applied = async {
                    sqlx::raw_sql(m.sql).execute(&mut *c).await?;
                    sqlx::query(dialect.record).bind(set.name).bind(m.version).bind(m.name).execute(&mut *c).await?;
                    Ok::<_, Error>(())
                };
                applied.await.map_err(|e| Error::Migration {
                    set: set.name,
                    version: m.version,
                    name: m.name,
                    source: Box::new(e),
                })?;
            }
            Ok::<_, Error>(())
        }
        .await;
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = sqlx::raw_sql(end).execute(&mut *c).await;
        result?;
        ended?;
    });
    Ok(())
}
