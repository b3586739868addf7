//! Finding a PostgreSQL server for the tests, or starting a private one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// The server the tests use: `configured` when it lets the tests in, else a private trust
/// cluster. Returns its URL and a sentence saying which it is and why.
pub(crate) fn choose_server(configured: &str) -> Result<(String, String), String> {
    let shown = redact(configured);
    match login(configured) {
        Ok(()) => Ok((configured.to_owned(), format!("PostgreSQL tests use the server at {shown}"))),
        Err(why) => {
            let url = start_private().map_err(|e| {
                format!("{shown} cannot be used ({why}), and a private cluster could not be started ({e})")
            })?;
            let note = format!("{shown} cannot be used ({why}); PostgreSQL tests use a private trust cluster at {url}");
            Ok((url, note))
        }
    }
}

/// Logs in to `url` and out again: a server that answers but refuses the tests' role (a fresh
/// Debian cluster authenticates TCP with scram-sha-256, and `postgres` has no password) is
/// no more use than none. Runs on a thread of its own, since the caller may be inside a
/// runtime that must not block.
fn login(url: &str) -> Result<(), String> {
    let url = url.to_owned();
    let check = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("start a runtime: {e}"))?;
        runtime.block_on(async {
            match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
                Ok(Ok(conn)) => {
                    conn.close().await.ok();
                    Ok(())
                }
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err("no answer within 10 s".to_owned()),
            }
        })
    });
    check.join().map_err(|_| "the connection check panicked".to_owned())?
}

/// `url` without its password, for the harness's messages.
fn redact(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| Some((scheme, rest.split_once('@')?))) {
        Some((scheme, (userinfo, host))) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

/// Starts a throwaway cluster for this test process with the newest installed server
/// binaries, and returns the URL of its `postgres` database. A watchdog stops it when the
/// test process exits.
pub(crate) fn start_private() -> Result<String, String> {
    start_cluster("127.0.0.1", None)
}

/// A private cluster set up as Debian's own: TCP clients authenticate with scram-sha-256,
/// and the `postgres` role has no password, so no one gets in over TCP.
#[cfg(test)]
pub(crate) fn start_scram_only() -> Result<String, String> {
    start_with("127.0.0.1", None, false, "--auth-local=trust --auth-host=scram-sha-256").map(|(url, _)| url)
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
    start_with(listen_addresses, trusted, tls, "--auth=trust")
}

fn start_with(
    listen_addresses: &str,
    trusted: Option<&str>,
    tls: bool,
    auth: &str,
) -> Result<(String, PathBuf), String> {
    let bin = server_binaries().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
    let (dir, port) = scratch("pg")?;
    if tls {
        make_certificates(&dir)?;
        own(&dir)?;
    }
    let data = dir.join("data");
    let sh = |script: String| as_postgres(&script);
    let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
    run(&mut sh(format!("{} -D {} -U postgres {auth} -E UTF8 >/dev/null", initdb.display(), data.display())))?;
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
    let cleanup = format!("{} -D {} -m fast stop; rm -rf {}", pg_ctl.display(), data.display(), dir.display());
    on_exit(&cleanup, as_postgres)?;
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

/// A directory of its own under the temporary directory (`oncommit-{what}-PID-N`), owned
/// by the postgres user when running as root, and a free port on 127.0.0.1.
pub(crate) fn scratch(what: &str) -> Result<(PathBuf, u16), String> {
    let port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("no free port: {e}"))?.port();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("oncommit-{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    own(&dir)?;
    Ok((dir, port))
}

/// Whether the tests run as root (as the test machine and CI do).
pub(crate) fn as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Gives `dir` to the postgres user when running as root: PostgreSQL's tools refuse to run
/// as root, and its server refuses files it does not own.
pub(crate) fn own(dir: &Path) -> Result<(), String> {
    if as_root() { run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir)) } else { Ok(()) }
}

/// Runs the shell script `cleanup` (through `shell`, which makes `sh -c` of a script) once
/// this test process ends, however it ends: the watchdog blocks reading a pipe that only
/// this process holds open, and the end of the process closes it. No polling for the pid.
/// Returns the watchdog, for an owner that stops it (and cleans up) earlier.
pub(crate) fn on_exit(cleanup: &str, shell: impl FnOnce(&str) -> Command) -> Result<std::process::Child, String> {
    let mut watchdog = shell(&format!("read _; {cleanup}"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("start the watchdog: {e}"))?;
    // Open until the process ends: the write end is close-on-exec, so no other child holds it.
    std::mem::forget(watchdog.stdin.take());
    Ok(watchdog)
}

/// `sh -c script`, as the postgres user when running as root.
pub(crate) fn as_postgres(script: &str) -> Command {
    let mut cmd = if as_root() {
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
}

pub(crate) fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} exited with {status}")) }
}

#[cfg(test)]
mod tests {
    use super::{choose_server, redact, start_scram_only};

    /// A fresh Debian server on the configured URL, which answers but lets no one in over
    /// TCP: the tests go to a private cluster, and say so.
    #[test]
    fn a_server_that_refuses_the_tests_role_is_passed_over() {
        let scram = start_scram_only().unwrap_or_else(|e| panic!("start a scram-only cluster: {e}"));
        let (url, note) = choose_server(&scram).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(url, scram, "{note}");
        assert!(note.contains("password authentication failed"), "{note}");
        assert!(note.contains("private trust cluster"), "{note}");
        let (same, note) = choose_server(&url).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(same, url, "{note}");
    }

    #[test]
    fn messages_show_no_password() {
        assert_eq!(redact("postgres://u:secret@h:1/db"), "postgres://u@h:1/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
