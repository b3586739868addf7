//! One queue's capacity: how many jobs it runs at once (its concurrency), and how many more
//! it claims ahead to wait in the worker (its prefetch).
//!
//! Short jobs need prefetch: with 10 slots and none, a queue claims a few jobs per round
//! trip, and the round trips, not the jobs, set the pace (4,400 jobs/s against 30,000 with
//! 100 prefetched, on a 100,000-job backlog). Long jobs must not have it: a prefetched job
//! waits for this worker's slots while another worker may be idle. So unless the user sets
//! it, prefetch follows the queue's recent run times: as many jobs as its slots get through
//! in about [`PREFETCH_WAIT`], at most a claim batch or the concurrency, whichever is
//! larger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// About the longest a prefetched job should wait for a slot, when the prefetch adapts.
pub(crate) const PREFETCH_WAIT: Duration = Duration::from_millis(50);

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
    /// `prefetch` fixed by the user, or adapting up to `batch` or `concurrency`, whichever
    /// is larger.
    pub(crate) fn new(concurrency: usize, prefetch: Option<usize>, batch: usize) -> Slots {
        let held_max = concurrency + prefetch.unwrap_or(batch.max(concurrency));
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
        let slots = Slots::new(10, None, 100);
        assert_eq!(slots.target(), 20, "unknown run time: as many as the slots");
        for _ in 0..50 {
            slots.ran(Duration::from_micros(20));
        }
        assert_eq!(slots.target(), 110, "short jobs: a whole batch ahead");
        let wide = Slots::new(256, None, 100);
        wide.ran(Duration::from_micros(20));
        assert_eq!(wide.target(), 512, "many slots: as many again ahead");
        for _ in 0..50 {
            slots.ran(Duration::from_secs(2));
        }
        assert_eq!(slots.target(), 10, "long jobs: none ahead");
        for _ in 0..200 {
            slots.ran(Duration::from_millis(10));
        }
        assert_eq!(slots.target(), 60, "10 ms jobs: 50 ms of work ahead");
        let fixed = Slots::new(4, Some(0), 100);
        fixed.ran(Duration::from_micros(1));
        assert_eq!((fixed.target(), fixed.held_max), (4, 4));
    }
}
