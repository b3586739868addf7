//! The history's upkeep, part of the leader's pruning pass (PostgreSQL; docs/history.md):
//! moves finished jobs left in the jobs table to the history, creates each class's
//! partitions ahead of time and drops them whole once their retention has passed.
//!
//! A class kept for `R` gets partitions `R / 24` wide (an hour at least, a day at most), so
//! a job is dropped at most a twenty-fourth of its retention (or an hour) after it is due:
//! a dropped partition leaves no dead rows, where deleting the same jobs one by one would
//! leave as many for vacuum. A class kept under an hour is pruned row by row, as SQLite is.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::Retention;
use super::pruner::in_batches;
use crate::db::Db;
use crate::queries::history::{self, HistoryClass, Leaves};
use crate::shutdown::Shutdown;

/// The narrowest partition; a retention shorter than this is pruned row by row.
const MIN_WIDTH: Duration = Duration::from_secs(3600);
/// The widest partition.
const MAX_WIDTH: Duration = Duration::from_secs(24 * 3600);
/// Partitions per retention: how late past its retention a job may be dropped.
const LEAVES_PER_RETENTION: u32 = 24;
/// How many partition widths ahead of now partitions exist, so that a leader that stops
/// leaves its successor that long before jobs land in the default partition.
const AHEAD: i32 = 2;
/// How far ahead of now a new partition begins at the earliest (see `plan`).
const LEAD: TimeDelta = TimeDelta::minutes(1);
/// How long after a partition's end no job lands in it any more, so that its jobs can be
/// counted once for all: a finishing statement runs within the worker's query timeout (its
/// lease), and the pass moves what other statements finished before it counts.
const SEALED_AFTER: TimeDelta = TimeDelta::minutes(5);
/// Most partitions created in one pass (a leader back after a long absence starts at now).
const MOST_CREATED: usize = 8;
/// Jobs moved or deleted per statement: short statements, so other writers get their turns.
const BATCH: i64 = 5_000;

/// What a pass did, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tended {
    /// Finished jobs moved from the jobs table.
    pub(super) moved: u64,
    /// Partitions added.
    pub(super) created: usize,
    /// Partitions dropped with their jobs.
    pub(super) dropped: usize,
    /// Partitions counted once for all.
    pub(super) counted: usize,
    /// Jobs deleted one by one (a short retention, or jobs that found no partition).
    pub(super) pruned: u64,
}

/// What to change in one class's history.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Partitions whose every job is past its retention.
    drop: Vec<String>,
    /// New partitions' `[from, to)`, in order.
    create: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Partitions no job lands in any more, to count once for all, oldest first.
    count: Vec<String>,
    /// Whether jobs past their retention are deleted one by one in every partition (a
    /// retention under the narrowest partition), not only among those that found none.
    prune_everywhere: bool,
}

