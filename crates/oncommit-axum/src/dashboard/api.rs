//! The dashboard's JSON API.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use oncommit::admin::Cancelled;
use oncommit::{JobId, JobState};
use serde::Deserialize;
use serde_json::{Value, json};

use super::DashboardState;
use crate::error::Error;

type ApiResult = Result<Json<Value>, Error>;

/// Counts per queue and state: `{"queues": {"default": {"available": 3, …}}, "total": {…}}`.
pub(super) async fn stats(State(s): State<DashboardState>, headers: HeaderMap) -> ApiResult {
    may_read(&s, &headers)?;
    Ok(Json(json!(s.db.jobs().stats().await?)))
}

/// Completed jobs per minute over the last hour: `{"minutes": [[minute, count], …]}`.
pub(super) async fn throughput(State(s): State<DashboardState>, headers: HeaderMap) -> ApiResult {
    may_read(&s, &headers)?;
    Ok(Json(json!({ "minutes": s.db.jobs().throughput(60).await? })))
}

/// `/api/jobs`' query: the filters of a [`oncommit::admin::JobSelection`] and a page.
#[derive(Deserialize)]
pub(super) struct JobsQuery {
    /// States, comma-separated; none for every state.
    state: Option<String>,
    queue: Option<String>,
    task: Option<String>,
    priority: Option<String>,
    /// RFC 3339 times: finished (unfinished: created) at or after / before.
    since: Option<String>,
    until: Option<String>,
    /// The id, or text in the args or an error.
    search: Option<String>,
    /// Text in an error.
    error: Option<String>,
    /// `newest` (the default) or `oldest`.
    order: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    limit: Option<String>,
}

fn bad_request(e: impl std::fmt::Display) -> Error {
    Error::new(StatusCode::BAD_REQUEST, e.to_string())
}

impl JobsQuery {
    /// The selection and page the query names; a malformed value is a 400 naming it.
    fn parse(&self) -> Result<(oncommit::admin::JobSelection, oncommit::admin::PageRequest), Error> {
        let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        let time = |name: &str, v: &Option<String>| {
            text(v)
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|t| t.to_utc())
                        .map_err(|e| bad_request(format!("{name}: `{t}` is not an RFC 3339 time ({e})")))
                })
                .transpose()
        };
        let number = |name: &str, v: &Option<String>| {
            text(v)
                .map(|t| t.parse::<i64>().map_err(|_| bad_request(format!("{name}: `{t}` is not a number"))))
                .transpose()
        };
        let states = match text(&self.state) {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().parse::<JobState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_request)?,
            None => Vec::new(),
        };
        let priority = number("priority", &self.priority)?
            .map(|p| i16::try_from(p).map_err(|_| bad_request(format!("priority: {p} is out of range"))))
            .transpose()?;
        let selection = oncommit::admin::JobSelection {
            states,
            // Blank text filters nothing: the selection drops it.
            queue: self.queue.clone(),
            task: self.task.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            error_contains: self.error.clone(),
            priority,
            search: self.search.clone(),
            ids: None,
        };
        let page = oncommit::admin::PageRequest {
            order: text(&self.order).map(|o| o.parse()).transpose().map_err(bad_request)?.unwrap_or_default(),
            cursor: number("cursor", &self.cursor)?,
            limit: number("limit", &self.limit)?.unwrap_or(50),
        };
        Ok((selection, page))
    }
}

/// A page of the jobs the filters select, newest (or oldest) first, with the cursor of the
/// next page: `{"jobs": [...], "next_cursor": 41 | null}`.
pub(super) async fn jobs(State(s): State<DashboardState>, headers: HeaderMap, Query(q): Query<JobsQuery>) -> ApiResult {
    may_read(&s, &headers)?;
    let (selection, page) = q.parse()?;
    Ok(Json(json!(s.db.jobs().list(&selection, &page).await.map_err(bad_value)?)))
}

