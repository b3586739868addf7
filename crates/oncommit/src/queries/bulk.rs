//! Acting on every job a filter selects (retry, cancel, delete), in batches.
//!
//! Each batch is two statements: the next ids the filter selects, in id order after the
//! last batch's, then the action on those ids, with the filter checked again on each row
//! as it is changed (a job that moved on meanwhile, say claimed by a worker, is left
//! alone). Batches keep each statement short however many jobs match, and going by id
//! ends the walk even when the action leaves a row matching (retrying `available` jobs).

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use crate::db::Db;
use crate::driver::selection::Filter;
use crate::error::Result;

/// Jobs acted on per statement.
const BATCH: i64 = 5_000;

/// What a bulk action does to each selected job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Available now, with one more attempt if none is left (not a running job).
    Retry,
    /// Cancelled if waiting; asked to stop if running.
    Cancel,
    /// Deleted (not a running job).
    Delete,
}

/// What a bulk action did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done {
    /// Jobs retried, cancelled or deleted.
    pub(crate) changed: u64,
    /// Running jobs whose workers were asked to stop them (cancel only).
    pub(crate) requested: u64,
}

/// How many jobs the filter selects now.
pub(crate) async fn job_count_selected(db: &Db, f: &Filter) -> Result<i64> {
    let (states_json, ids_json) = (f.states_json()?, f.ids_json()?);
    on_conn!(
        db,
        "counting the selected jobs",
        |c| bind_filter!(
            sqlx::query_scalar(concat!("SELECT count(*) FROM oncommit.jobs WHERE ", pg_filter!())),
            f,
            &f.states,
            &f.ids
        )
        .fetch_one(&mut **c),
        bind_filter!(
            sqlx::query_scalar(concat!("SELECT count(*) FROM oncommit_jobs WHERE ", sqlite_filter!())),
            f,
            &states_json,
            &ids_json
        )
        .fetch_one(&mut **c),
    )
}

/// Applies `action` to every job the filter selects, batch by batch; returns the queues
/// that got available jobs (to wake) and what was done.
pub(crate) async fn job_act_on_selected(db: &Db, f: &Filter, action: Action) -> Result<(Done, Vec<String>)> {
    let mut done = Done::default();
    let mut wake = Vec::new();
    let mut after = 0_i64;
    loop {
        let ids = next_batch(db, f, after).await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let _turn = db.writing().await?;
        let (batch, queues) = on_conn!(
            db,
            "acting on the selected jobs",
            |c| act_postgres(c, f, action, &ids),
            act_sqlite(c, f, action, &ids)
        )?;
        done.changed += batch.changed;
        done.requested += batch.requested;
        wake.extend(queues);
    }
    wake.sort();
    wake.dedup();
    Ok((done, wake))
}

/// The next ids the filter selects after `after`, in id order.
async fn next_batch(db: &Db, f: &Filter, after: i64) -> Result<Vec<i64>> {
    let (states_json, ids_json) = (f.states_json()?, f.ids_json()?);
    on_conn!(
        db,
        "selecting jobs",
        |c| bind_filter!(
            sqlx::query_scalar(concat!(
                "SELECT id FROM oncommit.jobs WHERE ",
                pg_filter!(),
                " AND id > $10 ORDER BY id LIMIT $11"
            )),
            f,
            &f.states,
            &f.ids
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut **c),
        bind_filter!(
            sqlx::query_scalar(concat!(
                "SELECT id FROM oncommit_jobs WHERE ",
                sqlite_filter!(),
                " AND id > $10 ORDER BY id LIMIT $11"
            )),
            f,
            &states_json,
            &ids_json
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut **c),
    )
}

