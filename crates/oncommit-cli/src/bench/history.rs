//! `oncommit bench --history N` (PostgreSQL): does a long history slow the queue? The same
//! figures with an empty history, then with N finished jobs filled into it with SQL, then
//! empty again: one job per transaction enqueued by 8 clients, and a backlog claimed and
//! completed by `oncommit worker` as a separate process. Then how long dropping a partition
//! of the history takes and what it leaves, and how long each listing takes on it.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Conn, Db, JobId, JobState};
use serde::Serialize;
use sqlx::{AssertSqlSafe, PgConnection};

use super::backlog::drain_by_worker;
use super::enqueue::{Single, enqueue_single};
use super::{clear, rate};
use crate::demo::print;
use crate::progress::while_running;

/// The queue the filled history's jobs belong to (not the bench queue, which `clear`
/// empties between phases).
const HISTORY_QUEUE: &str = "bench_history";
/// Hourly partitions the fill spreads its jobs over, as a day kept for a day would be.
const PARTITIONS: usize = 20;
/// Partitions filled at once (one per core of the machine this was measured on).
const FILLERS: usize = 2;

/// The queue's rates at one size of the history.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Rates {
    /// `begin; tx.enqueue; commit`, 8 clients.
    enqueue_single_jobs_per_sec: f64,
    /// A backlog of `--jobs` claimed and completed by a worker process (each completion
    /// moves its job into the history).
    claim_complete_jobs_per_sec: f64,
}

/// The figures, as `oncommit bench --history N --json` prints them.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// Finished jobs filled into the history.
    history_jobs: usize,
    /// How long filling them took (insert, index, attach, and the vacuum that freezes them).
    fill_secs: f64,
    /// Before the fill, and after it was dropped.
    empty: [Rates; 2],
    /// With the history full.
    full: Rates,
    /// full / the mean of the two empty runs.
    enqueue_full_vs_empty: f64,
    claim_complete_full_vs_empty: f64,
    /// Dropping one partition (an hour of the history), as the leader does: detaching it,
    /// which locks the finishing jobs out, then dropping it, which does not.
    detach_partition_secs: f64,
    drop_partition_secs: f64,
    drop_partition_jobs: i64,
    /// Dropping the other partitions, one after another (the rest of the fill).
    drop_rest_secs: f64,
    /// Dead rows in the history just before the drop and just after (the bench's own
    /// cleanup between phases deletes its queue's jobs row by row, and vacuums them).
    dead_rows_before_drop: i64,
    dead_rows_after_drop: i64,
    /// Each listing, timed on the full history: (what, milliseconds).
    listings_ms: Vec<(String, f64)>,
    /// Counting every job by queue and state (the dashboard's totals, made at most once a
    /// minute): not a listing, reads every finished job.
    count_all_ms: f64,
}

