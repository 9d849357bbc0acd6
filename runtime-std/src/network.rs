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
    /// How this node reaches it: `direct`, `hole-punched` (a direct connection DCUtR opened
    /// from a relayed one) or `relayed` (through a relay only: no pieces cross it).
    #[serde(default)]
    pub path: String,
    /// The relay whose circuits carry it, when `path` is `relayed` (a blob it holds reaches
    /// this node through that relay as a bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
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
    /// Whether peers can dial this node, as far as it knows.
    #[serde(default)]
    pub reachability: Reachability,
    /// TCP connections secured by each protocol since the node started.
    #[serde(default)]
    pub secured: SecuredConnections,
    /// This node's piece links (dedicated connections for piece bytes).
    #[serde(default)]
    pub piece_links: PieceLinkStatus,
}

/// What `/peers` shows of piece links: the port peers open them to (none with
/// `--no-piece-links`), how many are open each way, and pieces carried and refused since the
/// node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceLinkStatus {
    /// The port this node serves links on.
    pub port: Option<u16>,
    /// Links this node asks pieces on, ready now.
    pub asking: usize,
    /// Links peers opened to this node, open now.
    pub served: usize,
    /// Piece requests this node sent on links.
    pub pieces_asked: u64,
    /// Piece requests peers sent on links that this node admitted.
    pub pieces_served: u64,
    /// Links closed at once (over a limit) and requests refused (a peer not connected over
    /// libp2p, or blocked).
    pub refused: u64,
}

/// How many TCP connections (dialled or accepted) each security protocol has secured since
/// the node started: TLS 1.3 between nodes of this build, noise with a node of a build before
/// TLS was offered (or any peer that speaks only noise). QUIC connections are TLS 1.3 always
/// and are not counted here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecuredConnections {
    /// Secured by TLS 1.3 (libp2p-tls).
    pub tls: u64,
    /// Secured by noise.
    pub noise: u64,
}

/// Whether peers can dial this node: an address is confirmed when a peer dialled it back
/// (AutoNAT v2: the peer dials the address this node was seen at, from a new port) or the
/// operator gave it (`--external-addr`), and unreachable when a peer's dial-back failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reachability {
    /// What the addresses below add up to.
    pub state: ReachabilityState,
    /// Addresses peers reach this node at.
    pub confirmed: Vec<String>,
    /// Addresses a peer could not dial back (behind a NAT or a firewall).
    pub unreachable: Vec<String>,
    /// Relays this node holds a reservation on (peer ids): a private node is reached through
    /// them.
    #[serde(default)]
    pub relays: Vec<String>,
}

/// Whether a node can be dialled, in one word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReachabilityState {
    /// No test ended yet (no peer that answers AutoNAT so far), and no address was given.
    #[default]
    Unknown,
    /// Peers reach it at a confirmed address.
    Public,
    /// Every address tested failed: peers cannot dial it; it dials out.
    Private,
}

impl Reachability {
    /// Starts with the operator's addresses (`--external-addr`) confirmed.
    pub fn with_confirmed(confirmed: Vec<String>) -> Reachability {
        let mut r = Reachability {
            confirmed,
            ..Reachability::default()
        };
        r.settle();
        r
    }

    /// Records that peers reach this node at `address`.
    pub fn confirm(&mut self, address: String) {
        self.unreachable.retain(|a| *a != address);
        if !self.confirmed.contains(&address) {
            self.confirmed.push(address);
        }
        self.settle();
    }

    /// Records that `address` no longer counts as reachable (libp2p expired it).
    pub fn expire(&mut self, address: &str) {
        self.confirmed.retain(|a| a != address);
        self.settle();
    }

    /// Records that a peer could not dial this node back at `address`.
    pub fn refute(&mut self, address: String) {
        if !self.confirmed.contains(&address) && !self.unreachable.contains(&address) {
            self.unreachable.push(address);
        }
        self.settle();
    }

    /// `public` with a confirmed address, `private` when only failed tests ended, `unknown`
    /// before any ended.
    fn settle(&mut self) {
        self.state = match (self.confirmed.is_empty(), self.unreachable.is_empty()) {
            (false, _) => ReachabilityState::Public,
            (true, false) => ReachabilityState::Private,
            (true, true) => ReachabilityState::Unknown,
        };
    }
}

/// A running network, seen from the node.
pub trait NetworkView: Send + Sync {
    /// A snapshot of its state.
    fn status(&self) -> NetworkStatus;
}

#[cfg(test)]
mod reachability_tests {
    use super::Reachability;

    #[test]
    fn one_confirmed_address_makes_a_node_public() {
        use super::ReachabilityState::{Private, Public, Unknown};
        let mut r = Reachability::default();
        assert_eq!(r.state, Unknown);
        r.refute("/ip4/10.0.0.1/tcp/40000".into());
        r.refute("/ip4/10.0.0.1/tcp/40000".into());
        assert_eq!(r.state, Private);
        assert_eq!(r.unreachable.len(), 1);
        r.confirm("/ip4/10.0.0.1/tcp/40000".into());
        assert_eq!(r.state, Public);
        assert!(r.unreachable.is_empty());
        // A confirmed address is not refuted by a later failed test through another peer.
        r.refute("/ip4/10.0.0.1/tcp/40000".into());
        assert_eq!(r.state, Public);
        r.expire("/ip4/10.0.0.1/tcp/40000");
        assert_eq!(r.state, Unknown);
    }
}
