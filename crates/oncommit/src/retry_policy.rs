//! [`RetryPolicy`]: how long a failed job waits before its next attempt.

use std::time::Duration;

/// The backoff between a job's attempts.
///
/// ```
/// use std::time::Duration;
/// use oncommit::RetryPolicy;
/// let policy = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(3600));
/// assert!(policy.delay(3) <= Duration::from_millis(4400));
/// assert_eq!(RetryPolicy::fixed(Duration::from_millis(5)).delay(9), Duration::from_millis(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryPolicy {
    /// `base * 2^(attempt-1)`, at most `max`, within ±10 % jitter so that jobs that failed
    /// together do not all come back together.
    Exponential {
        /// The wait after the first failed attempt.
        base: Duration,
        /// The longest wait.
        max: Duration,
    },
    /// The same wait every time.
    Fixed(Duration),
}

impl Default for RetryPolicy {
    /// Exponential from 1 s up to 1 h: 25 attempts then span about 20 hours.
    fn default() -> Self {
        RetryPolicy::Exponential { base: Duration::from_secs(1), max: Duration::from_secs(3600) }
    }
}

impl RetryPolicy {
    /// Exponential backoff from `base` up to `max`.
    pub fn exponential(base: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy::Exponential { base, max }
    }

    /// A fixed wait.
    pub fn fixed(delay: Duration) -> RetryPolicy {
        RetryPolicy::Fixed(delay)
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: i32) -> Duration {
        match *self {
            RetryPolicy::Fixed(d) => d,
            RetryPolicy::Exponential { base, max } => {
                let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
                let exp = base.saturating_mul(1u32 << doublings).min(max);
                exp.mul_f64(0.9 + fastrand::f64() * 0.2)
            }
        }
    }
}
