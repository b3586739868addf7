//! PostgreSQL's statements of fair queues: the steps of the claim that `queries::fair`
//! writes over them, and that same claim in one call for a queue that is only fair.

/// The next `$4` fairness keys with available jobs of queue `$1` at priority `$2` after `$3`
/// (from the first when NULL), each with its weight: a loose index scan, each step one probe
/// of `jobs_fair_available` for the next key (keys are never empty, so '' is before every
/// key), and one for the key's oldest job.
pub(crate) const FAIR_KEYS: &str = "WITH RECURSIVE ks(key, n) AS ( \
             (SELECT fair_key, 1 FROM oncommit.jobs \
              WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 AND priority = $2 \
                AND fair_key > coalesce($3, '') ORDER BY fair_key LIMIT 1) \
             UNION ALL \
             SELECT (SELECT j.fair_key FROM oncommit.jobs j \
                     WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = $1 AND j.priority = $2 \
                       AND j.fair_key > ks.key ORDER BY j.fair_key LIMIT 1), ks.n + 1 \
             FROM ks WHERE ks.key IS NOT NULL AND ks.n < $4) \
         SELECT ks.key, coalesce((SELECT j.fair_weight FROM oncommit.jobs j \
                                  WHERE j.state = 'available' AND j.fair_key IS NOT NULL AND j.queue = $1 \
                                    AND j.priority = $2 AND j.fair_key = ks.key ORDER BY j.fair_key, j.id LIMIT 1), 1)::int4 \
         FROM ks WHERE ks.key IS NOT NULL ORDER BY ks.n";

/// The first `$4[i]` available jobs of key `$3[i]` (queue `$1`, priority `$2`), by id within
/// a key, with the key's index: one probe per key.
pub(crate) const FAIR_JOBS: &str = "SELECT j.id, k.pos - 1 FROM unnest($3::text[], $4::int8[]) WITH ORDINALITY AS k(key, quota, pos), \
         LATERAL (SELECT id FROM oncommit.jobs \
                  WHERE state = 'available' AND fair_key IS NOT NULL AND queue = $1 AND priority = $2 \
                    AND fair_key = k.key ORDER BY fair_key, id LIMIT k.quota) j \
         ORDER BY k.pos, j.id";

/// The claim of a queue that is only fair (not paused, no limit), `queries::fair`'s in one
/// call of `oncommit.claim_fair` (migration 024): `$1` queue, `$2` limit, `$3` worker, `$4`
/// lease in seconds. The function waits for the queue's turn (its row `FOR UPDATE`), then
/// claims in one statement, whose snapshot is taken after the wait, and records the key it
/// ended with; it returns the jobs in claim order (round by round, keys in the order served,
/// by id within a key), none when the queue is not only fair. The turn lasts that statement
/// and the commit instead of eight round trips. Its plans are generic, made once per
/// session: a custom plan of the claim took 2 ms to make at every call.
pub(crate) const CLAIM_FAIR: &str = concat!(
    "SELECT ",
    pg_job_columns!(),
    " FROM oncommit.claim_fair($1, $2, $3, $4) WITH ORDINALITY ORDER BY ordinality"
);
