//! [`TransactionRetry`]: when and how often a transaction closure runs again after a retryable error.

use std::time::Duration;

/// Runs a transaction closure again after a serialization failure, a deadlock or a SQLite
/// busy error ([`Error::is_retryable`](crate::Error::is_retryable)), with exponential
/// backoff and full jitter, until the attempts or the deadline run out.
///
/// Each attempt is a fresh transaction: hooks and enqueues of a failed attempt vanish with it.
///
/// ```
/// use std::time::Duration;
/// let retry = oncommit::TransactionRetry::default()
///     .max_attempts(10)
///     .base_delay(Duration::from_millis(5))
///     .deadline(Duration::from_secs(2));
/// assert_eq!(retry.attempts(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionRetry {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    /// No new attempt starts once this much time has passed since the first began.
    deadline: Option<Duration>,
}

impl Default for TransactionRetry {
    /// Five attempts, 10 ms base delay doubling up to 1 s, no deadline.
    fn default() -> Self {
        TransactionRetry {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            deadline: None,
        }
    }
}

impl TransactionRetry {
    /// A policy that never retries: the first error is returned.
    pub fn never() -> TransactionRetry {
        TransactionRetry { max_attempts: 1, ..TransactionRetry::default() }
    }

    /// How many attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> TransactionRetry {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the second attempt; it doubles for each later one.
    pub fn base_delay(mut self, delay: Duration) -> TransactionRetry {
        self.base_delay = delay;
        self
    }

    /// The longest delay between two attempts.
    pub fn max_delay(mut self, delay: Duration) -> TransactionRetry {
        self.max_delay = delay;
        self
    }

    /// No attempt starts after this much time since the first.
    pub fn deadline(mut self, deadline: Duration) -> TransactionRetry {
        self.deadline = Some(deadline);
        self
    }

    /// The number of attempts allowed.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay to wait after failed attempt number `attempt` (1-based): a uniformly random
    /// duration up to `base * 2^(attempt-1)`, capped at the maximum ("full jitter", which
    /// spreads contending transactions apart best).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Whether another attempt may start after `attempt` failed, `elapsed` after the first.
    pub fn allows(&self, attempt: u32, elapsed: Duration) -> bool {
        attempt < self.max_attempts && self.deadline.is_none_or(|d| elapsed < d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_exponential_cap() {
        let r = TransactionRetry::default().base_delay(Duration::from_millis(10)).max_delay(Duration::from_millis(50));
        for _ in 0..100 {
            assert!(r.delay_after(1) <= Duration::from_millis(10));
            assert!(r.delay_after(2) <= Duration::from_millis(20));
            assert!(r.delay_after(30) <= Duration::from_millis(50));
        }
    }

    #[test]
    fn attempts_and_deadline_bound_the_retries() {
        let r = TransactionRetry::default().max_attempts(3).deadline(Duration::from_secs(1));
        assert!(r.allows(1, Duration::ZERO));
        assert!(r.allows(2, Duration::ZERO));
        assert!(!r.allows(3, Duration::ZERO));
        assert!(!r.allows(1, Duration::from_secs(2)));
        assert!(!TransactionRetry::never().allows(1, Duration::ZERO));
    }
}
