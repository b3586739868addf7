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

/// [`start_private`] with `ssl = on`: the server's certificate names `localhost` only and is
/// signed by a CA made for it. Returns the URL and the cluster's directory, which holds that
/// CA as `ca.pem`, and `other-ca.pem`, a CA that signed nothing.
pub(crate) fn start_tls() -> Result<(String, PathBuf), String> {
    start("127.0.0.1", None, true)
}

/// [`start_private`], listening on `listen_addresses` (PostgreSQL's list) and trusting
/// connections from `trusted` (a network in CIDR form) as well as from loopback.
pub(crate) fn start_cluster(listen_addresses: &str, trusted: Option<&str>) -> Result<String, String> {
    start(listen_addresses, trusted, false).map(|(url, _)| url)
}

fn start(listen_addresses: &str, trusted: Option<&str>, tls: bool) -> Result<(String, PathBuf), String> {
    let bin = server_binaries().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
    let port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("no free port: {e}"))?.port();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("oncommit-pg-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if tls {
        make_certificates(&dir)?;
    }
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
    let mut options = format!("-p {port} -k {} -c listen_addresses={listen_addresses} -c fsync=off", dir.display());
    if tls {
        options.push_str(&format!(
            " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key",
            dir.display()
        ));
    }
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
    Ok((format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir))
}

/// A CA, a server certificate it signs for `localhost` (no IP address: connecting to
/// 127.0.0.1 with `verify-full` must fail), and an unrelated CA, with the openssl tool.
fn make_certificates(dir: &Path) -> Result<(), String> {
    let openssl =
        |args: &[&str]| run(Command::new("openssl").args(args).current_dir(dir).stderr(std::process::Stdio::null()));
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "other-ca"] {
        let (key, pem, subject) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=oncommit test {ca}"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject, "-keyout", &key, "-out", &pem];
        args.extend(ec);
        args.extend([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"];
    args.extend(ec);
    openssl(&args)?;
    let ext = dir.join("server.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        .map_err(|e| format!("write {}: {e}", ext.display()))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    // The server refuses a key others can read.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod server.key: {e}"))
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
