//! One queue's capacity: how many jobs it runs at once (its concurrency), and how many more
//! it claims ahead to wait in the worker (its prefetch).
//!
//! Short jobs need prefetch: a claim and the write of its outcomes are round trips of
//! several milliseconds each under load, and a job keeps its place from the claim until
//! its outcome is written, so the jobs a queue may hold, not its slots, set the pace of
//! short jobs. With 10 slots and no prefetch a queue claims a few jobs per round trip
//! (4,400 jobs/s against 30,000 with 100 prefetched, on a 100,000-job backlog); with up to
//! [`PREFETCH_MAX`] held ahead, two claims of a batch each can be on their way while the
//! slots work through the rest.
//!
//! Long jobs must not have it: a prefetched job waits for this worker's slots while another
//! worker may have one free (Celery's prefetch trap). So unless the user sets it, prefetch
//! follows what the worker knows of the jobs it is claiming now: each task's recent run
//! time here, and the longest of those among the last claim's tasks. As many jobs are held
//! ahead as the slots get through in about [`PREFETCH_WAIT`], at most [`PREFETCH_MAX`] or
//! the concurrency, whichever is larger; none while a task of the last claim has not run
//! here yet. Per task, not per queue: a queue's recent history of short jobs says nothing
//! of the long one just enqueued. (The fetcher adds the other half: when the queue runs
//! shallow, it claims only into free slots.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Recent run time of each task's jobs here, in microseconds (a moving average).
    run_us: Mutex<HashMap<String, u64>>,
    /// How long the jobs being claimed now are expected to run, in microseconds: the
    /// longest recent run time among the last claim's tasks; [`UNKNOWN`] before the first
    /// claim, or while one of its tasks has not run here yet.
    expect_us: AtomicU64,
}

/// A run time not known yet: no prefetch until it is.
const UNKNOWN: u64 = u64::MAX;

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
            run_us: Mutex::new(HashMap::new()),
            expect_us: AtomicU64::new(UNKNOWN),
        }
    }

    /// How many jobs the queue should hold now: its concurrency plus the prefetch.
    pub(crate) fn target(&self) -> usize {
        let most = self.held_max - self.concurrency;
        let prefetch = self.fixed.unwrap_or_else(|| match self.expect_us.load(Ordering::Relaxed) {
            UNKNOWN => 0,
            us => {
                let ahead = PREFETCH_WAIT.as_secs_f64() * 1e6 / us.max(1) as f64 * self.concurrency as f64;
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

    /// Records how long a job of `task` ran.
    pub(crate) fn ran(&self, task: &str, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX - 1).clamp(1, UNKNOWN - 1);
        let mut run_us = self.run_us.lock().unwrap_or_else(PoisonError::into_inner);
        match run_us.get_mut(task) {
            // An average over about the last eight jobs: quick to follow a change of workload.
            Some(old) => *old = (*old - *old / 8 + us / 8).max(1),
            None => {
                run_us.insert(task.to_owned(), us);
            }
        }
        // The claim that brought it waited for its run time: that is known now.
        let _ = self.expect_us.compare_exchange(UNKNOWN, us, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Records the tasks of a claim's jobs: the next claims prefetch by how long these run.
    pub(crate) fn claimed<'a>(&self, tasks: impl Iterator<Item = &'a str>) {
        let run_us = self.run_us.lock().unwrap_or_else(PoisonError::into_inner);
        let expect = tasks.map(|task| run_us.get(task).copied().unwrap_or(UNKNOWN)).max();
        if let Some(expect) = expect {
            self.expect_us.store(expect, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_follows_the_claimed_tasks_run_times_within_its_bounds() {
        let slots = Slots::new(10, None);
        assert_eq!(slots.target(), 10, "nothing claimed yet: none ahead");
        slots.claimed(["noop"].into_iter());
        assert_eq!(slots.target(), 10, "a task not run here yet: none ahead");
        for _ in 0..50 {
            slots.ran("noop", Duration::from_micros(20));
        }
        assert_eq!(slots.target(), 10 + PREFETCH_MAX, "short jobs: the most ahead");
        let wide = Slots::new(2000, None);
        wide.ran("noop", Duration::from_micros(20));
        assert_eq!(wide.target(), 4000, "more slots than that: as many again ahead");

        // A long task arrives after many short ones: its first claim already stops the
        // prefetch, before any of its jobs has ended.
        slots.claimed(["noop", "report"].into_iter());
        assert_eq!(slots.target(), 10, "a task of the claim not run here yet: none ahead");
        for _ in 0..50 {
            slots.ran("report", Duration::from_secs(2));
        }
        slots.claimed(["report"].into_iter());
        assert_eq!(slots.target(), 10, "long jobs: none ahead");
        slots.claimed(["noop"].into_iter());
        assert_eq!(slots.target(), 10 + PREFETCH_MAX, "the short task's own history still stands");
        for _ in 0..200 {
            slots.ran("mail", Duration::from_millis(10));
        }
        slots.claimed(["mail", "noop"].into_iter());
        assert_eq!(slots.target(), 60, "10 ms jobs, the longest of the claim: 50 ms of work ahead");
        let fixed = Slots::new(4, Some(0));
        fixed.ran("noop", Duration::from_micros(1));
        assert_eq!((fixed.target(), fixed.held_max), (4, 4));
    }
}
