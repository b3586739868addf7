//! Finding a PostgreSQL server for the tests, or starting a private one.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

/// Whether something accepts connections where `url` points.
pub(crate) fn reachable(url: &str) -> bool {
    let Ok(opts) = PgConnectOptions::from_str(url) else {
        return false;
    };
    let host = opts.get_host();
    if host.starts_with('/') {
        return Path::new(host).join(format!(".s.PGSQL.{}", opts.get_port())).exists();
    }
    let Ok(mut addrs) = (host, opts.get_port()).to_socket_addrs() else {
        return false;
    };
    addrs.any(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
}

/// Starts a throwaway cluster for this test process with the newest installed server
/// binaries, and returns the URL of its `postgres` database. A watchdog stops it when the
/// test process exits.
pub(crate) fn start_private() -> Result<String, String> {
    start_cluster("127.0.0.1", None)
}

/// [`start_private`], listening on `listen_addresses` (PostgreSQL's list) and trusting
/// connections from `trusted` (a network in CIDR form) as well as from loopback.
pub(crate) fn start_cluster(listen_addresses: &str, trusted: Option<&str>) -> Result<String, String> {
    let bin = server_binaries().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
    let port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("no free port: {e}"))?.port();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("oncommit-pg-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if as_root {
        // initdb refuses to run as root; the cluster belongs to the postgres user.
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir))?;
    }
    let data = dir.join("data");
    let sh = |script: String| {
        let mut cmd = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.arg("-c");
            c
        };
        cmd.arg(script);
        cmd
    };
    let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
    run(&mut sh(format!("{} -D {} -U postgres --auth=trust -E UTF8 >/dev/null", initdb.display(), data.display())))?;
    if let Some(network) = trusted {
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).map_err(|e| format!("read {}: {e}", hba.display()))?;
        rules.push_str(&format!("host all all {network} trust\n"));
        std::fs::write(&hba, rules).map_err(|e| format!("write {}: {e}", hba.display()))?;
    }
    let options = format!("-p {port} -k {} -c listen_addresses={listen_addresses} -c fsync=off", dir.display());
    run(&mut sh(format!(
        "{} -D {} -o '{options}' -l {}/log -w start >/dev/null",
        pg_ctl.display(),
        data.display(),
        dir.display()
    )))?;
    let watchdog = format!(
        "while [ -d /proc/{pid} ]; do sleep 1; done; {} -D {} -m fast stop; rm -rf {}",
        pg_ctl.display(),
        data.display(),
        dir.display(),
        pid = std::process::id()
    );
    sh(watchdog).spawn().map_err(|e| format!("start the watchdog: {e}"))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} exited with {status}")) }
}
