//! `oncommit bench --breakdown` (PostgreSQL): where the one-job transaction's time goes
//! between a bare `INSERT` and `tx.enqueue`. A ladder of one-job transactions, each step
//! adding one thing oncommit does, measured in alternating rounds (this machine's rate
//! drifts by a fifth from one minute to the next): the bare table; a copy of oncommit's
//! table with its row (columns, defaults, checks); its claim index in the bare one's
//! place; each of its other indexes in turn; its insert triggers (`oncommit.jobs` itself); the
//! `oncommit.enqueue` call with every option given; the task's declaration looked up; the
//! sleepers checked; then `tx.enqueue` from Rust in the function's place (its own insert,
//! `Tx` and hooks). Each step's cost is its time per job minus the step before's, and its
//! share is that against the whole gap, so the shares add up to the gap. The copies are
//! created and dropped in the run.

use std::time::Duration;

use oncommit::{Conn, Db};
use serde::Serialize;
use sqlx::AssertSqlSafe;

use super::{CLIENTS, QUEUE, bare, clear, enqueue, rate};
use crate::demo::print;
use crate::progress::while_running;

/// Rounds over the ladder.
const ROUNDS: usize = 6;

/// The prefix of the copies of oncommit's table the middle steps write.
const COPY: &str = "oncommit_bench_copy_";

/// One step of the ladder.
#[derive(Debug, Clone)]
struct Step {
    name: String,
    how: How,
    /// The table its transactions write, emptied after each round of it.
    writes: String,
}

/// What a step's transaction does.
#[derive(Debug, Clone)]
enum How {
    /// Runs this statement (`$1` the queue) between `BEGIN` and `COMMIT`.
    Sql(String),
    /// `tx.enqueue` in an oncommit transaction.
    TxEnqueue,
}

/// Inserts one row as `oncommit.enqueue` would into `table`.
fn insert_into(table: &str) -> How {
    How::Sql(format!(
        "INSERT INTO {table} (task, args, queue, priority, max_attempts) VALUES ('bench_noop', '{{}}', $1, 0, 25)"
    ))
}

/// The ladder, and the statements that create its copies of oncommit's table: its row with
/// the bare table's indexes, then its primary key and claim index, then each next one with
/// one more of its indexes.
async fn ladder(db: &Db) -> anyhow::Result<(Vec<Step>, Vec<String>)> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'oncommit' AND tablename = 'jobs' \
           AND indexname NOT IN ('jobs_pkey', 'jobs_claim') ORDER BY indexname",
    )
    .fetch_all(&mut *c)
    .await?;
    let claim: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'oncommit' AND indexname = 'jobs_claim'",
    )
    .fetch_one(&mut *c)
    .await?;
    let on = |def: &str, table: &str| {
        // `CREATE INDEX jobs_x ON oncommit.jobs USING …`: unnamed, on the copy.
        let (_, rest) = def.split_once(" ON oncommit.jobs ").unwrap_or((def, ""));
        let unique = if def.starts_with("CREATE UNIQUE") { "UNIQUE " } else { "" };
        format!("CREATE {unique}INDEX ON {table} {rest}")
    };
    let copy = |table: &str| {
        format!(
            "CREATE SEQUENCE {table}_id; \
             CREATE TABLE {table} (LIKE oncommit.jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             ALTER TABLE {table} ALTER id SET DEFAULT nextval('{table}_id'), ADD PRIMARY KEY (id)"
        )
    };
    let jobs = || "oncommit.jobs".to_owned();
    let mut steps =
        vec![Step { name: "bare insert".into(), how: How::Sql(bare::INSERT_ONE.into()), writes: bare::TABLE.into() }];
    // The row alone: oncommit's columns, defaults and checks, the bare table's indexes.
    let row = format!("{COPY}row");
    let mut create = vec![format!("{}; CREATE INDEX ON {row} (id) WHERE state = 'available'", copy(&row))];
    steps.push(Step {
        name: "+ oncommit's row (columns, defaults, checks)".into(),
        how: insert_into(&row),
        writes: row.clone(),
    });
    let mut built: Vec<String> = vec![claim];
    for k in 0..=indexes.len() {
        let table = format!("{COPY}{k}");
        let mut sql = copy(&table);
        if k > 0 {
            built.push(indexes[k - 1].1.clone());
        }
        for def in &built {
            sql.push_str("; ");
            sql.push_str(&on(def, &table));
        }
        create.push(sql);
        let name = match k {
            0 => "+ its claim index in the bare one's place".to_owned(),
            k => format!("+ index {}", indexes[k - 1].0),
        };
        steps.push(Step { name, how: insert_into(&table), writes: table });
    }
    steps.extend([
        Step {
            name: "+ its insert triggers (oncommit.jobs)".into(),
            how: insert_into("oncommit.jobs"),
            writes: jobs(),
        },
        Step {
            name: "+ oncommit.enqueue, every option given".into(),
            how: How::Sql(
                "SELECT oncommit.enqueue('bench_noop', '{}', queue => $1, priority => 0, max_attempts => 25, \
                 notify => false)"
                    .into(),
            ),
            writes: jobs(),
        },
        Step {
            name: "+ the task's declaration looked up".into(),
            how: How::Sql("SELECT oncommit.enqueue('bench_noop', '{}', queue => $1, notify => false)".into()),
            writes: jobs(),
        },
        Step {
            name: "+ the sleeping workers checked".into(),
            how: How::Sql("SELECT oncommit.enqueue('bench_noop', '{}', queue => $1)".into()),
            writes: jobs(),
        },
        Step { name: "tx.enqueue from Rust instead".into(), how: How::TxEnqueue, writes: jobs() },
    ]);
    Ok((steps, create))
}

