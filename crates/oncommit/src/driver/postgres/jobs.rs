//! PostgreSQL's statements on jobs (tables in the `oncommit` schema). Rows are claimed
//! with `FOR UPDATE SKIP LOCKED`, so claimers on many machines never wait for each other.

use sqlx::postgres::PgConnection;

use super::PostgresDriver;
use crate::driver::contract::{
    History as _, Inserted, JobClaim, JobHeartbeat, JobPrune, JobWindow, Jobs, NewJob, Tick, Transition,
};
use crate::driver::selection::Filter;
use crate::driver::{CANCEL_CHANNEL, JOBS_CHANNEL, secs};
use crate::error::Result;
use crate::job::JobId;
use crate::job_row::JobRow;

/// Claims: `$1` queue, `$2` limit, `$3` worker, `$4` lease in seconds, the attempt starting
/// at `$now`, with `$guard` added to the locking subquery's conditions. ANY(ARRAY(…)) makes
/// the locking subquery run exactly once; it reads the `jobs_claim` index in claim order.
macro_rules! pg_claim {
    ($now:literal, $guard:expr) => {
        concat!(
            "UPDATE oncommit.jobs SET state = 'running', attempt = attempt + 1, attempted_at = ",
            $now,
            ", lease_owner = $3, lease_expires_at = ",
            $now,
            " + make_interval(secs => $4) \
                 WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs \
                     WHERE state = 'available' AND queue = $1 ",
            $guard,
            " ORDER BY priority, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)) \
                 RETURNING ",
            pg_job_columns!()
        )
    };
}

/// The fast claim of an uncontrolled queue. Its guard, a one-time primary-key probe,
/// claims nothing once the queue is paused or limited (see `queue_control`). The attempt
/// starts when the statement does, not when its transaction began: behind a transaction
/// pooler the transaction begins a round trip earlier (see `driver::postgres`), and a
/// claim that waited for a finishing job's lock must not seem to start before it ended.
pub(crate) const CLAIM: &str =
    pg_claim!("statement_timestamp()", concat!("AND NOT EXISTS (", controlled_queue_row!("oncommit.queues"), ")"));

/// Whether `$1` is a controlled queue (paused or limited).
pub(crate) const IS_CONTROLLED: &str = concat!("SELECT EXISTS (", controlled_queue_row!("oncommit.queues"), ")");

/// Records outcomes of running jobs: `$1` ids, `$2` attempts (the fencing tokens), `$3` new
/// states, `$4` delays in ms, `$5` error entries, `$6` attempts to add, `$7` results.
/// A job that finishes moves to `oncommit.job_history` in this statement (deleted here,
/// inserted there: no new version of it in the jobs table's indexes); one that will run
/// again, or must keep its unique key, is updated in place. The two branches test the same
/// columns, which no other writer changes, so each job takes exactly one; the update does
/// not look up again the jobs the move took (one primary-key probe per job, not two).
///
/// One primary-key probe per change, whatever the statistics say: `(state = 'running')
/// IS TRUE` (the same test, state being NOT NULL) hides the `jobs_running` partial
/// index, which the planner otherwise reads whole into a hash join once it expects many
/// rows, dead entries included: 15,000 running rows read to update 1,000.
pub(crate) const COMPLETE: &str = concat!(
    "WITH u AS (SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::int8[], $5::text[], $6::int4[], \
                                    $7::text[]) AS u(uid, uattempt, new_state, delay_ms, error, extra, uresult)), \
     moved AS ( \
       DELETE FROM oncommit.jobs j USING u \
       WHERE j.id = u.uid AND j.attempt = u.uattempt AND (j.state = 'running') IS TRUE AND ",
    pg_moves_to_history!("j", "u.new_state"),
    " RETURNING j.*, u.new_state, u.error, u.extra, u.uresult), \
     archived AS ( \
       INSERT INTO oncommit.job_history (",
    pg_row_columns!(),
    ") SELECT id, queue, task, args, new_state, priority, attempt, max_attempts + extra, run_at, created_at, \
              attempted_at, statement_timestamp(), CASE WHEN new_state = 'completed' THEN lease_owner END, NULL, false, \
              CASE WHEN error IS NULL THEN errors ELSE errors || jsonb_build_array(error::jsonb) END, unique_key, \
              trace_context, unique_hash, unique_states, CASE WHEN uresult IS NULL THEN result ELSE uresult::jsonb END, \
              workflow_id, on_parent_failure, has_dependants, concurrency_key, key_limit, fair_key, fair_weight \
         FROM moved), \
     updated AS ( \
       UPDATE oncommit.jobs j SET \
         state = u.new_state, \
         run_at = CASE WHEN u.delay_ms IS NULL THEN j.run_at ELSE now() + u.delay_ms * interval '1 millisecond' END, \
         errors = CASE WHEN u.error IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(u.error::jsonb) END, \
         max_attempts = j.max_attempts + u.extra, \
         finished_at = CASE WHEN u.new_state IN ('completed', 'failed', 'cancelled') THEN statement_timestamp() END, \
         result = CASE WHEN u.uresult IS NULL THEN j.result ELSE u.uresult::jsonb END, \
         lease_owner = CASE WHEN u.new_state = 'completed' THEN j.lease_owner END, \
         lease_expires_at = NULL, cancel_requested = false \
       FROM (SELECT * FROM u WHERE u.uid NOT IN (SELECT id FROM moved)) AS u \
       WHERE j.id = u.uid AND j.attempt = u.uattempt AND (j.state = 'running') IS TRUE AND NOT ",
    pg_moves_to_history!("j", "u.new_state"),
    " RETURNING j.id, (j.has_dependants OR j.concurrency_key IS NOT NULL)) \
     SELECT id, (has_dependants OR concurrency_key IS NOT NULL) FROM moved \
     UNION ALL SELECT * FROM updated"
);

