//! The claim of a fair queue: its jobs' fairness keys served round robin, written once over
//! the driver's statements (docs/fairness.md).
//!
//! It runs under the queue's lock (see `queue_control`), so claims take turns and each
//! starts where the last ended: after the key in the queue's `fair_cursor`. A claim of `n`
//! jobs reads up to `n` keys that have available jobs at the best priority among keyed jobs
//! (one index probe per key), going round to the first key after the last, and gives each
//! key `weight` jobs per round (by id within a key) for as many rounds as fill the claim.
//! With more keys than the claim takes, each key gets its weight once and the next claim
//! goes on from the last key served; with few keys, one claim holds several rounds, in
//! round order. Jobs without a key run when no keyed job is available.

use crate::conn::Conn;
use crate::driver::contract::JobClaim;
use crate::error::Result;
use crate::job_row::JobRow;

/// Claims up to `claim.limit` jobs of a fair queue, after the key `cursor`.
pub(crate) async fn claim(
    mut conn: Conn<'_>,
    claim: &JobClaim<'_>,
    now_ms: i64,
    cursor: Option<&str>,
) -> Result<Vec<JobRow>> {
    let Some(priority) = on_driver!(conn.reborrow(), fair_top_priority(claim.queue))? else {
        // No keyed job is available: the jobs without a key, in the usual order.
        return on_driver!(conn, job_claim_controlled(claim, now_ms));
    };
    let mut keys = on_driver!(conn.reborrow(), fair_keys(claim.queue, priority, cursor, claim.limit))?;
    if cursor.is_some() && (keys.len() as i64) < claim.limit {
        // Round to the first key, up to the keys already read (the database orders keys
        // by its collation, which need not be Rust's: compared by what was seen, not by
        // value). The cursor's own key is served last in this round.
        let left = claim.limit - keys.len() as i64;
        let first = on_driver!(conn.reborrow(), fair_keys(claim.queue, priority, None, left))?;
        let seen: std::collections::HashSet<String> = keys.iter().map(|(key, _)| key.clone()).collect();
        keys.extend(first.into_iter().take_while(|(key, _)| !seen.contains(key)));
    }
    let quotas = quotas(&keys, claim.limit);
    if quotas.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = keys.iter().map(|(key, _)| key.clone()).collect();
    let found = on_driver!(conn.reborrow(), fair_jobs(claim.queue, priority, &names, &quotas))?;
    let order = round_order(&found, &keys, claim.limit);
    let ids: Vec<i64> = order.iter().map(|(id, _)| *id).collect();
    let mut rows = on_driver!(conn.reborrow(), job_claim_ids(claim, &ids, now_ms))?;
    if let Some((_, last)) = order.last() {
        on_driver!(conn, queue_fair_cursor_set(claim.queue, &names[*last]))?;
    }
    // The worker starts them in claim order: round by round.
    let rank: std::collections::HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    rows.sort_by_key(|row| rank.get(&row.job.id.0).copied().unwrap_or(usize::MAX));
    Ok(rows)
}

/// How many jobs each key may give to a claim of `limit`: its weight per round, for as many
/// rounds as the keys' weights need to fill the claim.
fn quotas(keys: &[(String, i32)], limit: i64) -> Vec<i64> {
    let weights: i64 = keys.iter().map(|(_, w)| i64::from((*w).max(1))).sum();
    if weights == 0 || limit <= 0 {
        return Vec::new();
    }
    let rounds = ((limit + weights - 1) / weights).max(1);
    keys.iter().map(|(_, w)| (i64::from((*w).max(1)) * rounds).min(limit)).collect()
}

/// The jobs `found` (id, index of its key, in id order within a key) in round order — round
/// by round, keys in the order read — cut at `limit`.
fn round_order(found: &[(i64, i64)], keys: &[(String, i32)], limit: i64) -> Vec<(i64, usize)> {
    let mut seen = vec![0_i64; keys.len()];
    let mut ranked: Vec<(i64, usize, i64)> = found
        .iter()
        .filter_map(|&(id, key)| {
            let key = usize::try_from(key).ok().filter(|k| *k < keys.len())?;
            let round = seen[key] / i64::from(keys[key].1.max(1));
            seen[key] += 1;
            Some((round, key, id))
        })
        .collect();
    ranked.sort_unstable();
    ranked.into_iter().take(usize::try_from(limit).unwrap_or(0)).map(|(_, key, id)| (id, key)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(weights: &[(&str, i32)]) -> Vec<(String, i32)> {
        weights.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect()
    }

    #[test]
    fn a_claim_holds_as_many_rounds_as_fill_it() {
        assert_eq!(quotas(&keys(&[("a", 1), ("b", 1), ("c", 1)]), 7), [3, 3, 3]);
        assert_eq!(quotas(&keys(&[("a", 3), ("b", 1)]), 8), [6, 2]);
        assert_eq!(quotas(&keys(&[("a", 1)]), 100), [100]);
        assert!(quotas(&[], 10).is_empty());
    }

    #[test]
    fn jobs_come_round_by_round_each_key_its_weight() {
        let ks = keys(&[("a", 2), ("b", 1)]);
        // a's jobs 1..=4, b's 10..=11.
        let found = [(1, 0), (2, 0), (3, 0), (4, 0), (10, 1), (11, 1)];
        let order: Vec<i64> = round_order(&found, &ks, 5).into_iter().map(|(id, _)| id).collect();
        assert_eq!(order, [1, 2, 10, 3, 4]);
    }
}
