//! SQLite's statements of bulk actions on a filter's jobs.

use sqlx::sqlite::SqliteConnection;

use super::SqliteDriver;
use crate::driver::contract::{Action, SelectedJobs};
use crate::driver::selection::Filter;
use crate::error::{Error, Result};

impl SelectedJobs for SqliteDriver {
    async fn job_count_selected(c: &mut SqliteConnection, f: &Filter) -> Result<i64> {
        let (states, ids) = (f.states_json()?, f.ids_json()?);
        Ok(bind_filter!(
            sqlx::query_scalar(concat!("SELECT count(*) FROM oncommit_jobs WHERE ", sqlite_filter!())),
            f,
            &states,
            &ids
        )
        .fetch_one(&mut *c)
        .await?)
    }

    async fn job_select_ids(c: &mut SqliteConnection, f: &Filter, after: i64, limit: i64) -> Result<Vec<i64>> {
        let (states, ids) = (f.states_json()?, f.ids_json()?);
        Ok(bind_filter!(
            sqlx::query_scalar(concat!(
                "SELECT id FROM oncommit_jobs WHERE ",
                sqlite_filter!(),
                " AND id > $10 ORDER BY id LIMIT $11"
            )),
            f,
            &states,
            &ids
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
    }

    async fn job_act_on(
        c: &mut SqliteConnection,
        f: &Filter,
        action: Action,
        ids: &[i64],
    ) -> Result<Vec<(String, String)>> {
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
        let (states, selected) = (f.states_json()?, f.ids_json()?);
        let ids = serde_json::to_string(ids).map_err(Error::app)?;
        Ok(bind_filter!(sqlx::query_as(sql), f, &states, &selected).bind(ids).fetch_all(&mut *c).await?)
    }

    async fn jobs_notify(_: &mut SqliteConnection, _queues: &[String], _stop: &[String]) -> Result<()> {
        Ok(())
    }
}
