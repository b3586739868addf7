//! The getting-started service run as its users run it, on both backends: a user created
//! by `POST /users` is welcomed by the worker in the same process, and by a worker started
//! as a separate process.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use oncommit_testing::{backend_test, eventually};

/// The service's binary with `args` on `url`; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn start(url: &str, args: &[&str]) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_oncommit-getting-started"))
        .args(args)
        .env("DATABASE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the service");
    Running(child)
}

/// Starts `serve` on a free port; returns it and its address.
fn serve(url: &str, extra: &[&str]) -> (Running, String) {
    let mut args = vec!["serve", "127.0.0.1:0"];
    args.extend(extra);
    let mut running = start(url, &args);
    let stdout = running.0.stdout.take().expect("piped");
    let line = BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.starts_with("listening on"));
    let addr = line.expect("the service prints its address").trim_start_matches("listening on http://").to_owned();
    (running, addr)
}

/// One HTTP/1.1 request; the response's status and body.
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the service");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send the request");
    let mut response = String::new();
    stream.read_to_string(&mut response).ok();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

async fn welcomed(addr: &str, id: i64) {
    let addr = addr.to_owned();
    eventually(&format!("user {id} to be welcomed"), || {
        let addr = addr.clone();
        async move {
            let (status, user) = tokio::task::spawn_blocking(move || http(&addr, "GET", &format!("/users/{id}"), ""))
                .await
                .expect("the request ran");
            (status == 200 && user["welcomed"] == true).then_some(())
        }
    })
    .await;
}

backend_test!(async fn a_user_is_welcomed_by_the_worker_in_the_same_process(t) {
    let (_service, addr) = serve(&t.url, &[]);
    let (status, user) = http(&addr, "POST", "/users", r#"{"email":"ada@example.com"}"#);
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["welcomed"], false, "the task runs after the commit");
    welcomed(&addr, user["id"].as_i64().expect("an id")).await;
});

backend_test!(async fn a_user_is_welcomed_by_a_worker_in_another_process(t) {
    let (_service, addr) = serve(&t.url, &["--no-worker"]);
    let (status, user) = http(&addr, "POST", "/users", r#"{"email":"grace@example.com"}"#);
    assert_eq!(status, 200, "{user}");
    let id = user["id"].as_i64().expect("an id");
    let (_, stored) = http(&addr, "GET", &format!("/users/{id}"), "");
    assert_eq!(stored["welcomed"], false, "no worker yet");
    let _worker = start(&t.url, &["worker"]);
    welcomed(&addr, id).await;
    assert_eq!(http(&addr, "GET", "/users/999999", "").0, 404);
});
