//! `oncommit serve` facing a network: the `Host` check, the header-read timeout, reads
//! behind the token beyond loopback, and bad input refused without database text.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::{request, serve, serve_with};

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("app.db").display())
}

#[test]
fn requests_naming_another_host_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(&sqlite_url(&dir));
    let (status, _) = request(&addr, "GET", "/dashboard/api/stats", &addr);
    assert_eq!(status, 200);
    let port = addr.rsplit(':').next().unwrap();
    let (status, _) = request(&addr, "GET", "/dashboard/api/stats", &format!("localhost:{port}"));
    assert_eq!(status, 200);
    // DNS rebinding: a page on evil.example whose name now points at 127.0.0.1.
    let (status, body) = request(&addr, "GET", "/dashboard/api/stats", &format!("evil.example:{port}"));
    assert_eq!(status, 421, "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn prometheus_metrics_are_served_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(&sqlite_url(&dir));
    let (status, body) = request(&addr, "GET", "/metrics", &addr);
    assert_eq!(status, 200, "{body}");
    for series in ["# TYPE oncommit_jobs gauge", "oncommit_workers ", "oncommit_jobs_table_bytes "] {
        assert!(body.contains(series), "{series} missing:\n{body}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_half_sent_request_does_not_hold_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(&sqlite_url(&dir));
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.write_all(b"GET /dashboard HTTP/1.1\r\nHost: ").unwrap();
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    // The server gives up on the headers and closes the connection.
    stream.read_to_end(&mut rest).unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4) && waited < Duration::from_secs(15), "closed after {waited:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn beyond_loopback_without_a_token_reads_are_refused_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = serve_with(&sqlite_url(&dir), "0.0.0.0:0", &[("ONCOMMIT_ADMIN_TOKEN", "")]);
    assert!(log.iter().any(|l| l.contains("beyond loopback without ONCOMMIT_ADMIN_TOKEN")), "{log:?}");
    let port = addr.rsplit(':').next().unwrap();
    let local = format!("127.0.0.1:{port}");
    for path in ["/dashboard/api/jobs", "/metrics"] {
        let (status, body) = request(&local, "GET", path, &local);
        assert_eq!(status, 403, "{path}: {body}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_nul_byte_in_a_name_is_refused_at_the_door() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(&sqlite_url(&dir));
    let (status, body) = request(&addr, "POST", "/data/transactional?name=a%00b", &addr);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("control characters"), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}
