mod bad_input;
mod bulk;
mod concurrency_keys;
mod connect;
mod declarations;
mod enqueue_many_sql;
mod history;
mod hooks;
mod jobs;
mod listing;
mod liveness;
mod locks;
mod metrics;
mod migrations;
mod notify;
mod queues;
mod retry;
mod send_futures;
mod slots;
mod tasks;
mod testing_kit;
mod tls;
mod transactions;
mod unique;
mod worker;
mod workflows;

use oncommit::{Conn, Tx};
use sqlx::AssertSqlSafe;

/// Runs one statement, written per backend, in autocommit; returns the database's error
/// message, if any (tests of bad input and of hand-written rows).
pub(crate) async fn exec(db: &oncommit::Db, postgres: &str, sqlite: &str) -> Result<(), String> {
    let mut conn = db.acquire().await.map_err(|e| e.to_string())?;
    match conn.conn() {
        Conn::Postgres(c) => sqlx::raw_sql(AssertSqlSafe(postgres.to_owned())).execute(c).await.map(drop),
        Conn::Sqlite(c) => sqlx::raw_sql(AssertSqlSafe(sqlite.to_owned())).execute(c).await.map(drop),
    }
    .map_err(|e| e.to_string())
}

/// Creates the table most tests use: `items(id BIGINT PRIMARY KEY, name TEXT)`.
pub(crate) async fn create_items(db: &oncommit::Db) {
    let mut conn = db.acquire().await.unwrap();
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::raw_sql("CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)").execute(c).await.unwrap();
    });
}

/// Inserts an item inside a transaction scope.
pub(crate) async fn insert(tx: &mut Tx<'_>, id: i64, name: &str) -> oncommit::Result<()> {
    let name = name.to_owned();
    oncommit::with_conn!(tx.conn(), c => {
        sqlx::query("INSERT INTO items (id, name) VALUES ($1, $2)").bind(id).bind(name).execute(c).await?;
    });
    Ok(())
}

/// The ids of the committed items, as another connection sees them.
pub(crate) async fn committed_ids(db: &oncommit::Db) -> Vec<i64> {
    let mut conn = db.acquire().await.unwrap();
    ids_on(conn.conn()).await
}

/// A simple query (no prepared statement): safe in autocommit behind a transaction pooler too.
pub(crate) async fn ids_on(conn: Conn<'_>) -> Vec<i64> {
    use sqlx::Row;
    oncommit::with_conn!(conn, c => {
        sqlx::raw_sql("SELECT id FROM items ORDER BY id").fetch_all(c).await.unwrap().iter().map(|r| r.get(0)).collect()
    })
}
