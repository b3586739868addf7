//! How the worker behaves while the database fails: each loop backs off (never spins), and
//! the outage is logged once when it starts, at most once a minute while it lasts, and once
//! when the database answers again — not once per failed statement.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

/// Exponential backoff with jitter, for one loop.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        let max = max.max(min);
        Backoff { min, max, next: min }
    }

    /// The wait before the next try: up to twice the last, at most `max`, with jitter so
    /// that many workers do not retry in step.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// The loop succeeded: start again from the shortest wait.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Whether the worker can reach its database, shared by its loops.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    state: Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    last_logged: Instant,
    failures: u64,
}

/// How often an ongoing outage is logged again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

impl Outage {
    /// A statement of the worker's failed.
    pub(crate) fn failed(&self, what: &str, err: &Error) {
        let mut state = self.lock();
        let now = Instant::now();
        match &mut *state {
            None => {
                tracing::warn!(error = %err, "the worker lost its database ({what} failed); retrying with backoff");
                *state = Some(Down { since: now, last_logged: now, failures: 1 });
            }
            Some(down) => {
                down.failures += 1;
                if now.duration_since(down.last_logged) >= REMIND_EVERY {
                    down.last_logged = now;
                    tracing::warn!(
                        error = %err,
                        for_secs = now.duration_since(down.since).as_secs(),
                        failures = down.failures,
                        "the worker still cannot use its database ({what} failed)"
                    );
                } else {
                    tracing::debug!(error = %err, "{what} failed");
                }
            }
        }
    }

    /// A statement of the worker's succeeded.
    pub(crate) fn ok(&self) {
        let mut state = self.lock();
        if let Some(down) = state.take() {
            tracing::info!(
                after_ms = u64::try_from(down.since.elapsed().as_millis()).unwrap_or(u64::MAX),
                failures = down.failures,
                "the worker's database answers again"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Down>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100) && delays[0] >= Duration::from_millis(50));
        assert!(delays[5] <= Duration::from_secs(1) && delays[5] >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
