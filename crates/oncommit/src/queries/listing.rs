//! Listing the jobs a filter selects, one id window at a time (`crate::listing` walks the
//! windows): the driver's statements (`Jobs::job_id_bounds`, `Jobs::job_window`) run for
//! `Db`.

use crate::db::Db;
use crate::driver::contract::JobWindow;
use crate::driver::selection::Filter;
use crate::error::Result;
use crate::job::Job;

/// The lowest and highest job ids, or `None` for an empty table.
pub(crate) async fn job_id_bounds(db: &Db) -> Result<Option<(i64, i64)>> {
    statement!(db, "reading the job id range", job_id_bounds())
}

/// Up to `limit` jobs the filter selects with `lo <= id < hi`, newest or oldest first.
pub(crate) async fn job_window(
    db: &Db,
    f: &Filter,
    lo: i64,
    hi: i64,
    newest_first: bool,
    limit: i64,
) -> Result<Vec<Job>> {
    let window = JobWindow { lo, hi, newest_first, limit };
    let rows = statement!(db, "listing jobs", job_window(f, &window))?;
    Ok(rows.into_iter().map(|r| r.job).collect())
}
