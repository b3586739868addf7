//! `oncommit bench --vacuum-pressure` (PostgreSQL): does the queue keep up while long
//! readers hold back vacuum? Producers enqueue at a steady rate (800 jobs/s by default) for
//! a worker process (`oncommit worker`, completed jobs pruned after 10 s), enqueuing with
//! `oncommit.enqueue_many` as a producer in SQL would; after a warm-up,
//! three `REPEATABLE READ` transactions of 120 s each start 40 s apart, overlapping, so
//! that for minutes no dead row can be vacuumed: the "death spiral" a long report or a
//! forgotten session starts on a busy queue. Every 5 s the backlog (in seconds of work at
//! the rate), the oldest waiting job's age and the dead rows are sampled. It should stay
//! under 10 s of work while the readers run, and be back to its level before them within
//! 30 s after the last one ends.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use oncommit::{Backend, Db};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};

use super::backlog::{spawn_worker, stop_worker};
use super::{QUEUE, clear};
use crate::demo::print;
use crate::exit::Exit;

/// How often the queue is measured.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How long the queue runs before the first reader starts, and after the last one ends (at
/// most a reader's length: a short trial stays short).
const SETTLE: Duration = Duration::from_secs(30);
/// The readers.
const READERS: u32 = 3;

/// One measurement.
#[derive(Debug, Serialize)]
struct Sample {
    at_secs: u64,
    /// Readers holding a snapshot now.
    readers: u32,
    /// Jobs waiting, in seconds of work at the rate.
    backlog_secs: f64,
    /// The oldest waiting job's age.
    lag_secs: f64,
    dead_rows: Option<i64>,
}

/// The figures, as `--json` prints them.
#[derive(Debug, Serialize)]
struct Report {
    rate: u32,
    reader_secs: u64,
    concurrency: usize,
    /// The largest backlog while a reader ran, in seconds of work.
    worst_backlog_secs: f64,
    /// The largest backlog before the first reader, in seconds of work: the worker's own
    /// pace (its poll, its batches).
    baseline_backlog_secs: f64,
    /// From the last reader's end to the first sample back at the baseline (or under 1 s
    /// of work).
    recovered_after_secs: Option<u64>,
    samples: Vec<Sample>,
}

