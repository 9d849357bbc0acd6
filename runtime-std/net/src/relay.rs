//! Relays and hole punching (issue 19, item 4): a public node started with `--relay-server`
//! holds bounded reservations and circuits for private nodes; a private node reserves a slot
//! on up to [`MAX_RESERVATIONS`] relays among its peers, so others reach it through a circuit,
//! and DCUtR then tries to turn the relayed connection into a direct one. A circuit is for
//! coordination only: its bytes and time are capped ([`MAX_CIRCUIT_BYTES`],
//! [`MAX_CIRCUIT_DURATION`]), and no piece crosses one (see `service.rs`).

use std::collections::HashMap;
use std::time::Duration;

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, relay};

/// Relays a private node holds a reservation on at once.
pub(crate) const MAX_RESERVATIONS: usize = 2;
/// Reservations a relay server holds at once, in all.
pub(crate) const MAX_RELAY_RESERVATIONS: usize = 128;
/// Circuits a relay server carries at once, in all.
pub(crate) const MAX_CIRCUITS: usize = 16;
/// Circuits at once from or to one peer.
pub(crate) const MAX_CIRCUITS_PER_PEER: usize = 4;
/// How long a circuit may last: long enough to coordinate a hole punch.
pub(crate) const MAX_CIRCUIT_DURATION: Duration = Duration::from_secs(120);
/// Bytes a circuit may carry either way: identify, gossip and log sync fit, a blob does not.
pub(crate) const MAX_CIRCUIT_BYTES: u64 = 128 * 1024;

/// The relay server's limits (libp2p's defaults, named here so the docs and tests can say
/// them).
pub(crate) fn server_config() -> relay::Config {
    relay::Config {
        max_reservations: MAX_RELAY_RESERVATIONS,
        max_circuits: MAX_CIRCUITS,
        max_circuits_per_peer: MAX_CIRCUITS_PER_PEER,
        max_circuit_duration: MAX_CIRCUIT_DURATION,
        max_circuit_bytes: MAX_CIRCUIT_BYTES,
        ..relay::Config::default()
    }
}

/// Whether `address` goes through a relay (`…/p2p-circuit…`).
pub(crate) fn is_relayed(address: &Multiaddr) -> bool {
    address.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether a connection on `endpoint` is a relay's circuit, and through which relay: the
/// peer named just before `/p2p-circuit` in the address dialled or, for a circuit another
/// peer opened to this node, in the local address (libp2p gives `/p2p/<peer>` as its remote
/// address).
pub(crate) fn circuit_of(endpoint: &ConnectedPoint) -> (bool, Option<PeerId>) {
    let circuit = match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener {
            local_addr,
            send_back_addr,
        } => {
            if is_relayed(send_back_addr) {
                send_back_addr
            } else {
                local_addr
            }
        }
    };
    let mut last_peer = None;
    for protocol in circuit.iter() {
        match protocol {
            Protocol::P2p(peer) => last_peer = Some(peer),
            Protocol::P2pCircuit => return (true, last_peer),
            _ => {}
        }
    }
    (false, None)
}

/// The relays a private node knows of and the ones it asked for a slot.
#[derive(Default)]
pub(crate) struct Reservations {
    /// Peers that speak the relay protocol, at the address this node reached them on.
    relays: HashMap<PeerId, Multiaddr>,
    /// Relays asked for a reservation (by listening on a circuit through them).
    asked: Vec<PeerId>,
}

impl Reservations {
    /// A connected peer that serves as a relay, dialled at `address` (a direct address).
    pub(crate) fn found(&mut self, relay: PeerId, address: Multiaddr) {
        if !is_relayed(&address) {
            let bare: Multiaddr = address
                .iter()
                .filter(|p| !matches!(p, Protocol::P2p(_)))
                .collect();
            self.relays.entry(relay).or_insert(bare);
        }
    }

    /// A relay this node is no longer connected to: its slot is gone.
    pub(crate) fn lost(&mut self, relay: &PeerId) {
        self.relays.remove(relay);
        self.asked.retain(|r| r != relay);
    }

    /// The circuit addresses to listen on now, when the node is `private`: one through each
    /// known relay not asked yet, up to [`MAX_RESERVATIONS`] asked in all.
    pub(crate) fn circuits_to_open(&mut self, private: bool) -> Vec<Multiaddr> {
        if !private {
            return Vec::new();
        }
        let mut listen = Vec::new();
        let mut candidates: Vec<(&PeerId, &Multiaddr)> = self
            .relays
            .iter()
            .filter(|(peer, _)| !self.asked.contains(peer))
            .collect();
        candidates.sort();
        for (peer, address) in candidates {
            if self.asked.len() + listen.len() >= MAX_RESERVATIONS {
                break;
            }
            listen.push((
                *peer,
                address
                    .clone()
                    .with(Protocol::P2p(*peer))
                    .with(Protocol::P2pCircuit),
            ));
        }
        self.asked.extend(listen.iter().map(|(peer, _)| *peer));
        listen.into_iter().map(|(_, address)| address).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_node_reserves_on_at_most_two_relays_and_again_when_one_goes() {
        let mut reservations = Reservations::default();
        let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for (i, relay) in relays.iter().enumerate() {
            // With or without the peer id: it is named once in the circuit address.
            let address = format!("/ip4/10.77.0.{}/tcp/44000", i + 1);
            let address = if i == 0 {
                format!("{address}/p2p/{relay}")
            } else {
                address
            };
            reservations.found(*relay, address.parse().unwrap());
        }
        // A circuit address is no way to reach a relay.
        let circuit: Multiaddr = "/ip4/10.77.0.9/tcp/1/p2p-circuit".parse().unwrap();
        reservations.found(PeerId::random(), circuit);
        assert!(
            reservations.circuits_to_open(false).is_empty(),
            "public: none"
        );
        let first = reservations.circuits_to_open(true);
        assert_eq!(first.len(), MAX_RESERVATIONS);
        assert!(first.iter().all(is_relayed));
        for circuit in &first {
            assert_eq!(
                circuit
                    .iter()
                    .filter(|p| matches!(p, Protocol::P2p(_)))
                    .count(),
                1
            );
        }
        assert!(
            reservations.circuits_to_open(true).is_empty(),
            "asked already"
        );
        let gone = reservations.asked[0];
        reservations.lost(&gone);
        let again = reservations.circuits_to_open(true);
        assert_eq!(again.len(), 1);
        assert!(!again[0].to_string().contains(&gone.to_string()));
    }
}