/// One job with its args, attempts, errors and timings, and its dependencies in brief:
/// `{…the job…, "parents": [{"id", "task", "state"}], "dependants": [...]}`.
pub(super) async fn job(State(s): State<DashboardState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    may_read(&s, &headers)?;
    let job =
        s.db.jobs().get(JobId(id)).await?.ok_or_else(|| Error::new(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    let links = s.db.jobs().dependencies(JobId(id)).await?;
    let brief = |jobs: Vec<oncommit::Job>| {
        jobs.into_iter().map(|j| json!({ "id": j.id, "task": j.task, "state": j.state })).collect::<Vec<_>>()
    };
    let mut body = json!(job);
    body["parents"] = json!(brief(links.parents));
    body["dependants"] = json!(brief(links.dependants));
    Ok(Json(body))
}

/// What the page refreshes, in one request of a few index-served statements: the jobs per
/// queue and state (finished ones counted at most once a minute), the queues with their
/// settings, their activity over the last hour, and the workers.
pub(super) async fn overview(State(s): State<DashboardState>, headers: HeaderMap) -> ApiResult {
    may_read(&s, &headers)?;
    let overview = s.db.queues().overview().await?;
    Ok(Json(json!({
        "counts": overview.stats,
        "queues": overview.queues,
        "activity": s.db.queues().activity(std::time::Duration::from_secs(3600)).await?,
        "workers": s.db.workers().list().await?,
    })))
}

/// A workflow's jobs in id order, each with its parents: `{"id": "…", "jobs": [{"job": {…},
/// "parents": [41, 42]}]}`.
pub(super) async fn workflow(State(s): State<DashboardState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    may_read(&s, &headers)?;
    let jobs = s.db.jobs().workflow(&id).await?;
    if jobs.is_empty() {
        return Err(Error::new(StatusCode::NOT_FOUND, format!("no workflow {id}")));
    }
    Ok(Json(json!({ "id": id, "jobs": jobs })))
}

/// The workers that reported recently.
pub(super) async fn workers(State(s): State<DashboardState>, headers: HeaderMap) -> ApiResult {
    may_read(&s, &headers)?;
    Ok(Json(json!({ "workers": s.db.workers().list().await? })))
}

pub(super) async fn retry(State(s): State<DashboardState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    authorize(&s, &headers)?;
    if !s.db.jobs().retry(JobId(id)).await? {
        return Err(Error::new(StatusCode::CONFLICT, format!("job {id} cannot be retried: missing or running")));
    }
    Ok(Json(json!({ "id": id, "retried": true })))
}

pub(super) async fn cancel(State(s): State<DashboardState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    authorize(&s, &headers)?;
    match s.db.jobs().cancel(JobId(id)).await? {
        Cancelled::NotCancellable => Err(Error::new(StatusCode::CONFLICT, format!("job {id} cannot be cancelled"))),
        outcome => Ok(Json(json!({ "id": id, "cancelled": outcome }))),
    }
}

pub(super) async fn delete(State(s): State<DashboardState>, headers: HeaderMap, Path(id): Path<i64>) -> ApiResult {
    authorize(&s, &headers)?;
    if !s.db.jobs().delete(JobId(id)).await? {
        return Err(Error::new(StatusCode::CONFLICT, format!("job {id} cannot be deleted: missing or running")));
    }
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// Every queue with its settings (paused, limits), waiting and running jobs, and workers:
/// `{"queues": [{"name": "mail", "paused": false, "concurrency_limit": 5, …}]}`.
pub(super) async fn queues(State(s): State<DashboardState>, headers: HeaderMap) -> ApiResult {
    may_read(&s, &headers)?;
    Ok(Json(json!({ "queues": s.db.queues().list().await? })))
}

/// Pauses a queue for every worker; answers with the queue as `/api/queues` lists it.
pub(super) async fn pause_queue(
    State(s): State<DashboardState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&s, &headers)?;
    s.db.queues().pause(&name).await.map_err(bad_value)?;
    Ok(Json(json!({ "queue": s.db.queues().get(&name).await? })))
}

/// Resumes a paused queue.
pub(super) async fn resume_queue(
    State(s): State<DashboardState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    authorize(&s, &headers)?;
    s.db.queues().resume(&name).await.map_err(bad_value)?;
    Ok(Json(json!({ "queue": s.db.queues().get(&name).await? })))
}

#[derive(Deserialize)]
pub(super) struct LimitBody {
    /// The most jobs running at once across all workers; `null` removes the limit.
    concurrency_limit: Option<u32>,
}

/// Sets a queue's concurrency limit: `{"concurrency_limit": 5}` (or `null`).
pub(super) async fn limit_queue(
    State(s): State<DashboardState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<LimitBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let Json(body) = body.map_err(|e| Error::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    s.db.queues().set_concurrency_limit(&name, body.concurrency_limit).await.map_err(bad_value)?;
    Ok(Json(json!({ "queue": s.db.queues().get(&name).await? })))
}

#[derive(Deserialize)]
pub(super) struct RateBody {
    /// The limit, as `/api/queues` shows it; `null` removes it.
    rate_limit: Option<oncommit::admin::RateLimit>,
}

/// Sets a queue's rate limit: `{"rate_limit": {"max_starts": 10, "period_ms": 1000}}` (or
/// `{"rate_limit": null}`).
pub(super) async fn rate_limit_queue(
    State(s): State<DashboardState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Json<RateBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    authorize(&s, &headers)?;
    let Json(body) = body.map_err(|e| Error::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    s.db.queues().set_rate_limit(&name, body.rate_limit).await.map_err(bad_value)?;
    Ok(Json(json!({ "queue": s.db.queues().get(&name).await? })))
}

/// A selection in a request body: `{"states": ["failed"], "queue": "mail", "task": null,
/// "since": "2026-11-24T03:00:00Z", "until": null, "error_contains": "refused"}`.
type Selection = Result<Json<oncommit::admin::JobSelection>, axum::extract::rejection::JsonRejection>;

fn selection(body: Selection) -> Result<oncommit::admin::JobSelection, Error> {
    body.map(|Json(s)| s).map_err(|e| Error::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// How many jobs a selection picks now: `{"matched": 12}`. A read, for the confirmation the
/// page asks before a bulk action.
pub(super) async fn count_selected(State(s): State<DashboardState>, headers: HeaderMap, body: Selection) -> ApiResult {
    may_read(&s, &headers)?;
    let matched = s.db.jobs().count(&selection(body)?).await.map_err(bad_value)?;
    Ok(Json(json!({ "matched": matched })))
}

/// Retries, cancels or deletes every job a selection picks: `{"retried": 12}`,
/// `{"cancelled": 3, "requested": 1}`, `{"deleted": 12}`.
pub(super) async fn act_on_selected(
    State(s): State<DashboardState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Selection,
) -> ApiResult {
    authorize(&s, &headers)?;
    let selection = selection(body)?;
    let done = match action.as_str() {
        "retry" => json!({ "retried": s.db.jobs().retry_all(&selection).await.map_err(bad_value)? }),
        "cancel" => json!(s.db.jobs().cancel_all(&selection).await.map_err(bad_value)?),
        "delete" => json!({ "deleted": s.db.jobs().delete_all(&selection).await.map_err(bad_value)? }),
        other => {
            return Err(Error::new(
                StatusCode::NOT_FOUND,
                format!("no bulk action `{other}`: retry, cancel or delete"),
            ));
        }
    };
    Ok(Json(done))
}

/// A value the operator gave that no worker could honour (a limit of 0, a queue name with
/// `,`) is their error, told as such: 400 with oncommit's words.
fn bad_value(err: oncommit::Error) -> Error {
    match err {
        oncommit::Error::InvalidOption { .. } => Error::new(StatusCode::BAD_REQUEST, err.to_string()),
        other => other.into(),
    }
}

/// Reads need the admin token only when the configuration says so.
pub(super) fn may_read(s: &DashboardState, headers: &HeaderMap) -> Result<(), Error> {
    if !s.config.reads_need_token {
        return Ok(());
    }
    if admin_token(s).is_none() {
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            "reading is disabled on a server reachable beyond loopback without ONCOMMIT_ADMIN_TOKEN",
        ));
    }
    check_token(s, headers)
}

/// Mutations need the admin token in `Authorization: Bearer …`, and no foreign `Origin`.
fn authorize(s: &DashboardState, headers: &HeaderMap) -> Result<(), Error> {
    if admin_token(s).is_none() {
        return Err(Error::new(StatusCode::FORBIDDEN, "actions are disabled: set ONCOMMIT_ADMIN_TOKEN"));
    }
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host.to_str().unwrap_or_default() {
            return Err(Error::new(StatusCode::FORBIDDEN, "cross-origin request refused"));
        }
    }
    check_token(s, headers)
}

/// The configured admin token; an empty one is no token (it would match a request that
/// carries none), so it leaves actions disabled.
fn admin_token(s: &DashboardState) -> Option<&str> {
    s.config.admin_token.as_deref().filter(|t| !t.is_empty())
}

/// The request carries the admin token.
fn check_token(s: &DashboardState, headers: &HeaderMap) -> Result<(), Error> {
    let Some(expected) = admin_token(s) else {
        return Err(Error::new(StatusCode::FORBIDDEN, "actions are disabled: set ONCOMMIT_ADMIN_TOKEN"));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Error::new(StatusCode::UNAUTHORIZED, "a valid admin token is required"));
    }
    Ok(())
}

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
