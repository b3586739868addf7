//! Inserting a job that is unique by content (`EnqueueOptions::unique`): the insert, the
//! look-up of the job holding its identity, and the replacement of a job that has not
//! started, tried again while the holder changes under us. Written once over the driver's
//! statements (`driver::contract::UniqueJobs`).

use super::NewJob;
use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::JobId;
use crate::unique::Identity;

/// How often the insert is tried again when the job holding the identity finished, or
/// started, between our insert and our look-up.
const TRIES: usize = 10;

/// Inserts `job`, unless a job holding its identity exists: then returns that job's id
/// (after updating it, in replace mode, if it has not started). Returns the queue to wake
/// when the job (new or updated) is available now. Callers box this future: it is large,
/// and every enqueue's future would otherwise carry its size.
pub(crate) async fn job_insert_unique(
    mut conn: Conn<'_>,
    job: &NewJob,
    id: &Identity,
) -> Result<(JobId, Option<String>)> {
    for _ in 0..TRIES {
        if let Some((new, queue, state)) = on_driver!(conn.reborrow(), job_insert_unique(job, id))? {
            return Ok((JobId(new), (state == "available").then_some(queue)));
        }
        let Some((holder, state)) = on_driver!(conn.reborrow(), job_unique_holder(&id.hash))? else { continue };
        if !(id.replace && (state == "scheduled" || state == "available")) {
            return Ok((JobId(holder), None));
        }
        if let Some((queue, state)) = on_driver!(conn.reborrow(), job_unique_replace(holder, job))? {
            return Ok((JobId(holder), (state == "available").then_some(queue)));
        }
        // It started meanwhile: try again (a new job, unless its state holds the identity).
    }
    Err(Error::app(format!("the unique job {} kept changing hands", id.hash)))
}
