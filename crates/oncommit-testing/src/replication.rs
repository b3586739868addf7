//! A private primary with a synchronous streaming standby, for failover tests.

use std::path::{Path, PathBuf};

use crate::cluster::{as_postgres, own, run, scratch, server_binaries};

/// Two private clusters on 127.0.0.1: a primary, and a standby made from it with
/// `pg_basebackup -R` that streams from it synchronously (a commit the primary acknowledged
/// is on the standby too). The roles can then be changed as a failover does; both are
/// stopped, and their directories removed, on drop.
pub struct ReplicatedPair {
    /// The first primary's port.
    pub first: u16,
    /// The first standby's port.
    pub second: u16,
    dir: PathBuf,
    bin: PathBuf,
}

/// Settings every node starts with: replication (`pg_rewind` needs the data checksums that
/// `initdb` turns on too).
const NODE: &str = "-c wal_level=replica -c fsync=off \
                    -c listen_addresses=127.0.0.1 -c wal_keep_size=256MB";

impl ReplicatedPair {
    /// Starts the primary (on `first`) and its standby (on `second`).
    pub fn start() -> Result<ReplicatedPair, String> {
        let bin = server_binaries().ok_or("no PostgreSQL server binaries under /usr/lib/postgresql")?;
        let (dir, first) = scratch("pair")?;
        let second = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let pair = ReplicatedPair { first, second, dir, bin };
        let (a, b) = (pair.data(first), pair.data(second));
        pair.sh(&format!(
            "{} -D {} -U postgres --auth=trust -E UTF8 --data-checksums >/dev/null",
            pair.tool("initdb"),
            a.display()
        ))?;
        pair.start_node(first, "-c synchronous_standby_names='*'")?;
        pair.sh(&format!(
            "{} -h 127.0.0.1 -p {first} -U postgres -D {} -R -X stream >/dev/null 2>&1",
            pair.tool("pg_basebackup"),
            b.display()
        ))?;
        pair.start_node(second, "")?;
        let watchdog = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; [ -d {dir} ] || exit 0; \
             {ctl} -D {a} -m immediate stop >/dev/null 2>&1; {ctl} -D {b} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            ctl = pair.tool("pg_ctl"),
            a = a.display(),
            b = b.display(),
            dir = pair.dir.display(),
        );
        as_postgres(&watchdog).spawn().map_err(|e| format!("start the watchdog: {e}"))?;
        Ok(pair)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }

    /// Stops the node on `port` as a crash does (`pg_ctl stop -m immediate`).
    pub fn crash(&self, port: u16) -> Result<(), String> {
        self.sh(&format!("{} -D {} -m immediate stop >/dev/null", self.tool("pg_ctl"), self.data(port).display()))
    }

    /// Promotes the standby on `port` to primary, and waits until it takes writes.
    pub fn promote(&self, port: u16) -> Result<(), String> {
        self.sh(&format!("{} -D {} -w promote >/dev/null", self.tool("pg_ctl"), self.data(port).display()))
    }

    /// Brings the old primary on `old` back as a standby of `new`: rewound to the new
    /// primary's timeline (`pg_rewind`), then started streaming from it.
    pub fn rejoin_as_standby(&self, old: u16, new: u16) -> Result<(), String> {
        let data = self.data(old);
        let log = self.dir.join("rewind.log");
        self.sh(&format!(
            "{} --target-pgdata={} --source-server='host=127.0.0.1 port={new} user=postgres dbname=postgres' >{} 2>&1",
            self.tool("pg_rewind"),
            data.display(),
            log.display()
        ))
        .map_err(|e| format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()))?;
        let conf = data.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str(&format!("\nprimary_conninfo = 'host=127.0.0.1 port={new} user=postgres'\n"));
        std::fs::write(&conf, text).map_err(|e| format!("write {}: {e}", conf.display()))?;
        std::fs::write(data.join("standby.signal"), "").map_err(|e| format!("write standby.signal: {e}"))?;
        own(&data)?;
        self.start_node(old, "")
    }

    fn data(&self, port: u16) -> PathBuf {
        self.dir.join(format!("node-{port}"))
    }

    fn tool(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    fn start_node(&self, port: u16, extra: &str) -> Result<(), String> {
        let data = self.data(port);
        let log = self.dir.join(format!("log-{port}"));
        self.sh(&format!(
            "{} -D {} -o \"-p {port} -k {} {NODE} {extra}\" -l {} -w start >/dev/null",
            self.tool("pg_ctl"),
            data.display(),
            self.dir.display(),
            log.display()
        ))
        .map_err(|e| format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()))
    }

    fn sh(&self, script: &str) -> Result<(), String> {
        run(&mut as_postgres(script)).map_err(|e| format!("{e}; logs in {}", self.dir.display()))
    }

    /// The directory holding both nodes and their logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ReplicatedPair {
    fn drop(&mut self) {
        for port in [self.first, self.second] {
            let _ = self.sh(&format!(
                "{} -D {} -m immediate stop >/dev/null 2>&1",
                self.tool("pg_ctl"),
                self.data(port).display()
            ));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
