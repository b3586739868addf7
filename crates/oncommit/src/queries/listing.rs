//! Listing the jobs a filter selects, one id window at a time (`crate::listing` walks the
//! windows). A window bounds each statement to a range of the primary key, so a page costs
//! the same on a table of a thousand jobs or of millions, however rare the matches.

use crate::db::Db;
use crate::error::Result;
use crate::job::Job;
use crate::job_row::JobRow;
use crate::queries::selection::Filter;

/// The lowest and highest job ids, or `None` for an empty table: two probes of the primary
/// key's ends.
pub(crate) async fn job_id_bounds(db: &Db) -> Result<Option<(i64, i64)>> {
    let (lo, hi): (Option<i64>, Option<i64>) = on_conn!(
        db,
        "reading the job id range",
        |c| sqlx::query_as(PG_BOUNDS).fetch_one(&mut **c),
        sqlx::query_as(SQLITE_BOUNDS).fetch_one(&mut **c),
    )?;
    Ok(lo.zip(hi))
}

/// The statement of one window: `$1`–`$9` the filter, `$10` / `$11` the id range
/// `[from, to)`, `$12` the limit.
macro_rules! window {
    ($table:literal, $columns:expr, $filter:expr, $order:literal) => {
        concat!(
            "SELECT ",
            $columns,
            " FROM ",
            $table,
            " WHERE ",
            $filter,
            " AND id >= $10 AND id < $11 ORDER BY id ",
            $order,
            " LIMIT $12"
        )
    };
}

pub(super) const PG_BOUNDS: &str = "SELECT (SELECT min(id) FROM oncommit.jobs), (SELECT max(id) FROM oncommit.jobs)";
const SQLITE_BOUNDS: &str = "SELECT (SELECT min(id) FROM oncommit_jobs), (SELECT max(id) FROM oncommit_jobs)";
/// Windows newest first and oldest first, per backend.
pub(super) const PG_WINDOWS: [&str; 2] = [
    window!("oncommit.jobs", pg_job_columns!(), pg_filter!(), "DESC"),
    window!("oncommit.jobs", pg_job_columns!(), pg_filter!(), "ASC"),
];
pub(super) const SQLITE_WINDOWS: [&str; 2] = [
    window!("oncommit_jobs", sqlite_job_columns!(), sqlite_filter!(), "DESC"),
    window!("oncommit_jobs", sqlite_job_columns!(), sqlite_filter!(), "ASC"),
];

/// Up to `limit` jobs the filter selects with `lo <= id < hi`, newest or oldest first.
pub(crate) async fn job_window(
    db: &Db,
    f: &Filter,
    lo: i64,
    hi: i64,
    newest_first: bool,
    limit: i64,
) -> Result<Vec<Job>> {
    let which = usize::from(!newest_first);
    let (states_json, ids_json) = (f.states_json()?, f.ids_json()?);
    let rows: Vec<JobRow> = on_conn!(
        db,
        "listing jobs",
        |c| bind_filter!(sqlx::query_as(PG_WINDOWS[which]), f, &f.states, &f.ids)
            .bind(lo)
            .bind(hi)
            .bind(limit)
            .fetch_all(&mut **c),
        bind_filter!(sqlx::query_as(SQLITE_WINDOWS[which]), f, &states_json, &ids_json)
            .bind(lo)
            .bind(hi)
            .bind(limit)
            .fetch_all(&mut **c),
    )?;
    Ok(rows.into_iter().map(|r| r.job).collect())
}