pub(crate) async fn run(
    db: &Db,
    url: &str,
    history: usize,
    jobs: usize,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(db.backend() == oncommit::Backend::Postgres, "--history needs PostgreSQL: SQLite keeps no history");
    anyhow::ensure!(history >= PARTITIONS, "--history must be at least {PARTITIONS}");
    let first = measure(db, url, jobs, concurrency, "empty history").await?;
    let started = Instant::now();
    let leaves = while_running(&format!("bench: filling the history with {history} jobs"), fill(db, history)).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    let full = measure(db, url, jobs, concurrency, "full history").await?;
    let (listings_ms, count_all_ms) = while_running("bench: listings", listings(db)).await?;
    let (
        [detach_partition_secs, drop_partition_secs],
        drop_partition_jobs,
        [dead_rows_before_drop, dead_rows_after_drop],
    ) = drop_one(db, &leaves[0]).await?;
    let started = Instant::now();
    for leaf in &leaves[1..] {
        drop_leaf(db, leaf).await?;
    }
    let drop_rest_secs = started.elapsed().as_secs_f64();
    let second = measure(db, url, jobs, concurrency, "empty history again").await?;
    let mean = |f: fn(&Rates) -> f64| (f(&first) + f(&second)) / 2.0;
    let report = Report {
        history_jobs: history,
        fill_secs,
        empty: [first, second],
        full,
        enqueue_full_vs_empty: full.enqueue_single_jobs_per_sec / mean(|r| r.enqueue_single_jobs_per_sec),
        claim_complete_full_vs_empty: full.claim_complete_jobs_per_sec / mean(|r| r.claim_complete_jobs_per_sec),
        detach_partition_secs,
        drop_partition_secs,
        drop_partition_jobs,
        drop_rest_secs,
        dead_rows_before_drop,
        dead_rows_after_drop,
        listings_ms,
        count_all_ms,
    };
    print(json, &report, || {
        let mut text = format!(
            "history of {} finished jobs (filled in {:.0} s), PostgreSQL:\n  \
             one job per transaction, 8 clients: {:>7.0} jobs/s full, {:.0} and {:.0} empty ({:.0}% of empty)\n  \
             claim + complete, worker process:   {:>7.0} jobs/s full, {:.0} and {:.0} empty ({:.0}% of empty)\n  \
             dropping a partition of {} jobs: detached in {:.3} s, dropped in {:.3} s (the other {}: {:.2} s); dead rows in the history {} before, {} after\n  \
             listings on the full history:",
            report.history_jobs,
            report.fill_secs,
            full.enqueue_single_jobs_per_sec,
            first.enqueue_single_jobs_per_sec,
            second.enqueue_single_jobs_per_sec,
            report.enqueue_full_vs_empty * 100.0,
            full.claim_complete_jobs_per_sec,
            first.claim_complete_jobs_per_sec,
            second.claim_complete_jobs_per_sec,
            report.claim_complete_full_vs_empty * 100.0,
            report.drop_partition_jobs,
            report.detach_partition_secs,
            report.drop_partition_secs,
            PARTITIONS - 1,
            report.drop_rest_secs,
            report.dead_rows_before_drop,
            report.dead_rows_after_drop,
        );
        for (what, ms) in &report.listings_ms {
            text.push_str(&format!("\n    {what}: {ms:.1} ms"));
        }
        text.push_str(&format!("\n  counting every job by queue and state: {:.0} ms", report.count_all_ms));
        text
    })
}

/// The rates at the history's present size.
async fn measure(db: &Db, url: &str, jobs: usize, concurrency: usize, phase: &str) -> anyhow::Result<Rates> {
    clear(db).await?;
    checkpoint(db).await?;
    let single = (jobs / 5).max(100);
    let took = while_running(
        &format!("bench: one job per transaction, {phase}"),
        enqueue_single(db, single, Single::TxEnqueue),
    )
    .await?;
    clear(db).await?;
    let drained = drain_by_worker(db, url, jobs, concurrency).await?;
    clear(db).await?;
    Ok(Rates { enqueue_single_jobs_per_sec: rate(single, took), claim_complete_jobs_per_sec: drained.jobs_per_sec })
}

/// Writes out what earlier phases left in the server's buffers, so that no phase pays for
/// the one before (the fill writes gigabytes). Needs a superuser or `pg_checkpoint`;
/// without either, the phases are measured as they come.
async fn checkpoint(db: &Db) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    if let Err(err) = sqlx::raw_sql("CHECKPOINT").execute(&mut *c).await {
        tracing::warn!(error = %err, "CHECKPOINT refused; phases may pay for the writes of the one before");
    }
    Ok(())
}

/// A partition the fill made.
struct Leaf {
    /// Its table's name, in the `oncommit` schema.
    name: String,
}

