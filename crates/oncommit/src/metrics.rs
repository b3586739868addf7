//! Counters and latency histograms of this process's workers and transactions, two ways:
//!
//! - [`METRICS`], rendered in Prometheus' text format by `oncommit-axum` at `/metrics`:
//!   atomics only, recording is a few relaxed adds;
//! - the [`metrics`](https://docs.rs/metrics) facade, so an application that installs a
//!   recorder (`metrics-exporter-prometheus`, an OpenTelemetry bridge, StatsD…) gets
//!   oncommit's series in its own exporter, with labels. Without a recorder these calls do
//!   nothing.
//!
//! The facade's series:
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `oncommit_job_attempts_total` | counter | `queue`, `task`, `outcome` (completed, retryable, failed, cancelled, snoozed, released) |
//! | `oncommit_job_duration_seconds` | histogram | `queue`, `task` |
//! | `oncommit_job_wait_seconds` (from when the job was due to when it started) | histogram | `queue` |
//! | `oncommit_jobs_claimed_total` | counter | |
//! | `oncommit_claim_duration_seconds` | histogram | |
//! | `oncommit_complete_duration_seconds` | histogram | |
//! | `oncommit_transactions_total` | counter | `outcome` (committed, rolled_back, failed) |
//! | `oncommit_transaction_duration_seconds` | histogram | |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A latency histogram with fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What this process's workers did.
#[derive(Debug)]
pub struct Metrics {
    /// Time of one claim statement.
    pub claim: Histogram,
    /// Time of one batched completion statement.
    pub complete: Histogram,
    /// Time a task ran.
    pub run: Histogram,
    /// Jobs claimed.
    pub claimed: AtomicU64,
    /// Attempts that ended (any outcome).
    pub finished: AtomicU64,
}

/// This process's metrics.
pub static METRICS: Metrics = Metrics {
    claim: Histogram::new(),
    complete: Histogram::new(),
    run: Histogram::new(),
    claimed: AtomicU64::new(0),
    finished: AtomicU64::new(0),
};

/// A task ran: the attempt's outcome and how long it ran, and how long after it was due
/// it started.
pub(crate) fn job_ran(queue: &str, task: &str, outcome: &'static str, took: Duration, waited: Duration) {
    METRICS.run.observe(took);
    METRICS.finished.fetch_add(1, Ordering::Relaxed);
    let (queue, task) = (queue.to_owned(), task.to_owned());
    ::metrics::counter!("oncommit_job_attempts_total", "queue" => queue.clone(), "task" => task.clone(), "outcome" => outcome)
        .increment(1);
    ::metrics::histogram!("oncommit_job_duration_seconds", "queue" => queue.clone(), "task" => task).record(took);
    ::metrics::histogram!("oncommit_job_wait_seconds", "queue" => queue).record(waited);
}

/// One claim statement ran, claiming `jobs` jobs.
pub(crate) fn claimed(jobs: usize, took: Duration) {
    METRICS.claim.observe(took);
    METRICS.claimed.fetch_add(jobs as u64, Ordering::Relaxed);
    ::metrics::histogram!("oncommit_claim_duration_seconds").record(took);
    ::metrics::counter!("oncommit_jobs_claimed_total").increment(jobs as u64);
}

/// One batched completion statement ran.
pub(crate) fn completed_batch(took: Duration) {
    METRICS.complete.observe(took);
    ::metrics::histogram!("oncommit_complete_duration_seconds").record(took);
}

/// An outermost transaction ended.
pub(crate) fn transaction_ended(outcome: &'static str, took: Duration) {
    ::metrics::counter!("oncommit_transactions_total", "outcome" => outcome).increment(1);
    ::metrics::histogram!("oncommit_transaction_duration_seconds").record(took);
}

impl Metrics {
    /// The Prometheus text format of these metrics, each series prefixed `oncommit_`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.claim.render(&mut out, "oncommit_claim_duration_seconds", "Time of one claim statement.");
        self.complete.render(
            &mut out,
            "oncommit_complete_duration_seconds",
            "Time of one batched completion statement.",
        );
        self.run.render(&mut out, "oncommit_job_run_duration_seconds", "Time a task ran.");
        for (name, help, value) in [
            ("oncommit_jobs_claimed_total", "Jobs claimed by this process.", &self.claimed),
            ("oncommit_attempts_finished_total", "Attempts this process finished.", &self.finished),
        ] {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}