/// The partition width for a class kept for `retention`.
fn width(retention: Duration) -> TimeDelta {
    let hours = (retention / LEAVES_PER_RETENTION).as_secs() / 3600 * 3600;
    let secs = Duration::from_secs(hours).clamp(MIN_WIDTH, MAX_WIDTH).as_secs();
    TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// `t` rounded down to a multiple of `width` since the epoch.
fn align(t: DateTime<Utc>, width: TimeDelta) -> DateTime<Utc> {
    let w = width.num_seconds().max(1);
    DateTime::from_timestamp(t.timestamp().div_euclid(w) * w, 0).unwrap_or(t)
}

/// The changes that keep a class kept for `retention` partitioned: drop what is past it,
/// create what the next `AHEAD` widths need, after the last partition.
///
/// A new partition never covers a time already past, nor the next `LEAD`: a job finishing
/// while its partition is attached would have been routed to the default partition, whose
/// bounds the attachment narrows under it, and its completion would fail. So when none
/// covers now (the first pass, or a leader back after a long absence), jobs go to the
/// default partition until the next one begins, `LEAD` from now, up to the next boundary.
fn plan(history: &Leaves, retention: Duration) -> Plan {
    let w = width(retention);
    let keep = TimeDelta::from_std(retention).unwrap_or(TimeDelta::MAX);
    let cutoff = history.now.checked_sub_signed(keep).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let drop: Vec<String> = history.leaves.iter().filter(|l| l.to <= cutoff).map(|l| l.name.clone()).collect();
    let sealed = history.now - SEALED_AFTER;
    let count = history
        .leaves
        .iter()
        .filter(|l| !l.counted && l.to <= sealed && !drop.contains(&l.name))
        .map(|l| l.name.clone())
        .collect();
    // (A partition's lower bound is inclusive: strictly after the default partition's jobs.)
    let after_unplaced = history.unplaced_until.map(|t| t + TimeDelta::microseconds(1));
    let earliest = after_unplaced.map_or(history.now + LEAD, |t| t.max(history.now + LEAD));
    let mut from = match history.leaves.last() {
        Some(last) if last.to >= earliest => last.to,
        _ => earliest,
    };
    let mut create = Vec::new();
    while from < history.now + w * AHEAD && create.len() < MOST_CREATED {
        // Up to the next boundary: after a first short one, partitions are aligned.
        let to = align(from, w) + w;
        create.push((from, to));
        from = to;
    }
    Plan { drop, create, count, prune_everywhere: retention < MIN_WIDTH }
}

/// One pass of the history's upkeep. Each failure is logged and the pass goes on: a lock
/// that could not be had in a moment is tried again at the next pass, well before the
/// partitions made ahead run out.
pub(super) async fn tend(db: &Db, retention: Retention, shutdown: &Shutdown) -> Tended {
    let moved =
        in_batches("moving finished jobs to the history", BATCH, shutdown, || history::job_archive(db, BATCH)).await;
    let mut done = Tended { moved, ..Tended::default() };
    for class in HistoryClass::ALL {
        let kept = match class {
            HistoryClass::Completed => retention.completed,
            HistoryClass::Discarded => retention.discarded,
        };
        let leaves = match history::history_leaves(db, class).await {
            Ok(Some(leaves)) => leaves,
            // No history here (SQLite).
            Ok(None) => return done,
            Err(err) => {
                tracing::warn!(error = %err, class = class.as_str(), "reading the history's partitions failed");
                continue;
            }
        };
        let plan = plan(&leaves, kept);
        for name in &plan.drop {
            match history::history_leaf_drop(db, class, name).await {
                Ok(()) => done.dropped += 1,
                Err(err) => {
                    tracing::warn!(error = %err, partition = %name, "dropping a partition of the history failed; the next pass tries again")
                }
            }
        }
        for &(from, to) in &plan.create {
            match history::history_leaf_create(db, class, from, to).await {
                Ok(()) => done.created += 1,
                Err(err) => {
                    tracing::warn!(error = %err, class = class.as_str(), %from, "adding a partition to the history failed; the next pass tries again");
                    break;
                }
            }
        }
        for name in &plan.count {
            match history::history_leaf_count(db, name).await {
                Ok(()) => done.counted += 1,
                Err(err) => {
                    tracing::warn!(error = %err, partition = %name, "counting a partition of the history failed; the next pass tries again");
                    break;
                }
            }
        }
        done.pruned += in_batches("pruning the history", BATCH, shutdown, || {
            history::history_prune(db, class, kept, plan.prune_everywhere, BATCH)
        })
        .await;
    }
    done
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;
    use crate::driver::contract::Leaf;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn leaf(from: &str, to: &str) -> Leaf {
        Leaf { name: format!("p{from}"), from: at(from), to: at(to), counted: false }
    }

    #[test]
    fn partitions_are_a_twenty_fourth_of_the_retention_between_an_hour_and_a_day() {
        assert_eq!(width(Duration::from_secs(60)), TimeDelta::hours(1));
        assert_eq!(width(24 * HOUR), TimeDelta::hours(1));
        assert_eq!(width(7 * 24 * HOUR), TimeDelta::hours(7));
        assert_eq!(width(90 * 24 * HOUR), TimeDelta::hours(24));
    }

    #[test]
    fn an_empty_history_gets_partitions_from_a_minute_ahead_then_aligned() {
        let history = Leaves { now: at("2026-12-07T13:20:00Z"), leaves: vec![], unplaced_until: None };
        let plan = plan(&history, 24 * HOUR);
        let bounds: Vec<_> = plan.create.iter().map(|(from, to)| (from.to_rfc3339(), to.to_rfc3339())).collect();
        let want = [
            ("2026-12-07T13:21:00+00:00", "2026-12-07T14:00:00+00:00"),
            ("2026-12-07T14:00:00+00:00", "2026-12-07T15:00:00+00:00"),
            ("2026-12-07T15:00:00+00:00", "2026-12-07T16:00:00+00:00"),
        ];
        assert_eq!(bounds, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
        assert!(plan.drop.is_empty());
        assert!(!plan.prune_everywhere);
    }

    #[test]
    fn partitions_past_the_retention_are_dropped_and_new_ones_follow_the_last() {
        let history = Leaves {
            now: at("2026-12-08T13:20:00Z"),
            leaves: vec![
                leaf("2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z"),
                leaf("2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z"),
                leaf("2026-12-08T13:00:00Z", "2026-12-08T14:00:00Z"),
                leaf("2026-12-08T14:00:00Z", "2026-12-08T15:00:00Z"),
            ],
            unplaced_until: None,
        };
        let plan = plan(&history, 24 * HOUR);
        // Only the partition whose every job finished over a day ago.
        assert_eq!(plan.drop, ["p2026-12-07T12:00:00Z"]);
        assert_eq!(plan.create, [(at("2026-12-08T15:00:00Z"), at("2026-12-08T16:00:00Z"))]);
    }

    #[test]
    fn partitions_are_counted_once_five_minutes_after_their_end() {
        let mut history = Leaves {
            now: at("2026-12-07T13:04:00Z"),
            leaves: vec![
                leaf("2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z"),
                leaf("2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z"),
                leaf("2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z"),
            ],
            unplaced_until: None,
        };
        history.leaves[0].counted = true;
        assert!(plan(&history, 24 * HOUR).count.is_empty(), "the last hour ended four minutes ago");
        history.now = at("2026-12-07T13:05:00Z");
        assert_eq!(plan(&history, 24 * HOUR).count, ["p2026-12-07T12:00:00Z"]);
    }

    #[test]
    fn a_partition_never_covers_the_present_nor_jobs_that_found_none() {
        // The last partition ended an hour ago (the leader was away): the next begins ahead.
        let history = Leaves {
            now: at("2026-12-07T13:20:00Z"),
            leaves: vec![leaf("2026-12-07T11:00:00Z", "2026-12-07T12:00:00Z")],
            unplaced_until: Some(at("2026-12-07T13:19:00Z")),
        };
        assert_eq!(plan(&history, 24 * HOUR).create[0], (at("2026-12-07T13:21:00Z"), at("2026-12-07T14:00:00Z")));
        // A job in the default partition dated ahead (a clock step): after it.
        let ahead = Leaves { unplaced_until: Some(at("2026-12-07T13:40:00Z")), ..history };
        assert_eq!(plan(&ahead, 24 * HOUR).create[0].0, at("2026-12-07T13:40:00.000001Z"));
    }

    #[test]
    fn a_retention_under_an_hour_is_pruned_row_by_row() {
        let history = Leaves { now: at("2026-12-07T13:20:00Z"), leaves: vec![], unplaced_until: None };
        assert!(plan(&history, Duration::from_secs(60)).prune_everywhere);
        assert!(!plan(&history, HOUR).prune_everywhere);
    }
}
