//! The enqueue figures of `oncommit bench`, each with its raw-SQL twin: one job per
//! transaction from several clients (the rate a web application's requests enqueue at),
//! and many jobs in one call.

use std::time::{Duration, Instant};

use oncommit::{Conn, Db};

use super::{BenchNoop, CLIENTS, QUEUE, jobs_table};

/// Enqueues `jobs` jobs, 1000 per `enqueue_many` statement.
pub(super) async fn enqueue_batched(db: &Db, jobs: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut left = jobs;
    while left > 0 {
        let n = left.min(1000);
        db.enqueue_many((0..n).map(|_| BenchNoop {})).await?;
        left -= n;
    }
    Ok(started.elapsed())
}

/// How each single-job transaction enqueues.
#[derive(Debug, Clone, Copy)]
pub(super) enum Single {
    /// `tx.enqueue(task)` from Rust.
    TxEnqueue,
    /// `SELECT oncommit.enqueue(…)` (PostgreSQL).
    SqlFunction,
    /// A plain `INSERT` of the same row, no oncommit code: the twin to compare with.
    RawInsert,
}

/// `jobs` transactions of one job each, spread over `CLIENTS` clients.
pub(super) async fn enqueue_single(db: &Db, jobs: usize, how: Single) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    let table = jobs_table(db);
    for client in 0..CLIENTS {
        let db = db.clone();
        let mine = jobs / CLIENTS + usize::from(client < jobs % CLIENTS);
        clients.spawn(async move {
            for _ in 0..mine {
                let mut tx = db.begin().await?;
                match (how, tx.conn()) {
                    (Single::TxEnqueue, _) => {
                        tx.enqueue(BenchNoop {}).await?;
                    }
                    (Single::SqlFunction, Conn::Postgres(c)) => {
                        sqlx::query("SELECT oncommit.enqueue('bench_noop', '{}', queue => $1)")
                            .bind(QUEUE)
                            .execute(c)
                            .await?;
                    }
                    (Single::RawInsert, conn) => {
                        let sql = format!(
                            "INSERT INTO {table} (task, args, queue, priority, max_attempts) \
                             VALUES ('bench_noop', '{{}}', $1, 0, 25)"
                        );
                        oncommit::with_conn!(conn, c => {
                            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(QUEUE).execute(c).await?;
                        });
                    }
                    (Single::SqlFunction, Conn::Sqlite(_)) => anyhow::bail!("SQLite has no oncommit.enqueue"),
                }
                tx.commit().await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = clients.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// `oncommit.enqueue_many` with `jobs` args in one call (PostgreSQL).
pub(super) async fn enqueue_many_sql(db: &Db, jobs: usize) -> anyhow::Result<Duration> {
    bulk(
        db,
        "SELECT oncommit.enqueue_many('bench_noop', ARRAY(SELECT '{}'::jsonb FROM generate_series(1, $2)), queue => $1)",
        jobs,
    )
    .await
}

/// The same rows by a plain `INSERT … SELECT` (PostgreSQL).
pub(super) async fn insert_select_raw(db: &Db, jobs: usize) -> anyhow::Result<Duration> {
    bulk(
        db,
        "INSERT INTO oncommit.jobs (task, args, queue, priority, max_attempts) \
         SELECT 'bench_noop', '{}', $1, 0, 25 FROM generate_series(1, $2)",
        jobs,
    )
    .await
}

async fn bulk(db: &Db, statement: &'static str, jobs: usize) -> anyhow::Result<Duration> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
    let started = Instant::now();
    sqlx::query(statement).bind(QUEUE).bind(i64::try_from(jobs)?).execute(c).await?;
    Ok(started.elapsed())
}
