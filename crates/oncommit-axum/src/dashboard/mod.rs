//! The dashboard: a page, the JSON API behind it, and Prometheus metrics, as one router any
//! axum application can nest (`app.nest("/dashboard", dashboard::router(db, config))`).
//!
//! Reading needs nothing, unless [`DashboardConfig::reads_need_token`] is set (as `oncommit
//! serve` does when it listens beyond loopback: job args and errors are data). Every
//! mutating action needs `Authorization: Bearer <token>` with the admin token
//! (`ONCOMMIT_ADMIN_TOKEN`), and is refused from a foreign `Origin`. A custom header cannot
//! be sent cross-site without a CORS preflight, which this router never grants, so the
//! actions are CSRF-safe without cookies. The page builds its DOM with `textContent`, so no
//! value from the database is ever parsed as HTML, and every response carries a
//! Content-Security-Policy that allows no inline script and no framing.

mod api;
mod metrics;

use axum::Router;
use axum::extract::NestedPath;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use oncommit::Db;

/// Who may act through the dashboard, and who may read it.
#[derive(Clone, Default)]
pub struct DashboardConfig {
    /// The token mutating actions must present; `None` disables them, and so does an
    /// empty token (refused, with a warning in the log: it would match a request that
    /// carries none).
    pub admin_token: Option<String>,
    /// Whether reading (the JSON API and the metrics) needs the token too. Without a token
    /// configured, reading is then refused altogether.
    pub reads_need_token: bool,
}

impl DashboardConfig {
    /// The admin token from `ONCOMMIT_ADMIN_TOKEN`, if set and not empty; reads open.
    pub fn from_env() -> Self {
        DashboardConfig {
            admin_token: std::env::var("ONCOMMIT_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
            reads_need_token: false,
        }
    }
}

/// The token never appears in logs through `Debug`.
impl std::fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("reads_need_token", &self.reads_need_token)
            .finish()
    }
}

/// The JSON API, described as an OpenAPI 3.1 document, served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

#[derive(Clone)]
pub(crate) struct DashboardState {
    db: Db,
    config: DashboardConfig,
}

/// The dashboard's router: `/` (the page; also at `/jobs?state=…&queue=…`, `/jobs/{id}`
/// and `/queues/{name}`, the addresses of its views), `/api/…` (JSON, described by [`OPENAPI`] at
/// `/api/openapi.json`) and `/metrics` (Prometheus).
pub fn router(db: Db, config: DashboardConfig) -> Router {
    if config.admin_token.as_deref().is_some_and(str::is_empty) {
        tracing::warn!("the dashboard's admin token is empty: actions stay disabled");
    }
    Router::new()
        .route("/", get(page))
        // The page's own addresses (a job, a filtered list, a queue): each serves the page,
        // which reads its view from the address, so a link to it can be shared.
        .route("/jobs", get(page))
        .route("/jobs/{id}", get(page))
        .route("/queues/{name}", get(page))
        .route("/page.css", get(|| async { asset("text/css; charset=utf-8", include_str!("page.css")) }))
        .route("/page.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("page.js")) }))
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(|| async { asset("application/json", OPENAPI) }))
        .route("/api/overview", get(api::overview))
        .route("/api/stats", get(api::stats))
        .route("/api/throughput", get(api::throughput))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/jobs/{id}/retry", post(api::retry))
        .route("/api/jobs/{id}/cancel", post(api::cancel))
        .route("/api/jobs/{id}/delete", post(api::delete))
        .route("/api/jobs/bulk/count", post(api::count_selected))
        .route("/api/jobs/bulk/{action}", post(api::act_on_selected))
        .route("/api/workers", get(api::workers))
        .route("/api/workflows/{id}", get(api::workflow))
        .route("/api/queues", get(api::queues))
        .route("/api/queues/{name}/pause", post(api::pause_queue))
        .route("/api/queues/{name}/resume", post(api::resume_queue))
        .route("/api/queues/{name}/limit", post(api::limit_queue))
        .route("/api/queues/{name}/rate-limit", post(api::rate_limit_queue))
        .with_state(DashboardState { db, config })
        .layer(axum::middleware::map_response(security_headers))
}

/// The Prometheus metrics alone, at `/metrics`, to merge at an application's root where
/// scrapers look for them (`oncommit serve` does): the same series and the same read rules
/// as the dashboard's `/metrics`.
///
/// ```
/// use oncommit_axum::dashboard::{self, DashboardConfig};
/// # fn app(db: oncommit::Db) -> axum::Router {
/// axum::Router::new()
///     .nest("/dashboard", dashboard::router(db.clone(), DashboardConfig::from_env()))
///     .merge(dashboard::metrics_router(db, DashboardConfig::from_env()))
/// # }
/// ```
pub fn metrics_router(db: Db, config: DashboardConfig) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(DashboardState { db, config })
        .layer(axum::middleware::map_response(security_headers))
}

/// The page, pointing at its stylesheet and script under wherever the router is nested.
async fn page(nested: Result<NestedPath, axum::extract::rejection::NestedPathRejection>) -> Html<String> {
    // Not nested: served at the root.
    let base = nested.as_ref().map_or("", |n| n.as_str()).trim_end_matches('/');
    Html(include_str!("page.html").replace("{base}", base))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// On every response of the dashboard: scripts and styles from this origin only (none
/// inline), no framing (clickjacking), no content-type sniffing, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
