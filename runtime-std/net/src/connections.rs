//! Each peer's open connections, where they come from and when they were established, so
//! that a peer that comes back on a new connection is not still written to on a connection it
//! left dead.
//!
//! Over QUIC a killed peer sends nothing: its connection stays open here until QUIC's idle
//! timeout ends it. When the peer restarts and connects again, libp2p keeps both
//! connections, and gossipsub and request-response go on handing messages to the dead one
//! (gossipsub's handlers share one queue per peer; request-response picks a connection by
//! request id). So a new connection the peer dialled closes its connections from the same
//! remote address (a restarted node dials from its listening port, over QUIC and over TCP)
//! that were established more than [`SUPERSEDED_AFTER`] before it. Connections from other
//! addresses stay: an AutoNAT dial-back comes from a new port, a relayed circuit from the
//! relay. A connection this node dialled supersedes nothing: it says nothing about the peer
//! having restarted, and this node's own AutoNAT dial-back to a client reaches the client's
//! listening address, the remote address of the working connection the client dialled from
//! it (closing that one dropped pieces in flight). Two peers dialling each other at once
//! connect within the handshake timeout of each other and keep both connections.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// How much older than a peer's new connection another of its connections must be to be
/// closed as superseded: longer than a handshake takes (QUIC gives up after 2 s), shorter
/// than a restarted process takes to start and dial.
pub(crate) const SUPERSEDED_AFTER: Duration = Duration::from_secs(3);

/// One open connection.
struct Open {
    id: ConnectionId,
    remote: Multiaddr,
    at: Instant,
    /// Whether it is a relay's circuit, and the relay when known.
    relayed: bool,
    relay: Option<PeerId>,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Connections {
    by_peer: HashMap<PeerId, Vec<Open>>,
}

impl Connections {
    /// Records a connection on `endpoint` established at `now`; returns the peer's
    /// connections it supersedes (only one the peer dialled supersedes any), which the
    /// caller closes.
    pub(crate) fn established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        now: Instant,
    ) -> Vec<ConnectionId> {
        let remote = endpoint.get_remote_address();
        let (relayed, relay) = crate::relay::circuit_of(endpoint);
        let open = self.by_peer.entry(peer).or_default();
        let superseded = open
            .iter()
            .filter(|o| {
                endpoint.is_listener()
                    && o.remote == *remote
                    && now.saturating_duration_since(o.at) > SUPERSEDED_AFTER
            })
            .map(|o| o.id)
            .collect();
        open.push(Open {
            id,
            remote: remote.clone(),
            at: now,
            relayed,
            relay,
        });
        superseded
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
    fn a_much_newer_connection_from_the_same_address_supersedes_the_older_ones() {
        let mut connections = Connections::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let home: Multiaddr = "/ip4/10.0.0.2/udp/44000/quic-v1".parse().unwrap();
        let elsewhere: Multiaddr = "/ip4/10.0.0.2/tcp/51234".parse().unwrap();
        let start = Instant::now();
        let id = ConnectionId::new_unchecked;
        assert!(
            connections
                .established(peer, id(1), &dialled(&home), start)
                .is_empty()
        );
        // Both sides dialled at once: the second connection comes within the handshake.
        let soon = start + Duration::from_millis(400);
        assert!(
            connections
                .established(peer, id(2), &dialled(&home), soon)
                .is_empty()
        );
        // Another peer's connections are its own.
        assert!(
            connections
                .established(other, id(3), &dialled(&home), soon)
                .is_empty()
        );
        // A connection from another port (an AutoNAT dial-back) supersedes nothing.
        let later = start + SUPERSEDED_AFTER + Duration::from_secs(2);
        assert!(
            connections
                .established(peer, id(4), &dialled(&elsewhere), later)
                .is_empty()
        );
        // This node dialled the peer's listening address again (an AutoNAT server's
        // dial-back to its client): the peer did not restart, nothing is superseded.
        assert!(
            connections
                .established(peer, id(7), &dialled(&home), later)
                .is_empty()
        );
        connections.closed(&peer, id(7));
        // The peer restarted and dialled again from its port: both older ones are stale.
        assert_eq!(
            connections.established(peer, id(5), &accepted(&home), later),
            [id(1), id(2)]
        );
        // Closed connections are forgotten; the newest are kept.
        connections.closed(&peer, id(1));
        connections.closed(&peer, id(2));
        let much_later = later + SUPERSEDED_AFTER * 2;
        assert_eq!(
            connections.established(peer, id(6), &accepted(&home), much_later),
            [id(5)]
        );
        for i in [4, 5, 6] {
            connections.closed(&peer, id(i));
        }
        assert!(!connections.by_peer.contains_key(&peer));
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
