//! Counters and latency histograms of this process's workers, for Prometheus (rendered by
//! `oncommit-axum` at `/metrics`). Atomics only: recording is a few relaxed adds.

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