/// One step's figures.
#[derive(Debug, Serialize)]
struct StepReport {
    step: String,
    jobs_per_sec: f64,
    us_per_job: f64,
    /// Microseconds per job this step adds to the one before.
    added_us: f64,
    /// `added_us` against the whole gap, bare insert to `tx.enqueue`.
    share_of_gap: f64,
}

/// The figures, as `oncommit bench --breakdown --json` prints them.
#[derive(Debug, Serialize)]
struct Report {
    jobs: usize,
    steps: Vec<StepReport>,
    /// `tx.enqueue`'s time per job minus the bare insert's.
    gap_us_per_job: f64,
    /// `tx.enqueue` against the bare insert.
    tx_enqueue_vs_bare: f64,
}

pub(crate) async fn run(db: &Db, jobs: usize, json: bool) -> anyhow::Result<()> {
    if db.backend() != oncommit::Backend::Postgres {
        return Err(
            crate::exit::Exit::Usage("--breakdown measures PostgreSQL's SQL function and triggers".into()).into()
        );
    }
    let (steps, create) = ladder(db).await?;
    bare::create(db).await?;
    let copies = create.len();
    let outcome = async {
        let mut conn = db.acquire().await?;
        let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
        drop_copies_on(c, copies).await?;
        for sql in &create {
            sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut *c).await?;
        }
        drop(conn);
        let per_round = (jobs / ROUNDS).max(CLIENTS);
        let mut took = vec![Duration::ZERO; steps.len()];
        for round in 0..ROUNDS {
            for (i, step) in steps.iter().enumerate() {
                let label = format!("bench --breakdown: {}, round {}", step.name, round + 1);
                took[i] += while_running(&label, transactions(db, per_round, &step.how)).await?;
                empty(db, &step.writes).await?;
            }
        }
        Ok::<_, anyhow::Error>((per_round * ROUNDS, took))
    }
    .await;
    let mut conn = db.acquire().await?;
    if let Conn::Postgres(c) = conn.conn() {
        drop_copies_on(c, copies).await?;
    }
    drop(conn);
    bare::drop_table(db).await?;
    let (total, took) = outcome?;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / total as f64;
    let last = steps.len() - 1;
    let gap = us(took[last]) - us(took[0]);
    let report = Report {
        jobs: total,
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let added = if i == 0 { 0.0 } else { us(took[i]) - us(took[i - 1]) };
                StepReport {
                    step: step.name.clone(),
                    jobs_per_sec: rate(total, took[i]),
                    us_per_job: us(took[i]),
                    added_us: added,
                    share_of_gap: if gap > 0.0 { added / gap } else { 0.0 },
                }
            })
            .collect(),
        gap_us_per_job: gap,
        tx_enqueue_vs_bare: took[0].as_secs_f64() / took[last].as_secs_f64(),
    };
    print(json, &report, || {
        let mut text = format!(
            "one job per transaction, {CLIENTS} clients, {} jobs a step (PostgreSQL): where the gap goes\n",
            report.jobs
        );
        for s in &report.steps {
            text.push_str(&format!(
                "  {:<48} {:>7.0} jobs/s  {:>6.1} µs/job  {:>+6.1} µs  {:>5.0}% of the gap\n",
                s.step,
                s.jobs_per_sec,
                s.us_per_job,
                s.added_us,
                s.share_of_gap * 100.0
            ));
        }
        text.push_str(&format!(
            "  gap: {:.1} µs per job; tx.enqueue runs at {:.2} of the bare insert",
            report.gap_us_per_job, report.tx_enqueue_vs_bare
        ));
        text
    })
}

/// `n` one-job transactions of `how`, spread over `CLIENTS` clients.
async fn transactions(db: &Db, n: usize, how: &How) -> anyhow::Result<Duration> {
    let how = how.clone();
    enqueue::spread(db, n, move |db| {
        let how = how.clone();
        async move {
            match how {
                How::TxEnqueue => enqueue::tx_enqueue(&db).await,
                How::Sql(sql) => {
                    let mut conn = db.acquire().await?;
                    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
                    sqlx::raw_sql("BEGIN").execute(&mut *c).await?;
                    sqlx::query(AssertSqlSafe(sql)).bind(QUEUE).execute(&mut *c).await?;
                    sqlx::raw_sql("COMMIT").execute(&mut *c).await?;
                    Ok(())
                }
            }
        }
    })
    .await
}

/// The copies' names: the row's, then one per count of indexes.
fn copy_names(copies: usize) -> impl Iterator<Item = String> {
    std::iter::once(format!("{COPY}row")).chain((0..copies.saturating_sub(1)).map(|k| format!("{COPY}{k}")))
}

async fn drop_copies_on(c: &mut sqlx::PgConnection, copies: usize) -> anyhow::Result<()> {
    for table in copy_names(copies) {
        let sql = format!("DROP TABLE IF EXISTS {table}; DROP SEQUENCE IF EXISTS {table}_id");
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await?;
    }
    Ok(())
}

/// Empties the table a step wrote and vacuums it, so no step pays for another's rows.
async fn empty(db: &Db, table: &str) -> anyhow::Result<()> {
    match table {
        "oncommit.jobs" => clear(db).await,
        bare::TABLE => bare::clear(db).await,
        copy => {
            let mut conn = db.acquire().await?;
            let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("PostgreSQL only") };
            sqlx::raw_sql(AssertSqlSafe(format!("TRUNCATE {copy}"))).execute(&mut *c).await?;
            sqlx::raw_sql(AssertSqlSafe(format!("VACUUM {copy}"))).execute(&mut *c).await?;
            Ok(())
        }
    }
}