/// Fills `PARTITIONS` hourly partitions of completed jobs with `n` jobs in all, each made
/// apart, filled, then attached (indexes built in one pass, as a restore would): hours that
/// end before any partition already there and at least an hour ago, so that no job of the
/// bench lands in them and the leader (retention a day) drops none of them meanwhile.
async fn fill(db: &Db, n: usize) -> anyhow::Result<Vec<Leaf>> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    let (now, earliest): (DateTime<Utc>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT now(), min((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz) \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'oncommit.job_history_completed'::regclass AND c.relname NOT LIKE '%_default'",
    )
    .fetch_one(&mut *c)
    .await?;
    drop(conn);
    let hour = TimeDelta::hours(1);
    let end = earliest.unwrap_or(now).min(now - hour).duration_trunc(hour)?;
    let start = end - hour * i32::try_from(PARTITIONS)?;
    anyhow::ensure!(
        start > now - TimeDelta::hours(23),
        "the history already has partitions for the last day ({earliest:?}): run --history on a fresh database"
    );
    // Each filler takes every FILLERS-th hour.
    let all: Vec<(usize, DateTime<Utc>)> =
        (0..PARTITIONS).map(|i| (n / PARTITIONS + usize::from(i < n % PARTITIONS), start + hour * i as i32)).collect();
    let mut leaves = Vec::new();
    let mut fillers = tokio::task::JoinSet::new();
    for k in 0..FILLERS {
        let db = db.clone();
        let mine: Vec<(usize, DateTime<Utc>)> = all.iter().copied().skip(k).step_by(FILLERS).collect();
        fillers.spawn(async move {
            let mut names = Vec::new();
            for (jobs, from) in mine {
                names.push(fill_one(&db, jobs, from).await?);
            }
            anyhow::Ok(names)
        });
    }
    while let Some(done) = fillers.join_next().await {
        leaves.extend(done??.into_iter().map(|name| Leaf { name }));
    }
    leaves.sort_by(|a, b| a.name.cmp(&b.name));
    // As autovacuum leaves a partition once it is full (its insert threshold): frozen and
    // visible to index-only scans. Otherwise that vacuum would run during the next phase.
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    for leaf in &leaves {
        sqlx::raw_sql(AssertSqlSafe(format!("VACUUM (FREEZE, ANALYZE) oncommit.{}", leaf.name)))
            .execute(&mut *c)
            .await?;
    }
    sqlx::raw_sql("ANALYZE oncommit.job_history").execute(&mut *c).await?;
    Ok(leaves)
}

/// One hour of completed jobs, `jobs` of them evenly spread over it, counted as the leader
/// counts a partition once no job lands in it any more; returns the partition's name.
async fn fill_one(db: &Db, jobs: usize, from: DateTime<Utc>) -> anyhow::Result<String> {
    let name = format!("job_history_completed_bench_{}", from.format("%Y%m%d_%H%M"));
    let bound = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S+00").to_string();
    let to = from + TimeDelta::hours(1);
    let sql = format!(
        "CREATE TABLE oncommit.{name} (LIKE oncommit.job_history_completed INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         INSERT INTO oncommit.{name} (id, queue, task, args, state, priority, attempt, max_attempts, run_at, created_at, \
                                      attempted_at, finished_at, lease_owner, cancel_requested, errors, has_dependants) \
         SELECT nextval('oncommit.jobs_id_seq'), '{HISTORY_QUEUE}', 'noop', ('{{\"n\": ' || g || '}}')::jsonb, 'completed', 0, 1, \
                25, t, t, t, t, 'bench', false, '[]', false \
         FROM (SELECT g, '{}'::timestamptz + g * (interval '1 hour' / {jobs}) AS t FROM generate_series(0, {} - 1) AS g) s; \
         ALTER TABLE oncommit.job_history_completed ATTACH PARTITION oncommit.{name} FOR VALUES FROM ('{}') TO ('{}'); \
         INSERT INTO oncommit.history_counts (partition, queue, state, jobs) \
         VALUES ('oncommit.{name}'::regclass, '{HISTORY_QUEUE}', 'completed', {jobs}), \
                ('oncommit.{name}'::regclass, '', '', 0)",
        bound(from),
        jobs,
        bound(from),
        bound(to),
    );
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await.with_context(|| format!("fill {name}"))?;
    Ok(name)
}

