//! What the workers did per queue over the last minutes: attempts by outcome, throughput,
//! and how long jobs waited from their `run_at` to their start (p50 / p95). What the
//! dashboard's queues view and `oncommit queues` show.
//!
//! Each worker counts in memory as its jobs finish and adds its counts to the table
//! `queue_activity` at every heartbeat: one statement per interval whatever the throughput,
//! and reading an hour costs a few rows per queue and minute, never a scan of the jobs.
//! Counts are of attempts as their worker saw them finish; a worker that dies loses at most
//! one heartbeat interval of them. Waits are kept as counts per bucket
//! ([`WAIT_BUCKETS_MS`]), so a percentile is known to its bucket: "p95 ≤ 50 ms".

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::db::Db;
use crate::error::Result;
use crate::queries::activity::{self, ActivityRow};

/// Upper bounds of the wait buckets, in milliseconds; waits longer than the last fall in
/// one more bucket, reported as that last bound.
pub const WAIT_BUCKETS_MS: [i64; 18] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000];

/// How long the activity of a minute is kept.
pub const ACTIVITY_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// A queue's activity over a window ([`Queues::activity`](crate::admin::Queues::activity)).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueActivity {
    /// The queue.
    pub queue: String,
    /// Attempts that completed their job.
    pub completed: i64,
    /// Attempts that failed and left their job to be retried.
    pub retried: i64,
    /// Attempts that failed their job for good.
    pub failed: i64,
    /// Attempts that cancelled their job.
    pub cancelled: i64,
    /// Completions per minute, oldest first, as `(minute since the Unix epoch, count)`;
    /// minutes without completions are left out.
    pub completed_per_minute: Vec<(i64, i64)>,
    /// Attempts whose wait was measured.
    pub started: i64,
    /// Half the jobs started within this many milliseconds of their `run_at` (the upper
    /// bound of the bucket the median fell in); `None` when none started.
    pub wait_p50_ms: Option<i64>,
    /// 95 % of them started within this many milliseconds.
    pub wait_p95_ms: Option<i64>,
}

/// Every queue's activity over the last `window`: [`Queues::activity`](crate::admin::Queues::activity).
pub(crate) async fn queue_activity(db: &Db, window: Duration) -> Result<Vec<QueueActivity>> {
    let minutes = i64::try_from(window.as_secs().div_ceil(60)).unwrap_or(i64::MAX).max(1);
    let since = now_minute().saturating_sub(minutes - 1);
    let mut queues: BTreeMap<String, (QueueActivity, Vec<i64>)> = BTreeMap::new();
    for (minute, queue, metric, bucket, count) in activity::activity_since(db, since).await? {
        let (q, waits) = queues.entry(queue.clone()).or_insert_with(|| {
            (QueueActivity { queue, ..QueueActivity::default() }, vec![0; WAIT_BUCKETS_MS.len() + 1])
        });
        match metric.as_str() {
            "completed" => {
                q.completed += count;
                match q.completed_per_minute.last_mut() {
                    Some((m, n)) if *m == minute => *n += count,
                    _ => q.completed_per_minute.push((minute, count)),
                }
            }
            "retryable" => q.retried += count,
            "failed" => q.failed += count,
            "cancelled" => q.cancelled += count,
            "wait" => {
                // A bucket beyond the known ones (written by a newer version) counts as the last.
                let i = usize::try_from(bucket).unwrap_or(0).min(WAIT_BUCKETS_MS.len());
                waits[i] += count;
                q.started += count;
            }
            _ => {}
        }
    }
    Ok(queues
        .into_values()
        .map(|(mut q, waits)| {
            q.wait_p50_ms = percentile(&waits, 0.50);
            q.wait_p95_ms = percentile(&waits, 0.95);
            q
        })
        .collect())
}

/// The upper bound of the bucket holding the `p`-th fraction of the counts.
fn percentile(buckets: &[i64], p: f64) -> Option<i64> {
    let total: i64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * p).ceil().max(1.0) as i64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(WAIT_BUCKETS_MS[i.min(WAIT_BUCKETS_MS.len() - 1)]);
        }
    }
    WAIT_BUCKETS_MS.last().copied()
}

fn now_minute() -> i64 {
    chrono::Utc::now().timestamp().div_euclid(60)
}

/// The bucket of a wait.
fn wait_bucket(waited: Duration) -> i16 {
    let ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX);
    WAIT_BUCKETS_MS.iter().position(|bound| ms <= *bound).unwrap_or(WAIT_BUCKETS_MS.len()) as i16
}

/// One queue's counts by `(minute, metric, bucket)`.
type QueueCounts = BTreeMap<(i64, &'static str, i16), i64>;

/// A worker's counts not yet written, per queue.
#[derive(Debug, Default)]
pub(crate) struct ActivityCounter {
    counts: Mutex<HashMap<String, QueueCounts>>,
}

impl ActivityCounter {
    /// One attempt finished with `outcome`, having waited `waited` from its `run_at`.
    pub(crate) fn record(&self, queue: &str, outcome: &'static str, waited: Duration) {
        let minute = now_minute();
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let queue = match counts.get_mut(queue) {
            Some(q) => q,
            None => counts.entry(queue.to_owned()).or_default(),
        };
        *queue.entry((minute, outcome, -1)).or_default() += 1;
        *queue.entry((minute, "wait", wait_bucket(waited))).or_default() += 1;
    }

    /// Adds the counts to the table; on failure keeps them for the next flush.
    pub(crate) async fn flush(&self, db: &Db) -> Result<()> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut rows: Vec<ActivityRow> = taken
            .iter()
            .flat_map(|(queue, counts)| {
                counts
                    .iter()
                    .map(|(&(minute, metric, bucket), &n)| (minute, queue.clone(), metric.to_owned(), bucket, n))
            })
            .collect();
        rows.sort_unstable();
        if let Err(err) = activity::activity_add(db, &rows).await {
            let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (queue, kept) in taken {
                let q = counts.entry(queue).or_default();
                for (key, n) in kept {
                    *q.entry(key).or_default() += n;
                }
            }
            return Err(err);
        }
        Ok(())
    }
}

/// Deletes the activity older than [`ACTIVITY_RETENTION`] (the leader, with its pruning).
pub(crate) async fn prune(db: &Db) -> Result<u64> {
    let keep = i64::try_from(ACTIVITY_RETENTION.as_secs() / 60).unwrap_or(i64::MAX);
    activity::activity_prune(db, now_minute() - keep).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_bounds() {
        let mut b = vec![0; WAIT_BUCKETS_MS.len() + 1];
        assert_eq!(percentile(&b, 0.5), None);
        b[0] = 50; // ≤ 1 ms
        b[5] = 45; // ≤ 50 ms
        b[9] = 5; // ≤ 1 s
        assert_eq!(percentile(&b, 0.50), Some(1));
        assert_eq!(percentile(&b, 0.95), Some(50));
        assert_eq!(percentile(&b, 0.96), Some(1_000));
        b[WAIT_BUCKETS_MS.len()] = 1_000; // beyond the last bound
        assert_eq!(percentile(&b, 0.95), Some(3_600_000));
    }

    #[test]
    fn waits_fall_in_their_buckets() {
        assert_eq!(wait_bucket(Duration::ZERO), 0);
        assert_eq!(wait_bucket(Duration::from_millis(3)), 2);
        assert_eq!(wait_bucket(Duration::from_secs(7200)), WAIT_BUCKETS_MS.len() as i16);
    }
}
