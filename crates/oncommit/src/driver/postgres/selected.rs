//! PostgreSQL's statements of bulk actions on a filter's jobs.

use sqlx::postgres::PgConnection;

use super::{PostgresDriver, notify_on};
use crate::driver::contract::{Action, SelectedJobs};
use crate::driver::selection::Filter;
use crate::driver::{CANCEL_CHANNEL, JOBS_CHANNEL};
use crate::error::Result;

/// Retries the history's jobs among ids `$10` that match the filter `$1`–`$9`.
const RETRY_FROM_HISTORY: &str = retry_from_history!(concat!("id = ANY($10) AND ", pg_filter!()), "queue, state");

/// Deletes the history's jobs among ids `$10` that match the filter `$1`–`$9`.
const DELETE_FROM_HISTORY: &str = concat!(
    "WITH gone AS (DELETE FROM oncommit.job_history WHERE id = ANY($10) AND ",
    pg_filter!(),
    " RETURNING tableoid, queue, state), ",
    pg_uncount_gone!(),
    " SELECT queue, state FROM gone"
);

impl SelectedJobs for PostgresDriver {
    async fn job_count_selected(c: &mut PgConnection, f: &Filter) -> Result<i64> {
        Ok(bind_filter!(
            sqlx::query_scalar(concat!("SELECT count(*) FROM oncommit.all_jobs WHERE ", pg_filter!())),
            f,
            &f.states,
            &f.ids
        )
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_select_ids(c: &mut PgConnection, f: &Filter, after: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(bind_filter!(
            sqlx::query_scalar(concat!(
                "SELECT id FROM oncommit.all_jobs WHERE ",
                pg_filter!(),
                " AND id > $10 ORDER BY id LIMIT $11"
            )),
            f,
            &f.states,
            &f.ids
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_act_on(
        c: &mut PgConnection,
        f: &Filter,
        action: Action,
        ids: &[i64],
    ) -> Result<Vec<(String, String)>> {
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
        let mut rows: Vec<(String, String)> =
            bind_filter!(sqlx::query_as(sql), f, &f.states, &f.ids).bind(ids).fetch_all(&mut *c).await?;
        // Finished jobs in the history: brought back to run, or deleted there.
        let history = match action {
            Action::Retry => RETRY_FROM_HISTORY,
            Action::Delete => DELETE_FROM_HISTORY,
            Action::Cancel => return Ok(rows),
        };
        rows.extend(bind_filter!(sqlx::query_as(history), f, &f.states, &f.ids).bind(ids).fetch_all(&mut *c).await?);
        Ok(rows)
    }

    async fn jobs_notify(c: &mut PgConnection, queues: &[String], stop: &[String]) -> Result<()> {
        notify_on(&mut *c, CANCEL_CHANNEL, stop).await?;
        notify_on(&mut *c, JOBS_CHANNEL, queues).await
    }
}