/// Drops `leaf` as the leader does, timed: detached (what locks the class's table, that
/// is every finishing job, out), then dropped. Returns both times, how many jobs it held,
/// and the dead rows in the history before and after.
async fn drop_one(db: &Db, leaf: &Leaf) -> anyhow::Result<([f64; 2], i64, [i64; 2])> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    let held: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM oncommit.{}", leaf.name)))
        .fetch_one(&mut *c)
        .await?;
    let before = dead_rows(c).await?;
    let started = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '5s'; \
         DELETE FROM oncommit.history_counts WHERE partition = 'oncommit.{0}'::regclass; \
         ALTER TABLE oncommit.job_history_completed DETACH PARTITION oncommit.{0}",
        leaf.name
    )))
    .execute(&mut *c)
    .await?;
    let detached = started.elapsed().as_secs_f64();
    let started = Instant::now();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP TABLE oncommit.{}", leaf.name))).execute(&mut *c).await?;
    let dropped = started.elapsed().as_secs_f64();
    let after = dead_rows(c).await?;
    Ok(([detached, dropped], held, [before, after]))
}

/// Drops a partition the fill made, with the leader's lock wait.
async fn drop_leaf(db: &Db, leaf: &Leaf) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?;
    let Conn::Postgres(c) = conn.conn() else { anyhow::bail!("--history needs PostgreSQL") };
    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL lock_timeout = '5s'; DROP TABLE oncommit.{}", leaf.name)))
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Dead rows in the history's partitions, as the statistics count them.
async fn dead_rows(c: &mut PgConnection) -> anyhow::Result<i64> {
    // The statistics arrive within a moment; ask for a fresh read.
    sqlx::raw_sql("SELECT pg_stat_clear_snapshot()").execute(&mut *c).await?;
    Ok(sqlx::query_scalar(
        "SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables \
         WHERE schemaname = 'oncommit' AND relname LIKE 'job\\_history%'",
    )
    .fetch_one(&mut *c)
    .await?)
}

/// Times what the dashboard and `oncommit jobs`, `job` and `workflow` read, on the full
/// history; and the count of every job.
async fn listings(db: &Db) -> anyhow::Result<(Vec<(String, f64)>, f64)> {
    let jobs = db.jobs();
    let mut out = Vec::new();
    let pages: [(&str, JobSelection, PageRequest); 6] = [
        ("every job, newest page", JobSelection::new(JobState::ALL), PageRequest::newest(50)),
        ("every job, oldest page", JobSelection::new(JobState::ALL), PageRequest::oldest(50)),
        ("the completed tab", JobSelection::new([JobState::Completed]), PageRequest::newest(50)),
        ("the failed tab (none)", JobSelection::new([JobState::Failed]), PageRequest::newest(50)),
        (
            "a queue's completed jobs",
            JobSelection::new([JobState::Completed]).queue(HISTORY_QUEUE),
            PageRequest::newest(50),
        ),
        ("a task's jobs", JobSelection::new(JobState::ALL).task("noop"), PageRequest::newest(50)),
    ];
    let mut some_id = None;
    for (what, selection, page) in pages {
        let started = Instant::now();
        let listed = jobs.list(&selection, &page).await?;
        out.push((what.to_owned(), ms(started.elapsed())));
        some_id = some_id.or(listed.jobs.last().map(|j| j.id));
    }
    let id = some_id.unwrap_or(JobId(1));
    let started = Instant::now();
    jobs.get(id).await?;
    out.push(("one job by id".to_owned(), ms(started.elapsed())));
    let started = Instant::now();
    jobs.dependencies(id).await?;
    out.push(("one job's parents and dependants".to_owned(), ms(started.elapsed())));
    let started = Instant::now();
    jobs.throughput(60).await?;
    out.push(("completions per minute, last hour".to_owned(), ms(started.elapsed())));
    let started = Instant::now();
    jobs.stats().await?;
    let count_all = ms(started.elapsed());
    Ok((out, count_all))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
