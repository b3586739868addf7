//! One queue's capacity: how many jobs it runs at once (its concurrency), and how many more
//! it claims ahead to wait in the worker (its prefetch).
//!
//! Short jobs need prefetch: a claim and the write of its outcomes are round trips of
//! several milliseconds each under load, and a job keeps its place from the claim until
//! its outcome is written, so the jobs a queue may hold, not its slots, set the pace of
//! short jobs. With 10 slots and no prefetch a queue claims a few jobs per round trip
//! (4,400 jobs/s against 30,000 with 100 prefetched, on a 100,000-job backlog); with up to
//! [`PREFETCH_MAX`] held ahead, two claims of a batch each can be on their way while the
//! slots work through the rest. Long jobs must not have it: a prefetched job waits for
//! this worker's slots while another worker may be idle. So unless the user sets it,
//! prefetch follows the queue's recent run times: as many jobs as its slots get through in
//! about [`PREFETCH_WAIT`], at most [`PREFETCH_MAX`] or the concurrency, whichever is
//! larger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// About the longest a prefetched job should wait for a slot, when the prefetch adapts.
pub(crate) const PREFETCH_WAIT: Duration = Duration::from_millis(50);

/// The most jobs a queue claims ahead by default (unless its concurrency is larger): one
/// completion batch, so the rows a worker has `running` stay within its slots plus one
/// batch of outcomes.
pub(crate) const PREFETCH_MAX: usize = super::completer::MAX_BATCH;

pub(crate) struct Slots {
    /// Jobs the queue may hold: claimed and not yet recorded. A permit is a `running` row.
    pub(crate) held: Arc<Semaphore>,
    /// The number of `held` permits: concurrency plus the largest prefetch.
    pub(crate) held_max: usize,
    /// Jobs the queue may run at once.
    pub(crate) running: Arc<Semaphore>,
    concurrency: usize,
    /// The prefetch the user chose; `None` to follow the run times, up to `held_max -
    /// concurrency`.
    fixed: Option<usize>,
    /// Recent run time of the queue's jobs in microseconds (a moving average); 0 before
    /// the first job ends.
    run_us: AtomicU64,
}

impl Slots {
    /// `prefetch` fixed by the user, or adapting up to [`PREFETCH_MAX`] or `concurrency`,
    /// whichever is larger.
    pub(crate) fn new(concurrency: usize, prefetch: Option<usize>) -> Slots {
        let held_max = concurrency + prefetch.unwrap_or(PREFETCH_MAX.max(concurrency));
        Slots {
            held: Arc::new(Semaphore::new(held_max)),
            held_max,
            running: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            fixed: prefetch,
            run_us: AtomicU64::new(0),
        }
    }

    /// How many jobs the queue should hold now: its concurrency plus the prefetch.
    pub(crate) fn target(&self) -> usize {
        let most = self.held_max - self.concurrency;
        let prefetch = self.fixed.unwrap_or_else(|| match self.run_us.load(Ordering::Relaxed) {
            // No run time known yet: as many as the slots, until the first jobs tell.
            0 => self.concurrency.min(most),
            us => {
                let ahead = PREFETCH_WAIT.as_secs_f64() * 1e6 / us as f64 * self.concurrency as f64;
                // A float past usize saturates in the cast.
                (ahead.round() as usize).min(most)
            }
        });
        self.concurrency + prefetch
    }

    /// The prefetch within `target`: the jobs held beyond those running.
    pub(crate) fn prefetch_of(&self, target: usize) -> usize {
        target.saturating_sub(self.concurrency)
    }

    /// Records how long one of the queue's jobs ran.
    pub(crate) fn ran(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        // An average over about the last eight jobs: quick to follow a change of workload.
        let _ = self.run_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 { us } else { old - old / 8 + us / 8 }.max(1))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_follows_run_times_within_its_bounds() {
        let slots = Slots::new(10, None);
        assert_eq!(slots.target(), 20, "unknown run time: as many as the slots");
        for _ in 0..50 {
            slots.ran(Duration::from_micros(20));
        }
        assert_eq!(slots.target(), 10 + PREFETCH_MAX, "short jobs: the most ahead");
        let wide = Slots::new(2000, None);
        wide.ran(Duration::from_micros(20));
        assert_eq!(wide.target(), 4000, "more slots than that: as many again ahead");
        for _ in 0..50 {
            slots.ran(Duration::from_secs(2));
        }
        assert_eq!(slots.target(), 10, "long jobs: none ahead");
        for _ in 0..200 {
            slots.ran(Duration::from_millis(10));
        }
        assert_eq!(slots.target(), 60, "10 ms jobs: 50 ms of work ahead");
        let fixed = Slots::new(4, Some(0));
        fixed.ran(Duration::from_micros(1));
        assert_eq!((fixed.target(), fixed.held_max), (4, 4));
    }
}
