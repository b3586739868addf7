//! A private primary with a synchronous streaming standby, for failover tests.

use std::path::Path;

use crate::node::Cluster;

/// Two private clusters on 127.0.0.1: a primary, and a standby made from it with
/// `pg_basebackup -R` that streams from it synchronously (a commit the primary acknowledged
/// is on the standby too). The roles can then be changed as a failover does; both are
/// stopped, and their directories removed, on drop.
pub struct ReplicatedPair {
    /// The first primary's port.
    pub first: u16,
    /// The first standby's port.
    pub second: u16,
    nodes: [Cluster; 2],
}

impl ReplicatedPair {
    /// Starts the primary (on `first`) and its standby (on `second`).
    pub fn start() -> Result<ReplicatedPair, String> {
        let primary = Cluster::init()?;
        primary.start_with("-c synchronous_standby_names='*'")?;
        let standby = Cluster::standby_of(&primary)?;
        standby.start()?;
        Ok(ReplicatedPair { first: primary.port, second: standby.port, nodes: [primary, standby] })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self, port: u16) -> String {
        self.node(port).url()
    }

    /// Stops the node on `port` as a crash does (`pg_ctl stop -m immediate`).
    pub fn crash(&self, port: u16) -> Result<(), String> {
        self.node(port).crash()
    }

    /// Promotes the standby on `port` to primary, and waits until it takes writes.
    pub fn promote(&self, port: u16) -> Result<(), String> {
        self.node(port).promote()
    }

    /// Brings the old primary on `old` back as a standby of `new`: rewound to the new
    /// primary's timeline (`pg_rewind`), then started streaming from it.
    pub fn rejoin_as_standby(&self, old: u16, new: u16) -> Result<(), String> {
        self.node(old).rejoin_as_standby_of(self.node(new))
    }

    /// The first node's directory, beside its data and log: a place for a test's own files.
    pub fn dir(&self) -> &Path {
        self.nodes[0].dir()
    }

    fn node(&self, port: u16) -> &Cluster {
        self.nodes.iter().find(|n| n.port == port).unwrap_or_else(|| panic!("no node of the pair on port {port}"))
    }
}
