//! The enqueue figures of `oncommit bench`, each with its raw-SQL twin: one job per
//! transaction from several clients (the rate a web application's requests enqueue at),
//! and many jobs in one call.

use std::time::{Duration, Instant};

use oncommit::{Conn, Db};

use super::{BenchNoop, CLIENTS, QUEUE, bare};

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
    /// `BEGIN; INSERT …; COMMIT` into the bare table on a pooled connection, no oncommit
    /// code: the twin to compare with.
    RawInsert,
}

/// Runs `n` calls of `one` spread over `CLIENTS` clients, each client its share in turn;
/// returns how long they took.
pub(super) async fn spread<F, Fut>(db: &Db, n: usize, one: F) -> anyhow::Result<Duration>
where
    F: Fn(Db) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (db, one) = (db.clone(), one.clone());
        let mine = n / CLIENTS + usize::from(client < n % CLIENTS);
        clients.spawn(async move {
            for _ in 0..mine {
                one(db.clone()).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = clients.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// One `begin; tx.enqueue; commit`.
pub(super) async fn tx_enqueue(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.begin().await?;
    tx.enqueue(BenchNoop {}).await?;
    tx.commit().await?;
    Ok(())
}

/// `jobs` transactions of one job each, spread over `CLIENTS` clients.
pub(super) async fn enqueue_single(db: &Db, jobs: usize, how: Single) -> anyhow::Result<Duration> {
    let turn = std::sync::Arc::new(tokio::sync::Mutex::new(()));
    spread(db, jobs, move |db| {
        let turn = turn.clone();
        async move {
            match how {
                Single::RawInsert => bare::insert_one(&db, &turn).await,
                Single::TxEnqueue => tx_enqueue(&db).await,
                Single::SqlFunction => {
                    let mut tx = db.begin().await?;
                    let Conn::Postgres(c) = tx.conn() else { anyhow::bail!("SQLite has no oncommit.enqueue") };
                    sqlx::query("SELECT oncommit.enqueue('bench_noop', '{}', queue => $1)")
                        .bind(QUEUE)
                        .execute(c)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }
            }
        }
    })
    .await
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

/// As many rows by a plain `INSERT … SELECT` into the bare table (PostgreSQL).
pub(super) async fn insert_select_raw(db: &Db, jobs: usize) -> anyhow::Result<Duration> {
    bulk(db, bare::INSERT_SELECT, jobs).await
}

async fn bulk(db: &Db, statement: &'static str, jobs: usize) -> anyhow::Result<Duration> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
    let started = Instant::now();
    sqlx::query(statement).bind(QUEUE).bind(i64::try_from(jobs)?).execute(c).await?;
    Ok(started.elapsed())
}
