//! How the network is set up: where it listens (TCP, and QUIC on the same port), whom it
//! dials first, whether it looks for peers on the LAN.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

/// The default P2P listen address.
pub const DEFAULT_LISTEN: &str = "/ip4/0.0.0.0/tcp/44000";

/// Network settings (from `pyrsia node` options).
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Listen address.
    pub listen: Multiaddr,
    /// Bootstrap peers, with or without `/p2p/<id>`.
    pub peers: Vec<Multiaddr>,
    /// mDNS discovery on the LAN.
    pub mdns: bool,
    /// QUIC next to TCP: the node also listens on the UDP port of the same number and dials
    /// peers beyond its own network over QUIC first (`--no-quic` turns it off).
    pub quic: bool,
    /// QUIC first for peers on the node's own network too (loopback, private and link-local
    /// addresses; `--quic-on-lan`). Off, they are dialled over TCP first, which costs less
    /// CPU per byte at LAN round trips.
    pub quic_on_lan: bool,
    /// What this node gives the network at most.
    pub limits: NetLimits,
    /// Addresses the operator says peers reach this node at (`--external-addr`): confirmed
    /// at start, without an AutoNAT test.
    pub external_addresses: Vec<Multiaddr>,
    /// Serve as a relay for private nodes, within bounded reservations and circuits
    /// (`--relay-server`; off by default).
    pub relay_server: bool,
    /// Carry piece bytes on piece links, dedicated TLS connections beside libp2p's
    /// (`--no-piece-links` turns them off: pieces then go over libp2p only).
    pub piece_links: bool,
    /// The TCP port piece links listen on (`--piece-link-port`; 0: a free port picked at
    /// start). A chosen port the node cannot listen on stops it from starting.
    pub piece_link_port: u16,
}

/// The operator's resource limits on peer traffic (`--max-upload-rate`,
/// `--max-download-rate`, `--max-peers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetLimits {
    /// Piece bytes per second served to peers, all together (0: unlimited).
    pub max_upload_rate: u64,
    /// Piece bytes per second fetched from peers, all together (0: unlimited).
    pub max_download_rate: u64,
    /// Connections established at once (a peer normally holds one).
    pub max_peers: u32,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_upload_rate: 0,
            max_download_rate: 0,
            max_peers: crate::behaviour::MAX_CONNECTIONS,
        }
    }
}

impl NetConfig {
    /// Parses the option values; says which one is wrong.
    pub fn parse(listen: &str, peers: &[String], mdns: bool) -> Result<NetConfig, String> {
        let listen = listen
            .parse()
            .map_err(|e| format!("--p2p-listen {listen}: {e}"))?;
        let peers = peers
            .iter()
            .map(|p| p.parse().map_err(|e| format!("--peer {p}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(NetConfig {
            listen,
            peers,
            mdns,
            quic: true,
            quic_on_lan: false,
            limits: NetLimits::default(),
            external_addresses: Vec::new(),
            relay_server: false,
            piece_links: true,
            piece_link_port: 0,
        })
    }

    /// Which transport peers are dialled on first, as these settings say.
    pub(crate) fn dial_order(&self) -> crate::dial_order::DialOrder {
        crate::dial_order::DialOrder {
            quic: self.quic,
            quic_on_lan: self.quic_on_lan,
        }
    }

    /// Every address the node listens on: the TCP one given, and with QUIC on, the QUIC one on
    /// the same host and port number (UDP).
    pub fn listen_addresses(&self) -> Vec<Multiaddr> {
        let mut addresses = vec![self.listen.clone()];
        if self.quic
            && let Some(quic) = quic_twin(&self.listen)
        {
            addresses.push(quic);
        }
        addresses
    }
}

/// The QUIC address on the same host and port number as the TCP address `tcp`
/// (`/ip4/A/tcp/P[/p2p/ID]` → `/ip4/A/udp/P/quic-v1[/p2p/ID]`), or `None` when `tcp` is not a
/// TCP address. A node with QUIC on listens on both, so a peer's TCP bootstrap address names
/// its QUIC one too.
pub fn quic_twin(tcp: &Multiaddr) -> Option<Multiaddr> {
    let mut twin = Multiaddr::empty();
    let mut found = false;
    for part in tcp.iter() {
        match part {
            Protocol::Tcp(port) if !found => {
                found = true;
                twin.push(Protocol::Udp(port));
                twin.push(Protocol::QuicV1);
            }
            Protocol::Tcp(_)
            | Protocol::Udp(_)
            | Protocol::Quic
            | Protocol::QuicV1
            | Protocol::Ws(_)
            | Protocol::Wss(_)
            | Protocol::P2pCircuit => return None,
            other => twin.push(other),
        }
    }
    found.then_some(twin)
}

/// The bootstrap-peer file in the data dir: one multiaddr per line, `#` starts a comment.
pub const PEERS_FILE: &str = "peers";

/// The bootstrap peers listed in `data_dir/peers` (none when the file does not exist).
pub fn peers_file(data_dir: &std::path::Path) -> Result<Vec<String>, String> {
    let path = data_dir.join(PEERS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_names_the_bad_one() {
        let ok = NetConfig::parse(
            DEFAULT_LISTEN,
            &[
                "/ip4/127.0.0.1/tcp/44001".into(),
                "/ip4/10.0.0.2/tcp/44000/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                    .into(),
            ],
            true,
        )
        .unwrap();
        assert_eq!(ok.peers.len(), 2);
        let err = NetConfig::parse(DEFAULT_LISTEN, &["not-an-addr".into()], true).unwrap_err();
        assert!(err.starts_with("--peer not-an-addr"), "{err}");
        assert!(NetConfig::parse("tcp/1", &[], false).is_err());
    }

    #[test]
    fn a_tcp_address_has_a_quic_twin_on_the_same_port() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let twin = |a: &str| quic_twin(&a.parse().unwrap()).map(|m| m.to_string());
        assert_eq!(
            twin(&format!("/ip4/10.0.0.2/tcp/44000/p2p/{id}")).as_deref(),
            Some(format!("/ip4/10.0.0.2/udp/44000/quic-v1/p2p/{id}").as_str())
        );
        assert_eq!(
            twin("/dns4/boot.example.net/tcp/44000").as_deref(),
            Some("/dns4/boot.example.net/udp/44000/quic-v1")
        );
        assert_eq!(twin("/ip4/10.0.0.2/udp/44000/quic-v1"), None);
        assert_eq!(twin("/ip4/10.0.0.2/tcp/44000/ws"), None);
        let mut config = NetConfig::parse(DEFAULT_LISTEN, &[], false).unwrap();
        assert_eq!(
            config
                .listen_addresses()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["/ip4/0.0.0.0/tcp/44000", "/ip4/0.0.0.0/udp/44000/quic-v1"]
        );
        config.quic = false;
        assert_eq!(config.listen_addresses().len(), 1);
    }

    #[test]
    fn the_peers_file_lists_one_address_per_line() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(peers_file(dir.path()).unwrap(), Vec::<String>::new());
        std::fs::write(
            dir.path().join(PEERS_FILE),
            "# the office cache\n/ip4/10.0.0.2/tcp/44000\n\n  /ip6/fd00::2/tcp/44000  # rack 2\n",
        )
        .unwrap();
        assert_eq!(
            peers_file(dir.path()).unwrap(),
            ["/ip4/10.0.0.2/tcp/44000", "/ip6/fd00::2/tcp/44000"]
        );
    }
}
