//! The jobs this worker holds: from the claim's reply until their outcome is written (or
//! given up). Only these leases are renewed. A job the database says is ours but this map
//! does not know (a claim whose reply was lost, a completion that was given up) is left to
//! expire and be rescued, so no job stays `running` behind a live worker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Why a running job was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A user cancelled it.
    Cancel,
    /// The worker is shutting down and the job did not finish in time.
    Release,
}

#[derive(Default)]
pub(crate) struct Held {
    jobs: Mutex<HashMap<i64, Entry>>,
}

struct Entry {
    /// The attempt claimed: the lease's fencing token.
    attempt: i32,
    /// The running task, to abort on cancel or shutdown; `None` once it has ended (its
    /// outcome is then on its way to the completer).
    task: Option<AbortHandle>,
    /// Why it was stopped, if it was.
    stop: Option<Stop>,
    /// Tells the task (through `TaskContext`) that its lease is lost.
    lost: watch::Sender<bool>,
    /// Until when the lease is ours by the last renewal, by this process's clock, counted
    /// from when the renewal was sent (so the estimate errs early).
    until: Instant,
}

impl Held {
    /// Records a claimed job; returns what its task watches for the loss of its lease.
    pub(crate) fn claimed(&self, id: i64, attempt: i32, sent: Instant, lease: Duration) -> watch::Receiver<bool> {
        let (lost, watch) = watch::channel(false);
        self.lock().insert(id, Entry { attempt, task: None, stop: None, lost, until: sent + lease });
        watch
    }

    /// The job's task started.
    pub(crate) fn started(&self, id: i64, task: AbortHandle) {
        if let Some(entry) = self.lock().get_mut(&id) {
            entry.task = Some(task);
        }
    }

    /// The job's task ended; returns why it was stopped, if it was.
    pub(crate) fn ended(&self, id: i64) -> Option<Stop> {
        self.lock().get_mut(&id).and_then(|entry| {
            entry.task = None;
            entry.stop
        })
    }

    /// The job's outcome was written (or given up): the worker holds it no more.
    pub(crate) fn release(&self, ids: impl IntoIterator<Item = i64>) {
        let mut jobs = self.lock();
        for id in ids {
            jobs.remove(&id);
        }
    }

    /// Stops job `id` if this worker holds it: a running one at once, a prefetched one when
    /// its turn comes (see `stopped`). Returns whether it holds it.
    pub(crate) fn stop(&self, id: i64, why: Stop) -> bool {
        match self.lock().get_mut(&id) {
            Some(Entry { task, stop, .. }) => {
                *stop = Some(why);
                if let Some(task) = task {
                    task.abort();
                }
                true
            }
            None => false,
        }
    }

    /// Why job `id` was stopped before it started, if it was.
    pub(crate) fn stopped(&self, id: i64) -> Option<Stop> {
        self.lock().get(&id).and_then(|entry| entry.stop)
    }

    /// Stops every running job.
    pub(crate) fn stop_all(&self, why: Stop) {
        for entry in self.lock().values_mut() {
            if let Some(task) = &entry.task {
                entry.stop = Some(why);
                task.abort();
            }
        }
    }

    /// The jobs whose leases to renew: those not known lost.
    pub(crate) fn to_renew(&self) -> Vec<i64> {
        self.lock().iter().filter(|(_, e)| !*e.lost.borrow()).map(|(id, _)| *id).collect()
    }

    /// Applies a renewal sent at `sent` for `asked`, which found `rows` still this worker's
    /// (`(id, attempt, cancel requested, renewed)`): the others are lost; those found but
    /// not renewed (locked at that moment) keep their earlier deadline. Returns the ids whose
    /// cancel was asked.
    pub(crate) fn renewed(
        &self,
        asked: &[i64],
        rows: &[(i64, i32, bool, bool)],
        sent: Instant,
        lease: Duration,
    ) -> Vec<i64> {
        let mut jobs = self.lock();
        let mut cancels = Vec::new();
        let found: HashMap<i64, (i32, bool, bool)> =
            rows.iter().map(|&(id, attempt, cancel, renewed)| (id, (attempt, cancel, renewed))).collect();
        for id in asked {
            let Some(entry) = jobs.get_mut(id) else { continue };
            match found.get(id) {
                Some(&(attempt, cancel, renewed)) if attempt == entry.attempt => {
                    if renewed {
                        entry.until = sent + lease;
                    }
                    if cancel {
                        cancels.push(*id);
                    }
                }
                _ => lose(*id, entry, "the database no longer gives it to this worker"),
            }
        }
        cancels
    }

    /// Marks lost the leases that ran out by this process's clock (renewals failed).
    pub(crate) fn expire(&self, now: Instant) {
        for (id, entry) in self.lock().iter_mut() {
            if entry.until <= now && !*entry.lost.borrow() {
                lose(*id, entry, "it could not be renewed before it ran out");
            }
        }
    }

    /// How many jobs are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn lose(id: i64, entry: &mut Entry, why: &str) {
    entry.lost.send_replace(true);
    // A job whose task has ended only waits for its outcome to be written, which the
    // fencing then refuses; that is reported by the completer.
    if entry.task.is_some() {
        tracing::warn!(
            job = id,
            attempt = entry.attempt,
            "lease lost while the job runs: {why}; it will be rescued and may run again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jobs_the_database_renews_keep_their_lease() {
        let held = Held::default();
        let now = Instant::now();
        let lease = Duration::from_secs(30);
        let kept = held.claimed(1, 1, now, lease);
        let taken = held.claimed(2, 1, now, lease);
        let re_leased = held.claimed(3, 1, now, lease);
        let mut asked = held.to_renew();
        asked.sort_unstable();
        assert_eq!(asked, [1, 2, 3]);
        let cancels = held.renewed(&asked, &[(1, 1, true, true), (3, 2, false, true)], now, lease);
        assert_eq!(cancels, [1]);
        assert!(!*kept.borrow());
        assert!(*taken.borrow() && *re_leased.borrow());
        assert_eq!(held.to_renew(), [1]);
        // Locked at the next renewal: still ours, but its deadline stays where it was.
        held.renewed(&[1], &[(1, 1, false, false)], now + lease / 2, lease);
        assert!(!*kept.borrow());
        held.expire(now + lease);
        assert!(*kept.borrow(), "a lease not renewed in time is lost");
        held.release([1, 2, 3]);
        assert_eq!(held.len(), 0);
    }
}
