//! `/metrics`: Prometheus text format, every series prefixed `oncommit_`.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::DashboardState;
use crate::error::Error;

/// Jobs by state and queue (from the database), workers, and this process's claim,
/// completion and run-time histograms.
pub(super) async fn metrics(
    State(s): State<DashboardState>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, Error> {
    super::api::may_read(&s, &headers)?;
    let mut out = String::from("# HELP oncommit_jobs Jobs by queue and state.\n# TYPE oncommit_jobs gauge\n");
    // Finished jobs are counted at most once a minute: a scrape never reads the whole table.
    let overview = s.db.queues().overview().await?;
    for (queue, states) in &overview.stats.queues {
        for (state, count) in states {
            let _ = writeln!(out, "oncommit_jobs{{queue=\"{}\",state=\"{state}\"}} {count}", label(queue));
        }
    }
    // Every queue with unfinished jobs has a lag series, zero when none waits, so an alert
    // sees it fall back rather than vanish.
    out.push_str(
        "# HELP oncommit_queue_lag_seconds How long the oldest available job of a queue has waited for a worker.\n\
         # TYPE oncommit_queue_lag_seconds gauge\n",
    );
    for q in overview.queues.iter().filter(|q| q.available + q.running + q.waiting > 0 || !q.lag.is_zero()) {
        let _ = writeln!(out, "oncommit_queue_lag_seconds{{queue=\"{}\"}} {}", label(&q.name), q.lag.as_secs_f64());
    }
    let table = s.db.jobs().table_stats().await?;
    let _ = writeln!(
        out,
        "# HELP oncommit_jobs_table_bytes The jobs table's size on disk (SQLite: the database file).\n\
         # TYPE oncommit_jobs_table_bytes gauge\noncommit_jobs_table_bytes {}",
        table.bytes
    );
    if let Some(dead) = table.dead_rows {
        let _ = writeln!(
            out,
            "# HELP oncommit_jobs_table_dead_rows Dead row versions in the jobs table not yet vacuumed.\n\
             # TYPE oncommit_jobs_table_dead_rows gauge\noncommit_jobs_table_dead_rows {dead}"
        );
    }
    let workers = s.db.workers().list().await?.len();
    let _ = writeln!(
        out,
        "# HELP oncommit_workers Workers that reported recently.\n# TYPE oncommit_workers gauge\noncommit_workers {workers}"
    );
    out.push_str(&oncommit::metrics::METRICS.render());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// A label value as Prometheus' text format escapes it.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
