//! A worker cut off from PostgreSQL by a silent network partition — packets dropped, no
//! reset, as in a cloud network blip — never blocks its jobs for longer than its lease: they
//! are rescued and run by another worker, each effect once, and the cut-off worker is back
//! within seconds of the heal.
//!
//! The worker runs in a network namespace of the test's own, joined to the host by a veth
//! pair; the server is a private cluster that also listens on the host's end. The cut is a
//! static neighbour entry on each side naming a MAC address that does not exist, so frames
//! go nowhere and nobody is told. Needs root (as the test machine and CI run).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use oncommit::admin::{JobSelection, PageRequest};
use oncommit::{Db, EnqueueOptions, JobState};
use oncommit_testing::{eventually, private_cluster, with_database};

/// Fails at once, saying what is missing, where the test cannot run: network namespaces
/// need root and iproute2's `ip` (`scripts/test` installs it).
fn require_root_and_ip() {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    assert_eq!(
        uid.as_deref().unwrap_or("?"),
        "0",
        "this test makes a network namespace and veth pair, which needs root: run the suite as root (as CI does)"
    );
    assert!(
        Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success()),
        "this test needs iproute2's `ip`: install it (`apt-get install iproute2`; scripts/test does)"
    );
}

/// Runs `ip` with `args`, failing the test with its output if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace joined to the host by a veth pair, removed on drop.
struct Net {
    ns: String,
    host_if: String,
    worker_if: String,
    host_ip: String,
    worker_ip: String,
    subnet: String,
}

impl Net {
    fn create() -> Net {
        require_root_and_ip();
        let id = std::process::id() % 100_000;
        let octet = std::process::id() % 250 + 1;
        let net = Net {
            ns: format!("ocp{id}"),
            host_if: format!("ocp{id}h"),
            worker_if: format!("ocp{id}w"),
            host_ip: format!("10.213.{octet}.1"),
            worker_ip: format!("10.213.{octet}.2"),
            subnet: format!("10.213.{octet}.0/24"),
        };
        ip(&["netns", "add", &net.ns]);
        ip(&["link", "add", &net.host_if, "type", "veth", "peer", "name", &net.worker_if]);
        ip(&["link", "set", &net.worker_if, "netns", &net.ns]);
        ip(&["addr", "add", &format!("{}/24", net.host_ip), "dev", &net.host_if]);
        ip(&["link", "set", &net.host_if, "up"]);
        ip(&["netns", "exec", &net.ns, "ip", "addr", "add", &format!("{}/24", net.worker_ip), "dev", &net.worker_if]);
        ip(&["netns", "exec", &net.ns, "ip", "link", "set", &net.worker_if, "up"]);
        ip(&["netns", "exec", &net.ns, "ip", "link", "set", "lo", "up"]);
        net
    }

    /// Frames to the other side go to a MAC address nobody has: dropped, silently.
    fn cut(&self) {
        ip(&[
            "netns",
            "exec",
            &self.ns,
            "ip",
            "neigh",
            "replace",
            &self.host_ip,
            "lladdr",
            "02:00:00:00:0d:01",
            "dev",
            &self.worker_if,
            "nud",
            "permanent",
        ]);
        ip(&[
            "neigh",
            "replace",
            &self.worker_ip,
            "lladdr",
            "02:00:00:00:0d:02",
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ]);
    }

    fn heal(&self) {
        ip(&["netns", "exec", &self.ns, "ip", "neigh", "del", &self.host_ip, "dev", &self.worker_if]);
        ip(&["neigh", "del", &self.worker_ip, "dev", &self.host_if]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Command::new("ip").args(["link", "del", &self.host_if]).status().ok();
        Command::new("ip").args(["netns", "del", &self.ns]).status().ok();
    }
}

/// The workers' lease: the longest a partitioned worker may block its jobs.
const LEASE: Duration = Duration::from_millis(3000);

/// A worker process, killed if the test fails before stopping it.
struct Process(Option<Child>);

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

/// `oncommit worker` (in namespace `ns`, if given), with its log lines sent to a channel.
fn worker(url: &str, ns: Option<&str>) -> (Process, mpsc::Receiver<String>) {
    let bin = env!("CARGO_BIN_EXE_oncommit");
    let lease = LEASE.as_millis().to_string();
    let args = ["worker", "--migrate", "--lease-ms", &lease, "--poll-ms", "200", "--concurrency", "12"];
    let mut command = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, bin]).args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    let mut child = command.env("DATABASE_URL", url).env("RUST_LOG", "info").stderr(Stdio::piped()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            tx.send(line).ok();
        }
    });
    (Process(Some(child)), rx)
}

