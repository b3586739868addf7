//! A PgBouncer in transaction pooling mode, started for a test in front of a server.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PgBouncer (Debian's `pgbouncer`) in front of a PostgreSQL server, with its stock
/// settings but `pool_mode = transaction`: no `ignore_startup_parameters`, no prepared
/// statement support. It trusts its clients, as the test server does. Stopped, and its
/// directory removed, on drop.
pub struct PgBouncer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Child,
    /// Stops it when the test process ends without dropping it; stopped itself on drop.
    watchdog: Child,
}

impl PgBouncer {
    /// Starts one in front of the server `server_url` points at (its host and port; every
    /// database name is passed through), with `settings` added to its `[pgbouncer]` section
    /// (`"max_client_conn = 500"`). Fails, saying why, when `pgbouncer` is not installed
    /// (`scripts/test` installs it) or does not come up within 10 s.
    pub fn start(server_url: &str, settings: &[&str]) -> Result<PgBouncer, String> {
        let server = server_url.split_once("://").map_or(server_url, |(_, rest)| rest);
        let server = server.rsplit_once('@').map_or(server, |(_, host)| host);
        let authority = server.split('/').next().unwrap_or_default();
        let (host, server_port) = authority.rsplit_once(':').unwrap_or((authority, "5432"));
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("pgbouncer is not installed (apt-get install pgbouncer; scripts/test does)")?;
        let (dir, port) = crate::cluster::scratch("pgbouncer")?;
        let ini = dir.join("pgbouncer.ini");
        let mut config = format!(
            "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {auth}\n\
             pool_mode = transaction\nlogfile = {log}\n",
            auth = dir.join("users.txt").display(),
            log = dir.join("log").display(),
        );
        for setting in settings {
            config.push_str(setting);
            config.push('\n');
        }
        std::fs::write(&ini, config).map_err(|e| format!("write {}: {e}", ini.display()))?;
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").map_err(|e| format!("write users.txt: {e}"))?;
        // PgBouncer refuses to run as root.
        crate::cluster::own(&dir)?;
        let mut cmd = if crate::cluster::as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", binary]);
            c
        } else {
            Command::new(binary)
        };
        let child = cmd
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start pgbouncer: {e}"))?;
        // A PgBouncer kept for a whole test process (in a static, never dropped) goes with
        // the process.
        let cleanup = format!(
            "pkill -P {child} 2>/dev/null; kill {child} 2>/dev/null; rm -rf {dir}",
            child = child.id(),
            dir = dir.display()
        );
        let watchdog = crate::cluster::on_exit(&cleanup, |script| {
            let mut sh = Command::new("sh");
            sh.args(["-c", script]);
            sh
        })?;
        let bouncer = PgBouncer { port, dir, child, watchdog };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("pgbouncer did not listen within 10 s: {}", bouncer.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bouncer)
    }

    /// The URL of `database` through this PgBouncer, without `pooler=`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// What it logged so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // As root the child is runuser, and PgBouncer its child: stop that first.
        let _ = Command::new("pkill").args(["-TERM", "-P", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