async fn act_postgres(c: &mut PgConnection, f: &Filter, action: Action, ids: &[i64]) -> Result<(Done, Vec<String>)> {
    let sql = match action {
        Action::Retry => concat!(
            "UPDATE oncommit.jobs SET state = 'available', run_at = now(), finished_at = NULL, \
                 cancel_requested = false, max_attempts = greatest(max_attempts, attempt + 1) \
             WHERE id = ANY($10) AND state <> 'running' AND ",
            pg_filter!(),
            " RETURNING queue, state"
        ),
        Action::Cancel => concat!(
            "UPDATE oncommit.jobs SET \
                 cancel_requested = (state = 'running'), \
                 finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END, \
                 state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END \
             WHERE id = ANY($10) AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable') AND ",
            pg_filter!(),
            " RETURNING id::text, state"
        ),
        Action::Delete => concat!(
            "DELETE FROM oncommit.jobs WHERE id = ANY($10) AND state <> 'running' AND ",
            pg_filter!(),
            " RETURNING queue, state"
        ),
    };
    let rows: Vec<(String, String)> =
        bind_filter!(sqlx::query_as(sql), f, &f.states, &f.ids).bind(ids).fetch_all(&mut *c).await?;
    let (done, wake, stop) = tally(action, rows);
    crate::driver::postgres::notify_on(&mut *c, super::CANCEL_CHANNEL, &stop).await?;
    crate::driver::postgres::notify_on(&mut *c, super::JOBS_CHANNEL, &wake).await?;
    Ok((done, wake))
}

async fn act_sqlite(c: &mut SqliteConnection, f: &Filter, action: Action, ids: &[i64]) -> Result<(Done, Vec<String>)> {
    let sql = match action {
        Action::Retry => concat!(
            "UPDATE oncommit_jobs SET state = 'available', run_at = ",
            sqlite_now_ms!(),
            ", finished_at = NULL, cancel_requested = 0, max_attempts = max(max_attempts, attempt + 1) \
             WHERE id IN (SELECT value FROM json_each($10)) AND state <> 'running' AND ",
            sqlite_filter!(),
            " RETURNING queue, state"
        ),
        Action::Cancel => concat!(
            "UPDATE oncommit_jobs SET \
                 cancel_requested = (state = 'running'), \
                 finished_at = CASE WHEN state = 'running' THEN finished_at ELSE ",
            sqlite_now_ms!(),
            " END, \
                 state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END \
             WHERE id IN (SELECT value FROM json_each($10)) \
               AND state IN ('pending', 'scheduled', 'available', 'running', 'retryable') AND ",
            sqlite_filter!(),
            " RETURNING CAST(id AS TEXT), state"
        ),
        Action::Delete => concat!(
            "DELETE FROM oncommit_jobs WHERE id IN (SELECT value FROM json_each($10)) AND state <> 'running' AND ",
            sqlite_filter!(),
            " RETURNING queue, state"
        ),
    };
    let (states_json, selected_json) = (f.states_json()?, f.ids_json()?);
    let ids_json = serde_json::to_string(ids).map_err(crate::Error::app)?;
    let rows: Vec<(String, String)> =
        bind_filter!(sqlx::query_as(sql), f, &states_json, &selected_json).bind(ids_json).fetch_all(&mut *c).await?;
    let (done, wake, _stop) = tally(action, rows);
    Ok((done, wake))
}

/// Counts what a batch did from its `(queue or id, state)` rows; returns it with the queues
/// to wake and the running jobs to stop.
fn tally(action: Action, rows: Vec<(String, String)>) -> (Done, Vec<String>, Vec<String>) {
    let mut done = Done::default();
    let (mut wake, mut stop) = (Vec::new(), Vec::new());
    for (name, state) in rows {
        match (action, state.as_str()) {
            (Action::Cancel, "running") => {
                done.requested += 1;
                stop.push(name);
            }
            (Action::Retry, _) => {
                done.changed += 1;
                wake.push(name);
            }
            _ => done.changed += 1,
        }
    }
    wake.sort();
    wake.dedup();
    (done, wake, stop)
}
