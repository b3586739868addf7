//! `oncommit serve`: the seed application, the dashboard and an embedded worker.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use oncommit::{Db, Shutdown};
use oncommit_axum::dashboard::DashboardConfig;

use crate::http::{self, AllowedHosts};

pub(crate) async fn run(db: &Db, addr: &str, no_worker: bool, allowed_hosts: &[String]) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut dashboard = DashboardConfig::from_env();
    if !local.ip().is_loopback() {
        // Beyond loopback, job args and errors are data for the token's holders only.
        dashboard.reads_need_token = true;
        if dashboard.admin_token.is_none() {
            tracing::warn!(
                addr = %local,
                "listening beyond loopback without ONCOMMIT_ADMIN_TOKEN: the dashboard's API and metrics are disabled"
            );
        }
    } else if dashboard.admin_token.is_none() {
        tracing::warn!("ONCOMMIT_ADMIN_TOKEN is not set: the dashboard's retry/cancel/delete actions are disabled");
    }
    let worker = (!no_worker).then(|| {
        let worker = oncommit_demo::tasks::worker(db).queue("default", 10).poll_interval(Duration::from_millis(500));
        tokio::spawn(worker.run(shutdown.clone()))
    });
    // `listening on` is printed for people and for scripts that wait for it.
    tracing::info!(
        url = format!("http://{local}/"),
        dashboard = format!("http://{local}/dashboard"),
        worker = !no_worker,
        "listening"
    );
    eprintln!("oncommit serve: listening on http://{local}/ (dashboard: http://{local}/dashboard)");
    let hosts = Arc::new(AllowedHosts::new(local, allowed_hosts));
    let app = oncommit_demo::web::router(db.clone(), dashboard)
        .layer(axum::middleware::from_fn_with_state(hosts, http::check_host));
    http::serve(listener, app, shutdown).await;
    if let Some(worker) = worker {
        // The worker bounds its own shutdown (its shutdown timeout plus its query timeout).
        worker.await??;
    }
    tracing::info!("stopped");
    Ok(())
}
