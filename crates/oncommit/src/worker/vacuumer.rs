//! The vacuum duty, on the leader (PostgreSQL, connected directly): vacuums the jobs table
//! whenever enough dead rows piled up since the last vacuum, as often as it may while
//! spending at most a quarter of its time vacuuming.
//!
//! Why not leave it all to autovacuum: a claim reads the claim index from its head, and
//! every job claimed since the last vacuum left a dead entry there (the claim moved the row
//! out of the index's predicate). PostgreSQL marks such entries dead as scans pass them but
//! removes them only in a vacuum, so each claim walks past all of them, and autovacuum
//! looks at a table at most once a minute (`autovacuum_naptime`): at 40,000 jobs a second a
//! claim walked up to 2.4 million dead entries, and a 1,000,000-job drain slowed to half
//! its starting rate by its end. A vacuum removes them, and claims start at the first live
//! entry again (docs/benchmarks.md, "The claim index's dead head").

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::leader::Leadership;
use super::outage::Backoff;
use crate::driver::contract::Upkeep;
use crate::queries;
use crate::shutdown::Shutdown;

/// Dead rows since the last vacuum past which the leader vacuums: each claimed job leaves
/// two (its claim, its outcome), so about 25,000 claims' dead entries at most at the claim
/// index's head, a hundred-odd index pages: a fraction of a millisecond per claim.
const DEAD_ROWS_PER_VACUUM: i64 = 50_000;

/// The older rule, for space rather than speed: dead rows past a fifth of the live ones
/// (and at least this many) when no vacuum, manual or automatic, ran lately. Pruning frees
/// space only for a vacuum to hand back; where autovacuum is off or lags, the table and its
/// indexes would otherwise grow without bound.
const SPACE_MIN_DEAD_ROWS: i64 = 10_000;

/// After a vacuum that took `t`, the next waits `REST * t`: vacuuming a table of millions
/// of rows takes seconds of one core, so the duty never takes more than a quarter of it.
const REST: u32 = 3;

/// How often the table is looked at while its dead rows grow (a claim or an outcome was
/// written since the last look), and while they do not: an idle fleet's leader asks once in
/// ten seconds.
const BUSY_CHECK: Duration = Duration::from_secs(1);
const IDLE_CHECK: Duration = Duration::from_secs(10);

/// Why the table is vacuumed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Claims would walk too many dead entries.
    ClaimIndex,
    /// Dead rows hold space nothing else reclaims; analyzed too, as autovacuum would.
    Space,
}

/// Whether to vacuum now, given what the table says, the dead rows the last vacuum here
/// could not remove (an older snapshot still saw them: counting them again would vacuum
/// for nothing until that snapshot ends), and how long the space rule waits for others.
fn due(upkeep: &Upkeep, left: i64, space_after: Duration) -> Option<Why> {
    if upkeep.vacuuming || !upkeep.permitted {
        return None;
    }
    if upkeep.dead_rows - left >= DEAD_ROWS_PER_VACUUM {
        return Some(Why::ClaimIndex);
    }
    let piled = upkeep.dead_rows > SPACE_MIN_DEAD_ROWS.max(upkeep.live_rows / 5);
    let lately = upkeep.vacuumed_ago.is_some_and(|ago| ago < space_after);
    (piled && !lately).then_some(Why::Space)
}

