//! Each peer's open connections: where they come from, whether through a relay, and which
//! belong to a process of the peer that is gone (core's [`pyrsia_core::restarts`] decides;
//! this tracks libp2p's connections for it and answers the event loop's questions about
//! paths and addresses).

use std::collections::HashMap;
use std::time::Instant;

use libp2p::core::ConnectedPoint;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use pyrsia_core::restarts::{Established, Restarts, boot_of};

/// One open connection.
struct Open {
    id: ConnectionId,
    remote: Multiaddr,
    /// Whether it is a relay's circuit, and the relay when known.
    relayed: bool,
    relay: Option<PeerId>,
}

/// See the module documentation.
pub(crate) struct Connections {
    by_peer: HashMap<PeerId, Vec<Open>>,
    restarts: Restarts<PeerId, ConnectionId, Multiaddr>,
    /// What core's times count from.
    epoch: Instant,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            by_peer: HashMap::new(),
            restarts: Restarts::default(),
            epoch: Instant::now(),
        }
    }
}

impl Connections {
    /// Records a connection on `endpoint` established at `now`; returns the peer's
    /// connections core's rule for peers without boot ids closes (only a connection the
    /// peer dialled closes any), which the caller closes.
    pub(crate) fn established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        now: Instant,
    ) -> Vec<ConnectionId> {
        let remote = endpoint.get_remote_address();
        let (relayed, relay) = crate::relay::circuit_of(endpoint);
        self.by_peer.entry(peer).or_default().push(Open {
            id,
            remote: remote.clone(),
            relayed,
            relay,
        });
        let micros = now.saturating_duration_since(self.epoch).as_micros();
        let connection = Established {
            id,
            remote: remote.clone(),
            inbound: endpoint.is_listener(),
            at: pyrsia_core::time::Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)),
        };
        self.restarts.established(peer, connection)
    }

    /// Identify arrived on connection `id` of `peer` with `agent` (its agent string); returns
    /// the peer's connections that belong to a process of it gone since (core's boot-id
    /// rule), which the caller closes.
    pub(crate) fn identified(
        &mut self,
        peer: &PeerId,
        id: ConnectionId,
        agent: &str,
    ) -> Vec<ConnectionId> {
        self.restarts.identified(peer, &id, boot_of(agent))
    }

    /// The remote addresses of `peer`'s open connections.
    pub(crate) fn addresses(&self, peer: &PeerId) -> impl Iterator<Item = &Multiaddr> {
        self.by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .map(|o| &o.remote)
    }

    /// Whether the connection `id` to `peer` goes through a relay.
    pub(crate) fn is_relayed(&self, peer: &PeerId, id: ConnectionId) -> bool {
        self.by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .any(|o| o.id == id && o.relayed)
    }

    /// How `peer` is reached now (core's [`pyrsia_core::reach::Path`]): directly with any
    /// direct connection; through a relay with only circuits (the relay of the first, an
    /// empty name when unknown); not connected without any.
    pub(crate) fn path(&self, peer: &PeerId) -> pyrsia_core::reach::Path<String> {
        use pyrsia_core::reach::Path;
        let open = self
            .by_peer
            .get(peer)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match open.iter().find(|o| !o.relayed) {
            Some(_) => Path::Direct,
            None => match open.first() {
                Some(o) => Path::Relayed(o.relay.map(|r| r.to_string()).unwrap_or_default()),
                None => Path::NotConnected,
            },
        }
    }

    /// `peer`'s relayed connections other than `except`, to close once a direct one is up.
    pub(crate) fn relayed_except(&self, peer: &PeerId, except: ConnectionId) -> Vec<ConnectionId> {
        self.by_peer
            .get(peer)
            .into_iter()
            .flatten()
            .filter(|o| o.id != except && o.relayed)
            .map(|o| o.id)
            .collect()
    }

    /// Forgets a closed connection.
    pub(crate) fn closed(&mut self, peer: &PeerId, id: ConnectionId) {
        self.restarts.closed(peer, &id);
        if let Some(open) = self.by_peer.get_mut(peer) {
            open.retain(|o| o.id != id);
            if open.is_empty() {
                self.by_peer.remove(peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::{Endpoint, transport::PortUse};

    fn dialled(address: &Multiaddr) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: address.clone(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    fn accepted(address: &Multiaddr) -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: "/ip4/10.0.0.1/udp/4001/quic-v1".parse().unwrap(),
            send_back_addr: address.clone(),
        }
    }

    #[test]
    fn the_peers_new_process_closes_its_old_ones_connections_and_its_own_dials_close_nothing() {
        use pyrsia_core::restarts::agent_string;
        let mut connections = Connections::default();
        let peer = PeerId::random();
        let home: Multiaddr = "/ip4/10.0.0.2/udp/44000/quic-v1".parse().unwrap();
        let new_port: Multiaddr = "/ip4/10.0.0.2/udp/44001/quic-v1".parse().unwrap();
        let id = ConnectionId::new_unchecked;
        let start = Instant::now();
        let old_agent = agent_string("0.1.0", None, 1);
        assert!(
            connections
                .established(peer, id(1), &dialled(&home), start)
                .is_empty()
        );
        assert!(connections.identified(&peer, id(1), &old_agent).is_empty());
        // Much later this node dials the peer's listening address again (an AutoNAT server's
        // dial-back): the same process answers, nothing closes.
        let later = start + std::time::Duration::from_secs(60);
        assert!(
            connections
                .established(peer, id(2), &dialled(&home), later)
                .is_empty()
        );
        assert!(connections.identified(&peer, id(2), &old_agent).is_empty());
        // The peer restarted on another port and dialled this node: its identify names a new
        // boot, and both connections of the old process are closed.
        assert!(
            connections
                .established(peer, id(3), &accepted(&new_port), later)
                .is_empty()
        );
        assert_eq!(
            connections.identified(&peer, id(3), &agent_string("0.1.0", None, 2)),
            [id(1), id(2)]
        );
        connections.closed(&peer, id(1));
        connections.closed(&peer, id(2));
        assert_eq!(
            connections.addresses(&peer).collect::<Vec<_>>(),
            [&new_port]
        );
        connections.closed(&peer, id(3));
        assert!(!connections.by_peer.contains_key(&peer));
    }

    #[test]
    fn a_peer_without_a_boot_id_is_superseded_by_its_dial_from_the_same_address() {
        let mut connections = Connections::default();
        let peer = PeerId::random();
        let home: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().unwrap();
        let id = ConnectionId::new_unchecked;
        let start = Instant::now();
        connections.established(peer, id(1), &accepted(&home), start);
        assert!(
            connections
                .identified(&peer, id(1), "rust-libp2p/0.48.0")
                .is_empty()
        );
        let later = start + std::time::Duration::from_secs(10);
        assert_eq!(
            connections.established(peer, id(2), &accepted(&home), later),
            [id(1)]
        );
    }

    #[test]
    fn a_peer_with_only_circuits_is_relayed_through_the_relay_either_way() {
        use pyrsia_core::reach::Path;
        let mut connections = Connections::default();
        let (peer, relay) = (PeerId::random(), PeerId::random());
        let id = ConnectionId::new_unchecked;
        let now = Instant::now();
        assert_eq!(connections.path(&peer), Path::NotConnected);
        // The peer dialled this node's circuit: libp2p gives `/p2p/<peer>` as the remote
        // address; the relay is in the local one.
        let inbound = ConnectedPoint::Listener {
            local_addr: format!("/ip4/10.77.0.10/tcp/4001/p2p/{relay}/p2p-circuit")
                .parse()
                .unwrap(),
            send_back_addr: format!("/p2p/{peer}").parse().unwrap(),
        };
        connections.established(peer, id(1), &inbound, now);
        assert!(connections.is_relayed(&peer, id(1)));
        assert_eq!(connections.path(&peer), Path::Relayed(relay.to_string()));
        // This node dialled the peer's circuit address.
        let outbound: Multiaddr =
            format!("/ip4/10.77.0.10/udp/4001/quic-v1/p2p/{relay}/p2p-circuit/p2p/{peer}")
                .parse()
                .unwrap();
        connections.established(peer, id(2), &dialled(&outbound), now);
        assert_eq!(connections.path(&peer), Path::Relayed(relay.to_string()));
        // A hole punched: one direct connection makes the path direct.
        let direct: Multiaddr = "/ip4/10.9.0.2/tcp/4001".parse().unwrap();
        connections.established(peer, id(3), &dialled(&direct), now);
        assert_eq!(connections.path(&peer), Path::Direct);
        assert_eq!(connections.relayed_except(&peer, id(3)), [id(1), id(2)]);
    }
}