/// SIGTERM: a graceful stop, exit status 0.
fn terminate(mut process: Process) {
    let mut child = process.0.take().unwrap();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// `record` jobs that each work `ms_in_tx` inside their completing transaction, holding
/// their job's row lock.
async fn enqueue(db: &Db, keys: impl Iterator<Item = String>, ms_in_tx: u64) -> Vec<oncommit::JobId> {
    let mut ids = Vec::new();
    for key in keys {
        let args = serde_json::json!({ "key": key, "ms_in_tx": ms_in_tx });
        ids.push(db.enqueue_raw("record", &args, EnqueueOptions::new()).await.unwrap());
    }
    ids
}

async fn wait_completed(db: &Db, ids: &[oncommit::JobId], what: &str) {
    eventually(what, || async {
        let jobs = db
            .jobs()
            .list(&JobSelection::new([JobState::Completed]), &PageRequest::newest(1000))
            .await
            .map(|page| page.jobs)
            .ok()?;
        ids.iter().all(|id| jobs.iter().any(|j| j.id == *id)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_worker_never_blocks_its_jobs_longer_than_its_lease() {
    let net = Net::create();
    let admin = private_cluster(&format!("127.0.0.1,{}", net.host_ip), &net.subnet).unwrap();
    let admin_db = Db::connect(&admin).await.unwrap();
    sqlx::query("CREATE DATABASE partition").execute(admin_db.pg_pool().unwrap()).await.unwrap();
    let local = with_database(&admin, "partition");
    let port = local.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    let remote = format!("postgres://postgres@{}:{port}/partition", net.host_ip);
    let migrated = Command::new(env!("CARGO_BIN_EXE_oncommit")).args(["migrate"]).env("DATABASE_URL", &local).status();
    assert!(migrated.unwrap().success());
    let db = Db::connect(&local).await.unwrap();

    // A, in the namespace, takes twelve jobs that each work for two seconds inside their
    // completing transaction, holding their job's row lock: the cut finds them there. (Two,
    // not more: a completing transaction idle for longer than the lease is ended by the
    // server, on any worker.)
    let held = enqueue(&db, (0..12).map(|i| format!("held-{i}")), 2000).await;
    let (a, a_log) = worker(&remote, Some(&net.ns));
    let pool = admin_db.pg_pool().unwrap();
    eventually("A's tasks to hold their job rows in open transactions", || async {
        let locked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'partition' AND query LIKE '%FOR UPDATE%' \
             AND state = 'idle in transaction' AND client_addr IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .ok()?;
        (locked >= 6).then_some(())
    })
    .await;

    // The partition, with A's sessions idle in their transactions, holding row locks that
    // the rescue (`FOR UPDATE SKIP LOCKED`) skips. The server ends them once they have sat
    // idle for a lease (3 s); B, on the host, rescues the jobs and runs them (2 s each):
    // within the lease, the run and a few seconds.
    net.cut();
    let cut = Instant::now();
    let (b, _b_log) = worker(&local, None);
    // Blocked no longer than the lease: every job A held is running again on B (a second
    // attempt) within the lease, plus B's start and a poll interval.
    let restarted = held.clone();
    eventually("A's jobs to be rescued and started again by B", || async {
        for id in &restarted {
            if db.jobs().get(*id).await.ok()??.attempt < 2 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let restarted_after = cut.elapsed();
    wait_completed(&db, &held, "A's jobs to be completed by B").await;
    eprintln!(
        "partition: A's jobs ran again on B {restarted_after:?} after the cut, completed {:?} after it",
        cut.elapsed()
    );
    assert!(restarted_after < LEASE + Duration::from_secs(2), "{restarted_after:?} is past the lease ({LEASE:?})");
    // Rescued, not completed by A before the cut.
    for id in &held {
        let job = db.jobs().get(*id).await.unwrap().unwrap();
        assert!(job.attempt >= 2, "{job:?}");
    }
    terminate(b);

    // The heal. A is alone again, and runs new jobs within seconds.
    net.heal();
    let healed = Instant::now();
    let later = enqueue(&db, (0..4).map(|i| format!("later-{i}")), 0).await;
    wait_completed(&db, &later, "A to run jobs after the heal").await;
    let back_after = healed.elapsed();
    eprintln!("partition: A ran new jobs {back_after:?} after the heal");
    assert!(back_after < Duration::from_secs(12), "{back_after:?}");
    terminate(a);
    let log: Vec<String> = a_log.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("lost its database")), "A said nothing of the outage: {log:?}");
    assert!(log.iter().any(|l| l.contains("answers again")), "A said nothing of the recovery: {log:?}");

    // Each job's effect, once.
    let runs: Vec<(String, i64)> = sqlx::query_as("SELECT key, count(*) FROM demo_runs GROUP BY key ORDER BY key")
        .fetch_all(db.pg_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(runs.len(), 16, "{runs:?}");
    assert!(runs.iter().all(|(_, n)| *n == 1), "an effect was applied twice: {runs:?}");
}
