//! The demo application's tables (`data`, `socks`, `demo_runs`), migrated as their own set
//! (`demo`) beside oncommit's, in the application's own namespace.

use oncommit::migrate::MigrationSet;
use oncommit::{Db, migration};

/// The demo application's migrations.
pub static MIGRATIONS: MigrationSet = MigrationSet {
    name: "demo",
    postgres: &[
        migration!(1, "create_data_and_socks", "postgres/001_create_data_and_socks.sql"),
        migration!(2, "create_demo_runs", "postgres/002_create_demo_runs.sql"),
    ],
    sqlite: &[
        migration!(1, "create_data_and_socks", "sqlite/001_create_data_and_socks.sql"),
        migration!(2, "create_demo_runs", "sqlite/002_create_demo_runs.sql"),
    ],
};

/// Applies oncommit's migrations, then the demo application's.
pub async fn migrate(db: &Db) -> oncommit::Result<()> {
    db.migrate().await?;
    db.migrate_set(&MIGRATIONS).await
}

/// Replaces the socks with `(id, colour)` pairs, each with `pairs = 0`.
///
/// The guard form, not a closure: web handlers call this, and their futures must be Send,
/// which a closure borrowing `socks` defeats today (see docs/transactions.md).
pub async fn reset_socks(db: &Db, socks: &[(i64, &str)]) -> oncommit::Result<()> {
    let mut tx = db.begin().await?;
    oncommit::with_conn!(tx.conn(), c => {
        sqlx::query("DELETE FROM socks").execute(&mut *c).await?;
        for (id, colour) in socks {
            sqlx::query("INSERT INTO socks (id, id_a, id_b, colour) VALUES ($1, $1, $1, $2)")
                .bind(id)
                .bind(*colour)
                .execute(&mut *c)
                .await?;
        }
    });
    tx.commit().await
}
