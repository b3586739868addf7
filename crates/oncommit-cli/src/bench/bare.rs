//! The raw twins' own table: the minimum a queue needs and nothing of oncommit's (no
//! triggers, no functions, no other index, no wide row), so a ratio against it shows what
//! oncommit costs. A primary key, the queue, the arguments, a state, and one partial index
//! of the available ids to claim by, in id order (on `(queue, id)` PostgreSQL's planner
//! walks the primary key instead, over every finished row, once the table was analyzed
//! full: a twin that slows down as it drains). Created fresh and vacuumed in the run that
//! uses it, dropped at its end.

use oncommit::{Conn, Db};

use super::{BATCH, QUEUE};

/// Its name, the same on both databases (PostgreSQL: in the connection's default schema,
/// outside `oncommit`).
pub(super) const TABLE: &str = "oncommit_bench_bare";

/// Creates the table afresh, empty.
pub(super) async fn create(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    match conn.conn() {
        Conn::Postgres(c) => {
            sqlx::raw_sql(
                "DROP TABLE IF EXISTS oncommit_bench_bare; \
                 CREATE TABLE oncommit_bench_bare (id bigserial PRIMARY KEY, queue text NOT NULL, \
                     args jsonb NOT NULL, state text NOT NULL DEFAULT 'available'); \
                 CREATE INDEX oncommit_bench_bare_claim ON oncommit_bench_bare (id) WHERE state = 'available'",
            )
            .execute(&mut *c)
            .await?;
        }
        Conn::Sqlite(c) => {
            sqlx::raw_sql(
                "DROP TABLE IF EXISTS oncommit_bench_bare; \
                 CREATE TABLE oncommit_bench_bare (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, \
                     args TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'available'); \
                 CREATE INDEX oncommit_bench_bare_claim ON oncommit_bench_bare (id) WHERE state = 'available'",
            )
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}

/// Empties the table and, on PostgreSQL, vacuums it: each phase starts clean.
pub(super) async fn clear(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    match conn.conn() {
        Conn::Postgres(c) => {
            sqlx::raw_sql("TRUNCATE oncommit_bench_bare").execute(&mut *c).await?;
            sqlx::raw_sql("VACUUM ANALYZE oncommit_bench_bare").execute(&mut *c).await?;
        }
        Conn::Sqlite(c) => {
            sqlx::raw_sql("DELETE FROM oncommit_bench_bare").execute(&mut *c).await?;
        }
    }
    Ok(())
}

/// Drops the table.
pub(super) async fn drop_table(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    oncommit::with_conn!(conn.conn(), c => {
        sqlx::raw_sql("DROP TABLE IF EXISTS oncommit_bench_bare").execute(&mut *c).await?;
    });
    Ok(())
}

/// Fills the cleared table with `n` available jobs in one statement; returns the first id.
pub(super) async fn fill(db: &Db, n: usize) -> anyhow::Result<i64> {
    clear(db).await?;
    let n = i64::try_from(n)?;
    let mut conn = db.acquire().await?;
    let first = match conn.conn() {
        Conn::Postgres(c) => {
            let first = sqlx::query_scalar(
                "WITH new AS (INSERT INTO oncommit_bench_bare (queue, args) \
                   SELECT $1, '{}' FROM generate_series(1, $2) RETURNING id) SELECT min(id) FROM new",
            )
            .bind(QUEUE)
            .bind(n)
            .fetch_one(&mut *c)
            .await?;
            sqlx::raw_sql("VACUUM ANALYZE oncommit_bench_bare").execute(&mut *c).await?;
            first
        }
        Conn::Sqlite(c) => {
            let first: i64 = sqlx::query_scalar(
                "SELECT coalesce(max(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'oncommit_bench_bare'",
            )
            .fetch_one(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO oncommit_bench_bare (queue, args) \
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) SELECT $1, '{}' FROM n",
            )
            .bind(QUEUE)
            .bind(n)
            .execute(&mut *c)
            .await?;
            first
        }
    };
    Ok(first)
}

/// The bare insert of one job.
pub(super) const INSERT_ONE: &str = "INSERT INTO oncommit_bench_bare (queue, args) VALUES ($1, '{}')";

/// The one-job transaction's twin: `BEGIN; INSERT …; COMMIT` on a pooled connection. On
/// SQLite, as a competent hand-written client does with one writer: the write lock taken
/// at `BEGIN IMMEDIATE`, and this process's writers taking turns in memory (`turn`) rather
/// than in SQLite's busy handler, which sleeps.
pub(super) async fn insert_one(db: &Db, turn: &tokio::sync::Mutex<()>) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    match conn.conn() {
        Conn::Postgres(c) => {
            sqlx::raw_sql("BEGIN").execute(&mut *c).await?;
            sqlx::query(INSERT_ONE).bind(QUEUE).execute(&mut *c).await?;
            sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
        }
        Conn::Sqlite(c) => {
            let _turn = turn.lock().await;
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await?;
            sqlx::query(INSERT_ONE).bind(QUEUE).execute(&mut *c).await?;
            sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
        }
    }
    Ok(())
}

/// The twin of `enqueue_many` from SQL: `$2` jobs on queue `$1` in one statement.
pub(super) const INSERT_SELECT: &str =
    "INSERT INTO oncommit_bench_bare (queue, args) SELECT $1, '{}' FROM generate_series(1, $2)";

/// One claim and its completion, the raw minimum a queue needs: up to `BATCH` jobs in id
/// order, skipping those another client holds, claimed in one transaction (committed, as a
/// job must be seen running while it runs), then completed in another. Returns how many it
/// took. On SQLite the clients take turns in memory, as in `insert_one`, for each
/// transaction.
pub(super) async fn claim_complete(db: &Db, turn: &tokio::sync::Mutex<()>) -> anyhow::Result<usize> {
    let mut conn = db.acquire().await?;
    let claimed: Vec<i64> = match conn.conn() {
        Conn::Postgres(c) => {
            // Each statement its own transaction.
            let ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE oncommit_bench_bare SET state = 'running' \
                 WHERE id = ANY(ARRAY(SELECT id FROM oncommit_bench_bare WHERE state = 'available' AND queue = $1 \
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING id",
            )
            .bind(QUEUE)
            .bind(BATCH)
            .fetch_all(&mut *c)
            .await?;
            if !ids.is_empty() {
                sqlx::query("UPDATE oncommit_bench_bare SET state = 'completed' WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *c)
                    .await?;
            }
            ids
        }
        Conn::Sqlite(c) => {
            let ids: Vec<i64> = {
                let _turn = turn.lock().await;
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await?;
                let ids = sqlx::query_scalar(
                    "UPDATE oncommit_bench_bare SET state = 'running' \
                     WHERE id IN (SELECT id FROM oncommit_bench_bare WHERE state = 'available' AND queue = $1 \
                         ORDER BY id LIMIT $2) RETURNING id",
                )
                .bind(QUEUE)
                .bind(BATCH)
                .fetch_all(&mut *c)
                .await?;
                sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
                ids
            };
            if !ids.is_empty() {
                let _turn = turn.lock().await;
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *c).await?;
                sqlx::query(
                    "UPDATE oncommit_bench_bare SET state = 'completed' WHERE id IN (SELECT value FROM json_each($1))",
                )
                .bind(serde_json::to_string(&ids)?)
                .execute(&mut *c)
                .await?;
                sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
            }
            ids
        }
    };
    Ok(claimed.len())
}