/// Moves up to `$1` finished jobs from the jobs table to the history, oldest first: those a
/// statement other than the completion finished (a rescue, a cancel, a parent's failure),
/// or an older binary. Jobs holding a unique key stay. One that lands in a partition
/// already counted (its finishing transaction committed long after) is added to its count.
pub(super) const ARCHIVE: &str = concat!(
    "WITH moved AS (DELETE FROM oncommit.jobs WHERE id = ANY(ARRAY( \
         SELECT id FROM oncommit.jobs WHERE state IN ('completed', 'failed', 'cancelled') AND ",
    pg_moves_to_history!("oncommit.jobs", "state"),
    " ORDER BY finished_at LIMIT $1 FOR UPDATE SKIP LOCKED)) RETURNING ",
    pg_row_columns!(),
    "), archived AS (INSERT INTO oncommit.job_history (",
    pg_row_columns!(),
    ") SELECT ",
    pg_row_columns!(),
    " FROM moved RETURNING tableoid, queue, state), \
     counted AS (INSERT INTO oncommit.history_counts (partition, queue, state, jobs) \
       SELECT a.tableoid, a.queue, a.state, count(*) FROM archived a \
       WHERE EXISTS (SELECT 1 FROM oncommit.history_counts n WHERE n.partition = a.tableoid AND n.queue = '') \
       GROUP BY 1, 2, 3 \
       ON CONFLICT (partition, queue, state) DO UPDATE SET jobs = oncommit.history_counts.jobs + excluded.jobs) \
     SELECT count(*) FROM moved"
);

/// Counts per queue and state of the waiting and running jobs: read through their partial
/// indexes, never the finished rows that make up most of a long-lived table.
/// One branch per partial index, each `WHERE` matching its index's predicate exactly (a
/// single `state IN (…)` over all four matches none, and is planned as a scan of the table).
pub(crate) const COUNT_UNFINISHED: &str = "\
     SELECT queue, 'available', count(*) FROM oncommit.jobs WHERE state = 'available' GROUP BY queue \
     UNION ALL SELECT queue, state, count(*) FROM oncommit.jobs \
         WHERE state IN ('scheduled', 'retryable') GROUP BY queue, state \
     UNION ALL SELECT queue, 'running', count(*) FROM oncommit.jobs WHERE state = 'running' GROUP BY queue \
     UNION ALL SELECT queue, 'pending', count(*) FROM oncommit.jobs WHERE state = 'pending' GROUP BY queue";