pub(crate) async fn run(
    db: &Db,
    url: &str,
    rate: u32,
    reader_secs: u64,
    concurrency: usize,
    json: bool,
) -> anyhow::Result<()> {
    if db.backend() != Backend::Postgres {
        let why = "--vacuum-pressure is PostgreSQL's: SQLite has no concurrent readers holding back a vacuum";
        return Err(Exit::Usage(why.to_owned()).into());
    }
    if rate == 0 || reader_secs == 0 {
        return Err(Exit::Usage("--rate and --reader-secs must be at least 1".to_owned()).into());
    }
    clear(db).await?;
    let extra = ["--retention-completed", "10", "--retention-discarded", "10", "--prune-interval-ms", "5000"];
    let mut worker = spawn_worker(url, concurrency, &extra)?;
    let reading = Duration::from_secs(reader_secs);
    // Three readers, each starting a third of its length after the one before: they overlap.
    let stagger = reading / READERS;
    let settle = SETTLE.min(reading);
    let starts: Vec<Duration> = (0..READERS).map(|i| settle + stagger * i).collect();
    let last_end = settle + stagger * (READERS - 1) + reading;
    let total = last_end + settle;
    let started = Instant::now();
    let mut readers: Vec<(Duration, PgConnection)> = Vec::new();
    let mut samples = Vec::new();
    let (mut produced, mut next_sample, mut next_reader) = (0u64, Duration::ZERO, 0usize);
    let terminal = std::io::stderr().is_terminal();
    let outcome = async {
        while started.elapsed() < total {
            tokio::select! {
                status = worker.wait() => anyhow::bail!("the worker process exited: {}", status?),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let now = started.elapsed();
            // Enqueue what the rate owes by now.
            let owed = (now.as_secs_f64() * f64::from(rate)) as u64;
            if owed > produced {
                enqueue_noops(db, owed - produced).await?;
                produced = owed;
            }
            if next_reader < starts.len() && now >= starts[next_reader] {
                let mut reader = PgConnection::connect(url).await?;
                sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM oncommit.jobs")
                    .execute(&mut reader)
                    .await?;
                readers.push((now + reading, reader));
                next_reader += 1;
            }
            for (_, mut reader) in extract(&mut readers, now) {
                sqlx::raw_sql("COMMIT").execute(&mut reader).await?;
                reader.close().await.ok();
            }
            if now >= next_sample {
                next_sample += SAMPLE_EVERY;
                let sample = measure(db, now, u32::try_from(readers.len())?, rate).await?;
                if terminal {
                    eprint!(
                        "\rvacuum pressure: {} of {} s, {} readers, backlog {:.1} s of work   ",
                        sample.at_secs,
                        total.as_secs(),
                        sample.readers,
                        sample.backlog_secs
                    );
                    std::io::stderr().flush().ok();
                }
                samples.push(sample);
            }
        }
        Ok(())
    }
    .await;
    if terminal {
        eprint!("\r{:80}\r", "");
    }
    for (_, mut reader) in readers {
        sqlx::raw_sql("ROLLBACK").execute(&mut reader).await.ok();
    }
    stop_worker(worker).await;
    outcome?;
    clear(db).await?;
    let worst = samples.iter().filter(|s| s.readers > 0).map(|s| s.backlog_secs).fold(0.0, f64::max);
    let baseline = samples.iter().filter(|s| s.at_secs < settle.as_secs()).map(|s| s.backlog_secs).fold(0.0, f64::max);
    let recovered = samples
        .iter()
        .find(|s| s.at_secs >= last_end.as_secs() && s.backlog_secs <= baseline.max(1.0) * 1.01)
        .map(|s| s.at_secs - last_end.as_secs());
    let report = Report {
        rate,
        reader_secs,
        concurrency,
        worst_backlog_secs: worst,
        baseline_backlog_secs: baseline,
        recovered_after_secs: recovered,
        samples,
    };
    print(json, &report, || {
        let mut text = format!(
            "{} jobs/s for `oncommit worker --queues {QUEUE}:{}` (completed jobs pruned after 10 s); \
             {READERS} REPEATABLE READ readers of {} s, overlapping\n",
            report.rate, report.concurrency, report.reader_secs
        );
        for s in &report.samples {
            text.push_str(&format!(
                "  {:>5} s  readers {}  backlog {:>6.1} s of work  oldest waiting {:>6.1} s  dead rows {}\n",
                s.at_secs,
                s.readers,
                s.backlog_secs,
                s.lag_secs,
                s.dead_rows.map_or("-".to_owned(), |n| n.to_string())
            ));
        }
        text.push_str(&format!(
            "largest backlog while readers ran: {:.1} s of work (before them: {:.1} s); ",
            report.worst_backlog_secs, report.baseline_backlog_secs
        ));
        text.push_str(&match report.recovered_after_secs {
            Some(secs) => format!("back to that {secs} s after the last reader ended"),
            None => "still behind at the end".to_owned(),
        });
        text
    })
}

/// Enqueues `n` no-op jobs as a producer in SQL does, with `oncommit.enqueue_many`, which
/// wakes a sleeping worker (a raw INSERT would leave them to its poll).
async fn enqueue_noops(db: &Db, n: u64) -> anyhow::Result<()> {
    let pool = db.pg_pool().ok_or_else(|| anyhow::anyhow!("--vacuum-pressure is PostgreSQL's"))?;
    sqlx::query(
        "SELECT oncommit.enqueue_many('noop', (SELECT array_agg('{}'::jsonb) FROM generate_series(1, $1)), queue => $2)",
    )
    .bind(i64::try_from(n)?)
    .bind(QUEUE)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes the readers whose time is up out of `readers`.
fn extract(readers: &mut Vec<(Duration, PgConnection)>, now: Duration) -> Vec<(Duration, PgConnection)> {
    let (done, kept) = std::mem::take(readers).into_iter().partition(|(end, _)| *end <= now);
    *readers = kept;
    done
}

async fn measure(db: &Db, now: Duration, readers: u32, rate: u32) -> anyhow::Result<Sample> {
    let pool = db.pg_pool().ok_or_else(|| anyhow::anyhow!("--vacuum-pressure is PostgreSQL's"))?;
    let (waiting, lag): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(run_at)), 0)::float8 \
         FROM oncommit.jobs WHERE state = 'available' AND queue = $1",
    )
    .bind(QUEUE)
    .fetch_one(pool)
    .await?;
    let table = db.jobs().table_stats().await?;
    Ok(Sample {
        at_secs: now.as_secs(),
        readers,
        backlog_secs: waiting as f64 / f64::from(rate),
        lag_secs: lag,
        dead_rows: table.dead_rows,
    })
}
