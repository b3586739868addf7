//! The dashboard: a page, the JSON API behind it, and Prometheus metrics, as one router any
//! axum application can nest (`app.nest("/dashboard", dashboard::router(db, config))`).
//!
//! Reading needs nothing; every mutating action needs `Authorization: Bearer <token>` with
//! the admin token (`ONCOMMIT_ADMIN_TOKEN`), and is refused from a foreign `Origin`. A
//! custom header cannot be sent cross-site without a CORS preflight, which this router never
//! grants, so the actions are CSRF-safe without cookies. The page builds its DOM with
//! `textContent`, so no value from the database is ever parsed as HTML.

mod api;
mod metrics;

use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};
use oncommit::Db;

/// Who may act through the dashboard.
#[derive(Debug, Clone, Default)]
pub struct DashboardConfig {
    /// The token mutating actions must present; `None` disables them.
    pub admin_token: Option<String>,
}

impl DashboardConfig {
    /// The admin token from `ONCOMMIT_ADMIN_TOKEN`, if set and not empty.
    pub fn from_env() -> Self {
        DashboardConfig { admin_token: std::env::var("ONCOMMIT_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()) }
    }
}

#[derive(Clone)]
pub(crate) struct DashboardState {
    db: Db,
    config: DashboardConfig,
}

/// The dashboard's router: `/` (the page), `/api/…` (JSON) and `/metrics` (Prometheus).
pub fn router(db: Db, config: DashboardConfig) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics::metrics))
        .route("/api/stats", get(api::stats))
        .route("/api/throughput", get(api::throughput))
        .route("/api/jobs", get(api::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/jobs/{id}/retry", post(api::retry))
        .route("/api/jobs/{id}/cancel", post(api::cancel))
        .route("/api/jobs/{id}/delete", post(api::delete))
        .route("/api/workers", get(api::workers))
        .with_state(DashboardState { db, config })
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}
