//! What the P2P network shows the rest of the node (`/status`, `pyrsia peers`), as a trait so
//! that the HTTP frontend and the lite mirror need no libp2p: the full node's network
//! (package `pyrsia-net`) implements it.

use serde::{Deserialize, Serialize};

/// One connected peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's libp2p id.
    pub peer_id: String,
    /// Addresses it is connected on.
    pub addresses: Vec<String>,
    /// Pyrsia protocol bytes sent to it (log sync and gossip).
    pub bytes_sent: u64,
    /// Pyrsia protocol bytes received from it.
    pub bytes_received: u64,
    /// Its gossipsub peer score when it last sent gossip or was struck, rounded: below −80 its
    /// gossip is ignored (graylisted); `None` before then.
    pub gossip_score: Option<i64>,
}

/// The operator's limits on peer traffic, as the network applies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLimits {
    /// Piece bytes per second served to peers (0: unlimited).
    pub max_upload_rate: u64,
    /// Piece bytes per second fetched from peers (0: unlimited).
    pub max_download_rate: u64,
    /// Connections established at once.
    pub max_peers: u32,
}

/// The network's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// This node's libp2p id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen_addresses: Vec<String>,
    /// Whether mDNS discovery is on.
    pub mdns: bool,
    /// Connected peers, sorted by id.
    pub peers: Vec<PeerInfo>,
    /// Peers blocked for misbehaving.
    pub blocked: Vec<String>,
    /// The operator's limits.
    #[serde(default)]
    pub limits: PeerLimits,
}

/// A running network, seen from the node.
pub trait NetworkView: Send + Sync {
    /// A snapshot of its state.
    fn status(&self) -> NetworkStatus;
}