/// The lowest and highest job ids (see `Jobs::job_id_bounds`).
pub(crate) const BOUNDS: &str =
    "SELECT (SELECT min(id) FROM oncommit.all_jobs), (SELECT max(id) FROM oncommit.all_jobs)";

/// A window of the listing, newest first and oldest first (see `Jobs::job_window`).
pub(crate) const WINDOWS: [&str; 2] = [
    window!("oncommit.all_jobs", pg_job_columns!(), pg_filter!(), "DESC"),
    window!("oncommit.all_jobs", pg_job_columns!(), pg_filter!(), "ASC"),
];

/// The age of each queue's oldest available job in ms (see `Jobs::queue_lag`).
pub(crate) const QUEUE_LAG: &str =
    queue_lag!("oncommit.jobs", "greatest(0, (extract(epoch FROM now() - min(run_at)) * 1000))::int8");

/// Brings the finished jobs `$which` picks back from the history to run again now, as
/// `job_retry` does to one in the jobs table, `RETURNING $returning`.
macro_rules! retry_from_history {
    ($which:expr, $returning:literal) => {
        concat!(
            "WITH gone AS (DELETE FROM oncommit.job_history WHERE ",
            $which,
            " RETURNING tableoid, ",
            pg_row_columns!(),
            "), ",
            pg_uncount_gone!(),
            " INSERT INTO oncommit.jobs (",
            pg_row_columns!(),
            ") SELECT id, queue, task, args, 'available', priority, attempt, greatest(max_attempts, attempt + 1), now(), \
                      created_at, attempted_at, NULL, lease_owner, NULL, false, errors, unique_key, trace_context, \
                      unique_hash, unique_states, result, workflow_id, on_parent_failure, has_dependants, \
                      concurrency_key, key_limit, fair_key, fair_weight FROM gone RETURNING ",
            $returning
        )
    };
}

/// Deletes finished job `$1` from the history; returns how many went (0 or 1).
const DELETE_FROM_HISTORY: &str = concat!(
    "WITH gone AS (DELETE FROM oncommit.job_history WHERE id = $1 RETURNING tableoid, queue, state), ",
    pg_uncount_gone!(),
    " SELECT count(*) FROM gone"
);

/// `retry_from_history!` of one job.
const RETRY_FROM_HISTORY: &str = retry_from_history!("id = $1", "queue");

/// One job's insert, without and with its fairness columns (see `job_insert_plain`).
const INSERT_ONE: [&str; 2] = [
    "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context) \
     VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
             CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, $7) \
     RETURNING id, queue, state",
    "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                                fair_key, fair_weight) \
     VALUES ($1, $2::jsonb, $3, $4, coalesce(to_timestamp($5 / 1000.0), now()), $6, \
             CASE WHEN to_timestamp($5 / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, $7, $8, $9) \
     RETURNING id, queue, state",
];

/// Many jobs' insert, in input order, without and with the fairness columns.
const INSERT_MANY: [&str; 2] = [
    "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context) \
     SELECT t, a::jsonb, q, p, coalesce(to_timestamp(r / 1000.0), now()), m, \
            CASE WHEN to_timestamp(r / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, x \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::int8[], $6::int4[], $7::text[]) \
          WITH ORDINALITY AS u(t, a, q, p, r, m, x, ord) \
     ORDER BY ord \
     RETURNING id, queue, state",
    "INSERT INTO oncommit.jobs (task, args, queue, priority, run_at, max_attempts, state, trace_context, \
                                fair_key, fair_weight) \
     SELECT t, a::jsonb, q, p, coalesce(to_timestamp(r / 1000.0), now()), m, \
            CASE WHEN to_timestamp(r / 1000.0) > now() THEN 'scheduled' ELSE 'available' END, x, fk, fw \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::int8[], $6::int4[], $7::text[], \
                 $8::text[], $9::int2[]) \
          WITH ORDINALITY AS u(t, a, q, p, r, m, x, fk, fw, ord) \
     ORDER BY ord \
     RETURNING id, queue, state",
];

