//! Acting on every job a filter selects (retry, cancel, delete), in batches.
//!
//! Each batch is two statements: the next ids the filter selects, in id order after the
//! last batch's, then the action on those ids, with the filter checked again on each row
//! as it is changed (a job that moved on meanwhile, say claimed by a worker, is left
//! alone). Batches keep each statement short however many jobs match, and going by id
//! ends the walk even when the action leaves a row matching (retrying `available` jobs).

use crate::conn::Conn;
use crate::db::Db;
use crate::driver::contract::Action;
use crate::driver::selection::Filter;
use crate::error::Result;

/// Jobs acted on per statement.
const BATCH: i64 = 5_000;

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
    statement!(db, "counting the selected jobs", job_count_selected(f))
}

/// Applies `action` to every job the filter selects, batch by batch; returns the queues
/// that got available jobs (to wake) and what was done.
pub(crate) async fn job_act_on_selected(db: &Db, f: &Filter, action: Action) -> Result<(Done, Vec<String>)> {
    let mut done = Done::default();
    let mut wake = Vec::new();
    let mut after = 0_i64;
    loop {
        let ids = statement!(db, "selecting jobs", job_select_ids(f, after, BATCH))?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let _turn = db.writing().await?;
        let (batch, queues) = on_conn!(db, "acting on the selected jobs", |conn| act(conn, f, action, &ids))?;
        done.changed += batch.changed;
        done.requested += batch.requested;
        wake.extend(queues);
    }
    wake.sort();
    wake.dedup();
    Ok((done, wake))
}

/// One batch: the action, then the wake-ups and stop requests it calls for.
async fn act(mut conn: Conn<'_>, f: &Filter, action: Action, ids: &[i64]) -> Result<(Done, Vec<String>)> {
    let rows = on_driver!(conn.reborrow(), job_act_on(f, action, ids))?;
    let (done, wake, stop) = tally(action, rows);
    on_driver!(conn, jobs_notify(&wake, &stop))?;
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
