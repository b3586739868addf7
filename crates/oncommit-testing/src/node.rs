//! A private PostgreSQL cluster the test starts, stops, crashes and freezes at will.

use std::path::PathBuf;
use std::process::Command;

use crate::cluster::{as_postgres, on_exit, own, run, scratch, server_binaries};

/// A private cluster on 127.0.0.1 that trusts its clients, made (`initdb`) but not started:
/// for tests of what oncommit does while its database is down, late or silent. Stopped,
/// thawed and removed on drop.
pub struct Cluster {
    /// The port it listens on once started.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Cluster {
    /// Makes the cluster's data directory; nothing listens on its port yet.
    pub fn init() -> Result<Cluster, String> {
        let cluster = Cluster::empty()?;
        cluster.sh(&format!(
            "{} -D {} -U postgres --auth=trust -E UTF8 --data-checksums >/dev/null",
            cluster.tool("initdb"),
            cluster.data().display()
        ))?;
        Ok(cluster)
    }

    /// A directory and a port, with no data yet (`init`, or a standby's base backup), and
    /// the watchdog that stops the server when the test process ends.
    fn empty() -> Result<Cluster, String> {
        let bin = server_binaries().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let (dir, port) = scratch("node")?;
        let cluster = Cluster { port, dir, bin };
        let cleanup = format!(
            "[ -d {dir} ] || exit 0; \
             kill -CONT $(head -n 1 {data}/postmaster.pid 2>/dev/null) 2>/dev/null; \
             {ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            ctl = cluster.tool("pg_ctl"),
            data = cluster.data().display(),
            dir = cluster.dir.display(),
        );
        on_exit(&cleanup, as_postgres)?;
        Ok(cluster)
    }

    /// A standby of `primary` (running): its base backup (`pg_basebackup -R`), not started.
    pub(crate) fn standby_of(primary: &Cluster) -> Result<Cluster, String> {
        let standby = Cluster::empty()?;
        standby.sh(&format!(
            "{} -h 127.0.0.1 -p {} -U postgres -D {} -R -X stream >/dev/null 2>&1",
            standby.tool("pg_basebackup"),
            primary.port,
            standby.data().display()
        ))?;
        Ok(standby)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts it, and waits until it takes connections.
    pub fn start(&self) -> Result<(), String> {
        self.start_with("")
    }

    /// [`Cluster::start`] with more server settings (`-c name=value …`).
    pub(crate) fn start_with(&self, settings: &str) -> Result<(), String> {
        let log = self.dir.join("log");
        self.sh(&format!(
            "{} -D {} -o \"-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c wal_keep_size=256MB {settings}\" \
             -l {} -w start >/dev/null",
            self.tool("pg_ctl"),
            self.data().display(),
            self.port,
            self.dir.display(),
            log.display()
        ))
        .map_err(|e| format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    /// Promotes this standby to primary, and waits until it takes writes.
    pub(crate) fn promote(&self) -> Result<(), String> {
        self.sh(&format!("{} -D {} -w promote >/dev/null", self.tool("pg_ctl"), self.data().display()))
    }

    /// Brings this old primary (stopped) back as a standby of `primary`: rewound to its
    /// timeline (`pg_rewind`, which the data checksums `init` turns on allow), then started
    /// streaming from it.
    pub(crate) fn rejoin_as_standby_of(&self, primary: &Cluster) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.join("rewind.log");
        self.sh(&format!(
            "{} --target-pgdata={} --source-server='host=127.0.0.1 port={} user=postgres dbname=postgres' >{} 2>&1",
            self.tool("pg_rewind"),
            data.display(),
            primary.port,
            log.display()
        ))
        .map_err(|e| format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()))?;
        let conf = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str(&format!("\nprimary_conninfo = 'host=127.0.0.1 port={} user=postgres'\n", primary.port));
        std::fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;
        std::fs::write(data.join("standby.signal"), "").map_err(|e| format!("write standby.signal: {e}"))?;
        own(&data)?;
        self.start()
    }

    /// The directory holding its data and log.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Stops it as a crash does (`pg_ctl stop -m immediate`): connections are cut, and new
    /// ones refused.
    pub fn crash(&self) -> Result<(), String> {
        self.sh(&format!("{} -D {} -m immediate stop >/dev/null", self.tool("pg_ctl"), self.data().display()))
    }

    /// Freezes every process of the server (SIGSTOP): connections stay open and nothing
    /// answers, as behind a silent network.
    pub fn freeze(&self) -> Result<(), String> {
        self.signal("STOP")
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) -> Result<(), String> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> Result<(), String> {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .map_err(|e| format!("the server is not running: {e}"))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        run(Command::new("pkill").args([&format!("-{name}"), "-P", &pid]))?;
        run(Command::new("kill").args([&format!("-{name}"), &pid]))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn sh(&self, script: &str) -> Result<(), String> {
        run(&mut as_postgres(script))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.thaw();
        let _ =
            self.sh(&format!("{} -D {} -m immediate stop >/dev/null 2>&1", self.tool("pg_ctl"), self.data().display()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