pub(crate) async fn run(shared: Arc<Shared>, mut leadership: Leadership, mut shutdown: Shutdown) {
    // Dead rows our last vacuum left, and the count at the last look.
    let mut left = 0;
    let mut seen = None;
    // Whether the log already said this role may not vacuum (once is enough).
    let mut said_forbidden = false;
    let mut backoff = Backoff::new(BUSY_CHECK, IDLE_CHECK * 6);
    loop {
        if !leadership.wait(&mut shutdown).await {
            return;
        }
        let next = match queries::table_upkeep(&shared.quiet).await {
            // Nothing for a vacuum to do here, ever (SQLite, a transaction pooler).
            Ok(None) => return,
            Ok(Some(upkeep)) => {
                backoff.reset();
                if !upkeep.permitted && !said_forbidden {
                    said_forbidden = true;
                    tracing::info!(
                        "this role may not vacuum oncommit.jobs (it needs the table's or the database's owner): \
                         autovacuum alone removes the claim index's dead entries"
                    );
                }
                // Another vacuum (autovacuum's) may have removed what ours could not.
                left = left.min(upkeep.dead_rows);
                // The first look counts as growing: the next comes soon, to learn.
                let growing = seen.is_none_or(|before| upkeep.dead_rows > before);
                seen = Some(upkeep.dead_rows);
                match due(&upkeep, left, shared.config.prune_interval * 2) {
                    Some(why) => {
                        let rest = vacuum(&shared, why).await;
                        if let Ok(Some(after)) = queries::table_upkeep(&shared.quiet).await {
                            left = after.dead_rows;
                            seen = Some(after.dead_rows);
                        }
                        rest.max(BUSY_CHECK)
                    }
                    None if growing => BUSY_CHECK,
                    None => IDLE_CHECK,
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "reading the jobs table's dead rows failed; the vacuum duty tries again");
                backoff.next_delay()
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(next) => {}
        }
    }
}

/// Vacuums the table on the busy pool (the quiet one's connection must stay free for the
/// tick and the election); returns how long to rest before the next.
async fn vacuum(shared: &Shared, why: Why) -> Duration {
    let started = Instant::now();
    let vacuumed = queries::table_vacuum(&shared.services, why == Why::Space).await;
    let took = started.elapsed();
    match vacuumed {
        Ok(()) if why == Why::Space => {
            tracing::info!(?took, "vacuumed the jobs table (autovacuum had not)");
        }
        Ok(()) => tracing::debug!(?took, "vacuumed the jobs table's dead claim entries"),
        Err(err) => tracing::warn!(error = %err, "vacuuming the jobs table failed; is autovacuum on?"),
    }
    took * REST
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dead_rows: i64, live_rows: i64, vacuumed_ago: Option<u64>) -> Upkeep {
        Upkeep {
            dead_rows,
            live_rows,
            vacuumed_ago: vacuumed_ago.map(Duration::from_secs),
            vacuuming: false,
            permitted: true,
        }
    }

    const SPACE_AFTER: Duration = Duration::from_secs(120);

    #[test]
    fn claims_past_the_threshold_vacuum_however_recent_the_last_vacuum() {
        assert_eq!(due(&table(60_000, 10_000_000, Some(1)), 0, SPACE_AFTER), Some(Why::ClaimIndex));
        assert_eq!(due(&table(40_000, 10_000_000, Some(1)), 0, SPACE_AFTER), None);
    }

    #[test]
    fn dead_rows_a_vacuum_could_not_remove_are_not_counted_again() {
        // A long reader kept 60,000 dead rows through the last vacuum.
        assert_eq!(due(&table(70_000, 10_000_000, Some(1)), 60_000, SPACE_AFTER), None);
        assert_eq!(due(&table(110_000, 10_000_000, Some(1)), 60_000, SPACE_AFTER), Some(Why::ClaimIndex));
    }

    #[test]
    fn space_waits_for_autovacuum_a_while() {
        assert_eq!(due(&table(30_000, 100_000, Some(60)), 0, SPACE_AFTER), None);
        assert_eq!(due(&table(30_000, 100_000, Some(600)), 0, SPACE_AFTER), Some(Why::Space));
        assert_eq!(due(&table(30_000, 100_000, None), 0, SPACE_AFTER), Some(Why::Space));
        // A fifth of the live rows, and at least 10,000.
        assert_eq!(due(&table(30_000, 1_000_000, None), 0, SPACE_AFTER), None);
        assert_eq!(due(&table(5_000, 1_000, None), 0, SPACE_AFTER), None);
    }

    #[test]
    fn never_beside_another_vacuum_nor_without_the_right() {
        let running = Upkeep { vacuuming: true, ..table(1_000_000, 0, None) };
        assert_eq!(due(&running, 0, SPACE_AFTER), None);
        let forbidden = Upkeep { permitted: false, ..table(1_000_000, 0, None) };
        assert_eq!(due(&forbidden, 0, SPACE_AFTER), None);
    }
}
