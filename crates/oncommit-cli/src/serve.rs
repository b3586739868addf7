//! `oncommit serve`: the seed application, the dashboard and an embedded worker.

use std::time::Duration;

use anyhow::Context as _;
use oncommit::{Db, Shutdown};
use oncommit_axum::dashboard::DashboardConfig;

/// How long requests in flight may run on after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) async fn run(db: &Db, addr: &str, no_worker: bool) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let dashboard = DashboardConfig::from_env();
    if dashboard.admin_token.is_none() {
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
    let app = oncommit_demo::web::router(db.clone(), dashboard);
    let mut stop = shutdown.clone();
    let server =
        tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await }).into_future());
    let mut stopping = shutdown.clone();
    stopping.wait().await;
    // Requests in flight get the grace period, not forever: a request blocked on a lock
    // must not keep the process alive.
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(served) => served??,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; stopping anyway")
        }
    }
    if let Some(worker) = worker {
        // The worker bounds its own shutdown (its shutdown timeout plus its query timeout).
        worker.await??;
    }
    tracing::info!("stopped");
    Ok(())
}
