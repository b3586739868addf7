//! PostgreSQL's statements for `oncommit doctor`: the catalog, `pg_stat_activity`,
//! prepared transactions and replication slots. Read only.

use std::time::Duration;

use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use crate::driver::contract::{Diagnostics, VacuumHolder};
use crate::driver::secs;
use crate::error::Result;

/// One row per holder: kind, name, age in seconds, application, state, query start (ms).
type HolderRow = (String, String, Option<i64>, Option<String>, Option<String>, Option<i64>);

impl Diagnostics for PostgresDriver {
    async fn invalid_indexes(c: &mut PgConnection) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
             WHERE NOT i.indisvalid AND t.relnamespace = 'oncommit'::regnamespace ORDER BY 1",
        )
        .fetch_all(&mut *c)
        .await?)
    }

    async fn vacuum_settings(c: &mut PgConnection) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT unnest(coalesce(reloptions, '{}')) FROM pg_class WHERE oid = 'oncommit.jobs'::regclass",
        )
        .fetch_all(&mut *c)
        .await?)
    }

    async fn vacuum_holders(c: &mut PgConnection) -> Result<Vec<VacuumHolder>> {
        // Another session's transaction holds back vacuum of this database's tables while
        // it holds a snapshot or a transaction id (the ten oldest; autovacuum's own are
        // short and not the operator's to end); prepared transactions and slots hold it
        // back for every database.
        let rows: Vec<HolderRow> = sqlx::query_as(
            "(SELECT 'transaction', pid::text, extract(epoch FROM now() - xact_start)::int8, application_name, state, \
                     (extract(epoch FROM query_start) * 1000)::int8 \
              FROM pg_stat_activity \
              WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL \
                AND backend_type = 'client backend' AND (backend_xmin IS NOT NULL OR backend_xid IS NOT NULL) \
              ORDER BY xact_start LIMIT 10) \
             UNION ALL \
             (SELECT 'prepared transaction', gid, extract(epoch FROM now() - prepared)::int8, owner::text, NULL, NULL \
              FROM pg_prepared_xacts ORDER BY prepared) \
             UNION ALL \
             (SELECT 'replication slot', slot_name::text, NULL, slot_type, CASE WHEN active THEN 'active' ELSE 'inactive' END, NULL \
              FROM pg_replication_slots WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL)",
        )
        .fetch_all(&mut *c)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kind, name, age_secs, application, state, query_start_ms)| VacuumHolder {
                kind: match kind.as_str() {
                    "transaction" => "transaction",
                    "prepared transaction" => "prepared transaction",
                    _ => "replication slot",
                },
                name,
                age_secs,
                application,
                state,
                query_start_ms,
            })
            .collect())
    }

    async fn stale_leases(c: &mut PgConnection, grace: Duration) -> Result<(i64, Option<i64>)> {
        Ok(sqlx::query_as(
            "SELECT count(*), min(j.id) FROM oncommit.jobs j \
             WHERE j.state = 'running' AND j.lease_expires_at < now() - make_interval(secs => $1) \
               AND NOT EXISTS (SELECT 1 FROM oncommit.workers w WHERE w.id = j.lease_owner \
                               AND w.heartbeat_at > now() - make_interval(secs => $1))",
        )
        .bind(secs(grace))
        .fetch_one(&mut *c)
        .await?)
    }

    async fn worker_clocks(c: &mut PgConnection, alive: Duration) -> Result<Vec<(String, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT id, clock_offset_ms FROM oncommit.workers \
             WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY id",
        )
        .bind(secs(alive))
        .fetch_all(&mut *c)
        .await?)
    }
}

/// Whether a NOTIFY sent through `db` reaches a LISTEN on its listen connection within 2 s;
/// `None` when it has none (a transaction pooler without a listen URL).
pub(crate) async fn listen_works(db: &crate::Db) -> Result<Option<bool>> {
    let Some(listen) = db.listen_pool() else { return Ok(None) };
    let mut listener = sqlx::postgres::PgListener::connect_with(&listen.pool).await?;
    let channel = format!("oncommit_doctor_{:x}", fastrand::u64(..));
    listener.listen(&channel).await?;
    let mut conn = db.acquire().await?;
    let opened = conn.open_pooled(db.pooled_begin()).await?;
    let sent = match conn.conn() {
        crate::Conn::Postgres(c) => {
            sqlx::query("SELECT pg_notify($1, 'ping')").bind(&channel).execute(c).await.map(drop)
        }
        #[cfg(feature = "sqlite")]
        crate::Conn::Sqlite(_) => Ok(()),
    };
    conn.close_pooled(opened, sent.is_ok()).await?;
    sent?;
    let heard = tokio::time::timeout(Duration::from_secs(2), listener.recv()).await;
    Ok(Some(matches!(heard, Ok(Ok(_)))))
}

/// Whether statements of one client connection of `db` run on different server sessions:
/// a transaction pooler the URL does not announce. `None` when the URL announces one.
/// Simple queries only (no prepared statement), which any pooler passes.
pub(crate) async fn transaction_pooled(db: &crate::Db) -> Result<Option<bool>> {
    use sqlx::Row as _;
    if db.pooler() == crate::Pooler::Transaction {
        return Ok(None);
    }
    async fn pid(conn: &mut crate::conn::PoolConn) -> Result<i32> {
        match conn.conn() {
            crate::Conn::Postgres(c) => Ok(sqlx::raw_sql("SELECT pg_backend_pid()").fetch_one(c).await?.try_get(0)?),
            #[cfg(feature = "sqlite")]
            crate::Conn::Sqlite(_) => Ok(0),
        }
    }
    async fn run(conn: &mut crate::conn::PoolConn, sql: &'static str) -> Result<()> {
        match conn.conn() {
            crate::Conn::Postgres(c) => sqlx::raw_sql(sql).execute(c).await.map(drop)?,
            #[cfg(feature = "sqlite")]
            crate::Conn::Sqlite(_) => {}
        }
        Ok(())
    }
    let (mut a, mut b, mut c) = (db.acquire().await?, db.acquire().await?, db.acquire().await?);
    let first = pid(&mut a).await?;
    // A pooler that lends server sessions per transaction lends the session `a` just used
    // to another client while that client holds a transaction open, so `a`'s next
    // statement runs on another. Which idle session a pooler lends is its choice: two
    // holders, a few rounds; a direct connection never changes its pid.
    for _ in 0..5 {
        run(&mut b, "BEGIN").await?;
        run(&mut c, "BEGIN").await?;
        let held = async {
            pid(&mut b).await?;
            pid(&mut c).await?;
            pid(&mut a).await
        }
        .await;
        run(&mut b, "ROLLBACK").await?;
        run(&mut c, "ROLLBACK").await?;
        if held? != first {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}
