//! What the tests of the `oncommit` binary share: running a command, starting `serve` or a
//! worker process as a user does.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};

/// Starts `oncommit serve` on `url`, listening on `listen` (with `env`); returns it (killed
/// if the test ends first), its address, and its log lines so far (up to the address).
pub(crate) fn serve_with(url: &str, listen: &str, env: &[(&str, &str)]) -> (KillOnDrop, String, Vec<String>) {
    migrated(url);
    let mut command = Command::new(env!("CARGO_BIN_EXE_oncommit"));
    command.args(["serve", "--addr", listen]).env("DATABASE_URL", url).env("RUST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    let addr = lines
        .by_ref()
        .find_map(|l| {
            let addr = l.split("listening on http://").nth(1).map(|rest| rest.split('/').next().unwrap().to_owned());
            seen.push(l);
            addr
        })
        .expect("serve prints its address");
    // Keep reading, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (KillOnDrop(Some(child)), addr, seen)
}

/// A child process killed if the test fails before it stops the process itself (take it
/// out of the `Option` for that). It derefs to the child while it holds one.
pub(crate) struct KillOnDrop(pub(crate) Option<Child>);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().expect("the child was taken")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child was taken")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// Starts `oncommit serve` on `url`; returns it (killed if the test ends first) and its
/// address.
pub(crate) fn serve(url: &str) -> (KillOnDrop, String) {
    let (child, addr, _) = serve_with(url, "127.0.0.1:0", &[]);
    (child, addr)
}

/// Sends `raw` on a fresh connection and reads the whole answer (the server closes).
pub(crate) fn exchange(addr: &str, raw: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).ok();
    response
}

/// A request with the given `Host`; its status and body.
pub(crate) fn request(addr: &str, method: &str, path: &str, host: &str) -> (u16, String) {
    let response = exchange(
        addr,
        &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// Runs `oncommit migrate --demo` on `url` once per test process, as a deployment does
/// before it starts anything else: only `migrate` (and `serve` on SQLite) changes the
/// schema. A URL that cannot be migrated (a test of a bad URL) is left as it is.
pub(crate) fn migrated(url: &str) {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if done.iter().any(|u| u == url) {
        return;
    }
    done.push(url.to_owned());
    unmigrated(url, &["migrate", "--demo"]);
}

/// Runs `oncommit ARGS` against `url`, as a script would, once the schema is migrated.
pub(crate) fn oncommit(url: &str, args: &[&str]) -> Output {
    migrated(url);
    unmigrated(url, args)
}

/// Runs `oncommit ARGS` against `url` as it is, migrated or not.
pub(crate) fn unmigrated(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .output()
        .expect("run the oncommit binary")
}

/// Runs `oncommit ARGS` (with `--json` among them), which must succeed and print one JSON
/// object on one line: a public interface.
pub(crate) fn json(url: &str, args: &[&str]) -> serde_json::Value {
    let out = oncommit(url, args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON object on one line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// An `oncommit worker --migrate` process serving `queue` with `concurrency` slots, a 1.5 s
/// lease and a 100 ms poll, its output discarded; killed if the test ends first.
pub(crate) fn worker_process(url: &str, queue: &str, concurrency: usize) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_oncommit"))
        .args(["worker", "--migrate", "--queues", queue, "--concurrency", &concurrency.to_string()])
        .args(["--lease-ms", "1500", "--poll-ms", "100"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}
