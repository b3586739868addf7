//! `serve`'s HTTP server: axum's router on hyper's HTTP/1 connections, with what a server
//! facing a network needs and `axum::serve` does not offer — a deadline for a client's
//! request headers (a half-sent request does not hold its connection), a check of the
//! `Host` header against the bound address (DNS rebinding), and a shutdown that gives
//! requests in flight a grace period, not forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use oncommit::Shutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// How long a client may take to send its request headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long requests in flight may run on after a shutdown signal.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` fires, then lets requests in flight finish
/// within [`SHUTDOWN_GRACE`].
pub(crate) async fn serve(listener: TcpListener, app: Router, mut shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.wait() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await.ok();
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still running after the grace period; stopping anyway");
        connections.abort_all();
    }
}

/// The `Host` values a request may name: the bound address (and, bound to loopback, its
/// other loopback names), plus names given with `--allowed-host`. Bound to an unspecified
/// address (0.0.0.0), any.
#[derive(Debug)]
pub(crate) struct AllowedHosts {
    hosts: Option<Vec<String>>,
}

impl AllowedHosts {
    pub(crate) fn new(bound: SocketAddr, names: &[String]) -> AllowedHosts {
        let ip = bound.ip();
        if ip.is_unspecified() {
            return AllowedHosts { hosts: None };
        }
        let port = bound.port();
        let mut hosts: Vec<String> = vec![bound.to_string()];
        if ip.is_loopback() {
            hosts.extend([format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")]);
        }
        for name in names {
            hosts.push(if name.contains(':') { name.clone() } else { format!("{name}:{port}") });
        }
        AllowedHosts { hosts: Some(hosts) }
    }

    fn accepts(&self, host: &str) -> bool {
        self.hosts.as_ref().is_none_or(|hosts| hosts.iter().any(|h| h.eq_ignore_ascii_case(host)))
    }
}

/// Refuses requests whose `Host` names another server: a page on another site that
/// rebinds its name to 127.0.0.1 cannot talk to this one.
pub(crate) async fn check_host(State(allowed): State<Arc<AllowedHosts>>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    if allowed.accepts(host) {
        return next.run(request).await;
    }
    let body = axum::Json(serde_json::json!({ "error": "this server does not answer to that Host" }));
    (StatusCode::MISDIRECTED_REQUEST, body).into_response()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::AllowedHosts;

    #[test]
    fn hosts_are_checked_against_the_bound_address() {
        let loopback = AllowedHosts::new("127.0.0.1:8000".parse().unwrap(), &[]);
        assert!(loopback.accepts("127.0.0.1:8000") && loopback.accepts("localhost:8000"));
        assert!(!loopback.accepts("evil.example:8000") && !loopback.accepts("127.0.0.1:9000"));
        let named = AllowedHosts::new("10.0.0.5:80".parse().unwrap(), &["jobs.internal".into()]);
        assert!(named.accepts("jobs.internal:80") && named.accepts("10.0.0.5:80") && !named.accepts("localhost:80"));
        assert!(AllowedHosts::new("0.0.0.0:80".parse().unwrap(), &[]).accepts("anything:80"));
    }
}