/// The keyed insert through `oncommit.enqueue`, without and with the fairness arguments.
const INSERT_KEYED: [&str; 2] = [
    "WITH e AS (SELECT oncommit.enqueue($1, $2::jsonb, queue => $3, priority => $4, \
         run_at => to_timestamp($5 / 1000.0), max_attempts => $6, unique_key => $7, notify => false) AS id) \
     SELECT e.id, coalesce($3, ''), coalesce(to_timestamp($5 / 1000.0) <= now(), true) FROM e",
    "WITH e AS (SELECT oncommit.enqueue($1, $2::jsonb, queue => $3, priority => $4, \
         run_at => to_timestamp($5 / 1000.0), max_attempts => $6, unique_key => $7, notify => false, \
         fair_key => $8, fair_weight => $9) AS id) \
     SELECT e.id, coalesce($3, ''), coalesce(to_timestamp($5 / 1000.0) <= now(), true) FROM e",
];

impl Jobs for PostgresDriver {
    async fn job_insert_plain(c: &mut PgConnection, plain: &[&NewJob]) -> Result<Inserted> {
        let mut inserted = Inserted::default();
        if let [job] = plain {
            // One job, as a web request enqueues: a plain VALUES insert (the unnest below costs a
            // tenth of the rate of one-job transactions).
            // The fairness columns only for a job that has a key: a keyless enqueue works on
            // the schema before them (a deploy ahead of its migration).
            let fair = job.fair_key.is_some();
            let query = bind_new_job!(sqlx::query_as(INSERT_ONE[usize::from(fair)]), job).bind(&job.trace_context);
            let query = if fair { query.bind(&job.fair_key).bind(job.fair_weight) } else { query };
            let (id, queue, state): (i64, String, String) = query.fetch_one(&mut *c).await?;
            inserted.ids.push(JobId(id));
            if state == "available" {
                inserted.wake.push(queue);
            }
        } else if !plain.is_empty() {
            let col = |f: fn(&NewJob) -> String| plain.iter().map(|j| f(j)).collect::<Vec<_>>();
            let queues: Vec<Option<String>> = plain.iter().map(|j| j.queue.clone()).collect();
            let fair = plain.iter().any(|j| j.fair_key.is_some());
            let query = sqlx::query_as(INSERT_MANY[usize::from(fair)])
                .bind(col(|j| j.task.clone()))
                .bind(col(|j| j.args.clone()))
                .bind(queues)
                .bind(plain.iter().map(|j| j.priority).collect::<Vec<_>>())
                .bind(plain.iter().map(|j| j.run_at_ms).collect::<Vec<_>>())
                .bind(plain.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
                .bind(plain.iter().map(|j| j.trace_context.clone()).collect::<Vec<_>>());
            let query = match fair {
                true => query
                    .bind(plain.iter().map(|j| j.fair_key.clone()).collect::<Vec<_>>())
                    .bind(plain.iter().map(|j| j.fair_weight).collect::<Vec<_>>()),
                false => query,
            };
            let rows: Vec<(i64, String, String)> = query.fetch_all(&mut *c).await?;
            inserted.wake.extend(rows.iter().filter(|(_, _, state)| state == "available").map(|(_, q, _)| q.clone()));
            let mut plain_ids: Vec<i64> = rows.into_iter().map(|(id, _, _)| id).collect();
            // Sequence values are drawn in insertion order, which is the input order.
            plain_ids.sort_unstable();
            inserted.ids.extend(plain_ids.into_iter().map(JobId));
        }
        Ok(inserted)
    }

    async fn job_insert_keyed(c: &mut PgConnection, job: &NewJob) -> Result<(JobId, Option<String>)> {
        let fair = job.fair_key.is_some();
        let query = sqlx::query_as(INSERT_KEYED[usize::from(fair)])
            .bind(&job.task)
            .bind(&job.args)
            .bind(&job.queue)
            .bind(job.priority.map(i32::from))
            .bind(job.run_at_ms)
            .bind(job.max_attempts)
            .bind(&job.unique_key);
        let query = if fair { query.bind(&job.fair_key).bind(job.fair_weight.map(i32::from)) } else { query };
        let (id, queue, available): (i64, String, bool) = query.fetch_one(&mut *c).await?;
        if let Some(context) = &job.trace_context {
            // The function has no parameter for it (it serves SQL callers, who have no span); a
            // job that already existed under the unique key keeps its own.
            sqlx::query("UPDATE oncommit.jobs SET trace_context = $2 WHERE id = $1 AND trace_context IS NULL")
                .bind(id)
                .bind(context)
                .execute(&mut *c)
                .await?;
        }
        if !available {
            return Ok((JobId(id), None));
        }
        // A queue left to the task's declaration: the row says which (the statement above could
        // not see the row its function inserted).
        let queue = match queue.is_empty() {
            false => queue,
            true => {
                sqlx::query_scalar("SELECT queue FROM oncommit.jobs WHERE id = $1").bind(id).fetch_one(&mut *c).await?
            }
        };
        Ok((JobId(id), Some(queue)))
    }

    async fn job_claim(c: &mut PgConnection, claim: &JobClaim<'_>) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(CLAIM)
            .bind(claim.queue)
            .bind(claim.limit)
            .bind(claim.worker)
            .bind(secs(claim.lease))
            .fetch_all(&mut *c)
            .await?)
    }

    async fn queue_is_controlled(c: &mut PgConnection, queue: &str) -> Result<bool> {
        Ok(sqlx::query_scalar(IS_CONTROLLED).bind(queue).fetch_one(&mut *c).await?)
    }

    async fn job_queue_and_state(c: &mut PgConnection, id: i64) -> Result<(String, String)> {
        Ok(sqlx::query_as("SELECT queue, state FROM oncommit.jobs WHERE id = $1").bind(id).fetch_one(&mut *c).await?)
    }

    async fn job_set_state_if_running_many(c: &mut PgConnection, changes: &[Transition]) -> Result<Vec<(i64, bool)>> {
        Ok(sqlx::query_as(COMPLETE)
            .bind(changes.iter().map(|t| t.id).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.attempt).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.state.as_str()).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.delay_ms).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.error.clone()).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.extra).collect::<Vec<_>>())
            .bind(changes.iter().map(|t| t.result.clone()).collect::<Vec<_>>())
            .fetch_all(c)
            .await?)
    }

    async fn job_heartbeat_many(c: &mut PgConnection, renew: &JobHeartbeat<'_>) -> Result<Vec<(i64, i32, bool, bool)>> {
        // Primary-key probes for the jobs this worker holds in memory, and no others: a job
        // whose claim reply was lost is not renewed, so its lease runs out and it is rescued.
        // Rows locked right now (by this worker's own completion in flight, under load for
        // seconds) are skipped rather than waited for, and reported as still ours but not
        // renewed: the renewal never queues behind the writes it exists to protect.
        Ok(sqlx::query_as(
            "WITH renewed AS ( \
               UPDATE oncommit.jobs SET lease_expires_at = now() + make_interval(secs => $2) \
               WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs \
                   WHERE id = ANY($3::int8[]) AND state = 'running' AND lease_owner = $1 \
                   FOR UPDATE SKIP LOCKED)) \
               RETURNING id, attempt, cancel_requested) \
             SELECT id, attempt, cancel_requested, true FROM renewed \
             UNION ALL \
             SELECT id, attempt, cancel_requested, false FROM oncommit.jobs \
             WHERE id = ANY($3::int8[]) AND state = 'running' AND lease_owner = $1 \
               AND id NOT IN (SELECT id FROM renewed)",
        )
        .bind(renew.worker)
        .bind(secs(renew.lease))
        .bind(renew.ids)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_rescue_many(c: &mut PgConnection) -> Result<Vec<String>> {
        let queues: Vec<String> = sqlx::query_scalar(
            "WITH rescued AS ( \
               UPDATE oncommit.jobs SET \
                 state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'available' END, \
                 run_at = now(), \
                 finished_at = CASE WHEN attempt >= max_attempts THEN now() END, \
                 errors = errors || jsonb_build_array(jsonb_build_object( \
                     'attempt', attempt, 'at', (extract(epoch FROM now()) * 1000)::int8, \
                     'error', 'lease expired: worker ' || coalesce(lease_owner, '?') || ' stopped renewing it', \
                     'worker', lease_owner, 'started', (extract(epoch FROM attempted_at) * 1000)::int8)), \
                 lease_owner = NULL, lease_expires_at = NULL \
               WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs \
                   WHERE state = 'running' AND lease_expires_at < now() \
                   ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)) \
               RETURNING queue, state) \
             SELECT DISTINCT queue FROM rescued WHERE state = 'available'",
        )
        .fetch_all(&mut *c)
        .await?;
        notify_on(&mut *c, JOBS_CHANNEL, &queues).await?;
        Ok(queues)
    }

    async fn job_tick(c: &mut PgConnection, queues: &[String]) -> Result<Tick> {
        // One statement, so an idle worker costs one transaction per poll: promote due jobs
        // (and NOTIFY their queues), name the served queues with work, say when the next job
        // falls due and whether a lease has expired. Every part is an index probe. The CTE's
        // snapshot predates the promotion, so promoted rows are counted by `due`, not as
        // available, and the next due time skips them (`run_at > now()`).
        let (promoted, _, wake, next_due_ms, expired): (i64, i64, Vec<String>, Option<i64>, bool) = sqlx::query_as(
            "WITH due AS ( \
               UPDATE oncommit.jobs SET state = 'available' \
               WHERE id = ANY(ARRAY(SELECT id FROM oncommit.jobs \
                   WHERE state IN ('scheduled', 'retryable') AND run_at <= now() \
                   ORDER BY run_at LIMIT 1000 FOR UPDATE SKIP LOCKED)) \
               RETURNING queue), \
             promoted AS (SELECT DISTINCT queue FROM due) \
             SELECT (SELECT count(*) FROM due), \
                    (SELECT count(pg_notify('oncommit_jobs', queue)) FROM promoted), \
                    ARRAY(SELECT queue FROM promoted \
                          UNION SELECT q FROM unnest($1::text[]) AS q WHERE EXISTS ( \
                              SELECT 1 FROM oncommit.jobs WHERE state = 'available' AND queue = q)), \
                    (SELECT least(extract(epoch FROM min(run_at)) - extract(epoch FROM now()), 86400) * 1000 \
                     FROM oncommit.jobs WHERE state IN ('scheduled', 'retryable') \
                       AND run_at > now() AND isfinite(run_at))::int8, \
                    EXISTS (SELECT 1 FROM oncommit.jobs WHERE state = 'running' AND lease_expires_at < now())",
        )
        .bind(queues)
        .fetch_one(&mut *c)
        .await?;
        Ok(Tick { promoted: promoted as usize, wake, next_due_ms, expired_leases: expired })
    }

    async fn job_cancel(c: &mut PgConnection, id: i64) -> Result<Option<String>> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE oncommit.jobs SET \
                 cancel_requested = (state = 'running'), \
                 finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END, \
                 state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END \
             WHERE id = $1 AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable') \
             RETURNING state",
        )
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
        if state.as_deref() == Some("running") {
            notify_on(&mut *c, CANCEL_CHANNEL, &[id.to_string()]).await?;
        }
        Ok(state)
    }

    async fn job_retry(c: &mut PgConnection, id: i64) -> Result<bool> {
        let queue: Option<String> = sqlx::query_scalar(
            "UPDATE oncommit.jobs SET state = 'available', run_at = now(), finished_at = NULL, \
                 cancel_requested = false, max_attempts = greatest(max_attempts, attempt + 1) \
             WHERE id = $1 AND state <> 'running' RETURNING queue",
        )
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
        let queue = match queue {
            Some(queue) => Some(queue),
            None => sqlx::query_scalar(RETRY_FROM_HISTORY).bind(id).fetch_optional(&mut *c).await?,
        };
        if let Some(queue) = &queue {
            notify_on(&mut *c, JOBS_CHANNEL, std::slice::from_ref(queue)).await?;
        }
        Ok(queue.is_some())
    }

    async fn job_delete(c: &mut PgConnection, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM oncommit.jobs WHERE id = $1 AND state <> 'running'")
            .bind(id)
            .execute(&mut *c)
            .await?;
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        let gone: i64 = sqlx::query_scalar(DELETE_FROM_HISTORY).bind(id).fetch_one(&mut *c).await?;
        Ok(gone > 0)
    }

    async fn job_get(c: &mut PgConnection, id: i64) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as(concat!("SELECT ", pg_job_columns!(), " FROM oncommit.all_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?)
    }

    async fn job_count_split(c: &mut PgConnection, finished: bool) -> Result<Vec<(String, String, i64)>> {
        // The finished jobs: mostly in the history, whose full partitions are counted once
        // (`history_counts`).
        match finished {
            true => PostgresDriver::history_count(c).await,
            false => Ok(sqlx::query_as(COUNT_UNFINISHED).fetch_all(&mut *c).await?),
        }
    }

    async fn job_count_by_queue_and_state(c: &mut PgConnection) -> Result<Vec<(String, String, i64)>> {
        let mut counts: Vec<(String, String, i64)> = sqlx::query_as(COUNT_UNFINISHED).fetch_all(&mut *c).await?;
        counts.extend(PostgresDriver::history_count(c).await?);
        counts.sort();
        Ok(counts)
    }

    async fn job_prune(c: &mut PgConnection, prune: &JobPrune) -> Result<u64> {
        // A pruned dependant's edges go with it (a pruned parent's stay: they are its
        // dependants', and a missing parent counts as completed).
        let pruned: i64 = sqlx::query_scalar(
            "WITH gone AS (DELETE FROM oncommit.jobs WHERE id = ANY(ARRAY( \
                 (SELECT id FROM oncommit.jobs WHERE state = 'completed' \
                    AND finished_at < now() - make_interval(secs => $1) LIMIT $3) \
                 UNION ALL \
                 (SELECT id FROM oncommit.jobs WHERE state IN ('failed', 'cancelled') \
                    AND finished_at < now() - make_interval(secs => $2) LIMIT $3))) RETURNING id), \
             edges AS (DELETE FROM oncommit.job_dependencies WHERE job_id = ANY(ARRAY(SELECT id FROM gone))) \
             SELECT count(*) FROM gone",
        )
        .bind(secs(prune.completed))
        .bind(secs(prune.discarded))
        .bind(prune.limit)
        .fetch_one(&mut *c)
        .await?;
        Ok(u64::try_from(pruned).unwrap_or(0))
    }

    async fn job_id_bounds(c: &mut PgConnection) -> Result<Option<(i64, i64)>> {
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(BOUNDS).fetch_one(&mut *c).await?;
        Ok(lo.zip(hi))
    }

    async fn job_window(c: &mut PgConnection, f: &Filter, window: &JobWindow) -> Result<Vec<JobRow>> {
        let statement = WINDOWS[usize::from(!window.newest_first)];
        Ok(bind_filter!(sqlx::query_as(statement), f, &f.states, &f.ids)
            .bind(window.lo)
            .bind(window.hi)
            .bind(window.limit)
            .fetch_all(&mut *c)
            .await?)
    }

    async fn queue_lag(c: &mut PgConnection) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(QUEUE_LAG).fetch_all(&mut *c).await?)
    }

    async fn job_throughput(c: &mut PgConnection, minutes: i64) -> Result<Vec<(i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT (extract(epoch FROM finished_at) / 60)::int8 AS minute, count(*) FROM oncommit.all_jobs \
             WHERE state = 'completed' AND finished_at > now() - make_interval(mins => $1::int4) \
             GROUP BY 1 ORDER BY 1",
        )
        .bind(minutes)
        .fetch_all(&mut *c)
        .await?)
    }
}

/// NOTIFYs `channel` once per payload, in the caller's transaction (delivered at its
/// commit) or at once in autocommit.
pub(crate) async fn notify_on(c: &mut PgConnection, channel: &str, payloads: &[String]) -> Result<()> {
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT count(pg_notify($1, q)) FROM unnest($2::text[]) AS q")
        .bind(channel)
        .bind(payloads)
        .execute(c)
        .await?;
    Ok(())
}
