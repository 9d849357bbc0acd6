//! Which transport a node dials a peer on first, with QUIC on: TCP (TLS, yamux) for a peer on
//! the same network (a loopback, private or link-local address), QUIC for any other. At LAN
//! round trips the two move bytes equally fast and TCP costs less CPU per byte (one
//! node-to-node transfer: 2.6 against 3.7 CPU seconds per GB; a 16-node swarm on one
//! machine: 11 against 19 CPU seconds, BENCHMARKS.md); across a long path QUIC is faster (82–
//! 103 against 67–69 MB/s at 20 ms) and meets NATs better. `--quic-on-lan` keeps QUIC first
//! everywhere. Names (`/dns4/…`) are not resolved to tell: they are dialled as any other
//! address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use crate::config::quic_twin;

/// How long the first-choice dial of a bootstrap peer goes ahead alone before the dial on
/// the other transport starts too (happy eyeballs, as RFC 8305 races IPv6 and IPv4): enough
/// for a handshake on a LAN or across a continent, short enough that a peer without the
/// first transport is barely delayed (a QUIC dial to a peer without QUIC only ends at the
/// handshake timeout).
pub(crate) const HEAD_START: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether `address` names a host on this node's own network: an IPv4 loopback, private
/// (RFC 1918) or link-local address, or an IPv6 loopback, unique-local or link-local one.
pub(crate) fn on_lan(address: &Multiaddr) -> bool {
    let ip = match address.iter().next() {
        Some(Protocol::Ip4(ip)) => IpAddr::V4(ip),
        Some(Protocol::Ip6(ip)) => IpAddr::V6(ip),
        _ => return false,
    };
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local() || ip.is_unicast_link_local(),
    }
}

fn is_quic(address: &Multiaddr) -> bool {
    address.iter().any(|p| matches!(p, Protocol::QuicV1))
}

/// The host part of `address` (its first protocol: the IP or name).
fn host(address: &Multiaddr) -> Option<Protocol<'_>> {
    address.iter().next()
}

/// The transports this node dials peers on, and in which order (the default: TCP alone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DialOrder {
    /// QUIC is on (`--no-quic` turns it off).
    pub(crate) quic: bool,
    /// QUIC first for peers on the same network too (`--quic-on-lan`).
    pub(crate) quic_on_lan: bool,
}

impl DialOrder {
    /// Whether a peer at TCP address `tcp` (QUIC on) is dialled on its QUIC twin first.
    pub(crate) fn quic_first(&self, tcp: &Multiaddr) -> bool {
        self.quic && (self.quic_on_lan || !on_lan(tcp))
    }

    /// `addresses` of one peer (identify's listen addresses, mDNS's finds), without the QUIC
    /// ones on the same network as a TCP address of the same host in the list, when such
    /// peers are dialled over TCP: Kademlia and a request to an unconnected peer dial every
    /// known address at once and keep the first connection, and on a LAN QUIC's handshake
    /// (one round trip) would win every race.
    pub(crate) fn dialable(&self, addresses: Vec<Multiaddr>) -> Vec<Multiaddr> {
        if self.quic_on_lan {
            return addresses;
        }
        let tcp_hosts: Vec<Protocol<'_>> = addresses
            .iter()
            .filter(|a| !is_quic(a) && on_lan(a))
            .filter_map(host)
            .collect();
        addresses
            .iter()
            .filter(|a| !(is_quic(a) && host(a).is_some_and(|h| tcp_hosts.contains(&h))))
            .cloned()
            .collect()
    }
}

/// Bootstrap dials, each transport in its turn: a peer whose id is known is dialled on the
/// first transport [`DialOrder`] names, and on the other [`HEAD_START`] later if no
/// connection came by then.
pub(crate) struct BootstrapDials {
    order: DialOrder,
    /// Peers dialled on one transport, with when their dial on the other is due and its
    /// address.
    second_due: HashMap<PeerId, (Instant, Multiaddr)>,
}

impl BootstrapDials {
    /// Dials made in `order`.
    pub(crate) fn new(order: DialOrder) -> BootstrapDials {
        BootstrapDials {
            order,
            second_due: HashMap::new(),
        }
    }

    /// The dial to make now for bootstrap `address` (not connected) at `now`: with QUIC on
    /// and the peer's id in the address, its QUIC twin or the address itself as
    /// [`DialOrder::quic_first`] says (then the other dial is scheduled); otherwise the
    /// address itself.
    pub(crate) fn first(&mut self, address: &Multiaddr, now: Instant) -> DialOpts {
        let peer = match address.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => return DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        let Some(twin) = quic_twin(address).filter(|_| self.order.quic) else {
            return DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .build();
        };
        let (first, second) = match self.order.quic_first(address) {
            true => (twin, address.clone()),
            false => (address.clone(), twin),
        };
        self.second_due.insert(peer, (now + HEAD_START, second));
        DialOpts::peer_id(peer).addresses(vec![first]).build()
    }

    /// The second dials due at `now` for peers that `connected` says are still not
    /// connected (made even while their first dial is pending; the first connection wins).
    pub(crate) fn due(
        &mut self,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<DialOpts> {
        let due: Vec<PeerId> = self
            .second_due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        due.into_iter()
            .filter_map(|peer| {
                let (_, address) = self.second_due.remove(&peer)?;
                (!connected(&peer)).then(|| {
                    DialOpts::peer_id(peer)
                        .condition(PeerCondition::Disconnected)
                        .addresses(vec![address])
                        .build()
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    fn at(address: &str) -> Multiaddr {
        address.parse().unwrap()
    }

    const DEFAULT: DialOrder = DialOrder {
        quic: true,
        quic_on_lan: false,
    };

    #[test]
    fn loopback_private_and_link_local_addresses_are_on_the_lan_others_are_not() {
        for lan in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/172.16.0.9/udp/1/quic-v1",
            "/ip4/192.168.1.2/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
        ] {
            assert!(on_lan(&at(lan)), "{lan}");
        }
        for far in [
            "/ip4/8.8.8.8/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/172.32.0.1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/dns4/localhost/tcp/1",
            "/dnsaddr/boot.example.net",
        ] {
            assert!(!on_lan(&at(far)), "{far}");
        }
    }

    #[test]
    fn a_bootstrap_peer_is_dialled_on_its_first_transport_then_the_other_after_the_head_start() {
        let peer: PeerId = ID.parse().unwrap();
        let far = at(&format!("/ip4/203.0.113.2/tcp/44000/p2p/{ID}"));
        let near = at(&format!("/ip4/10.0.0.2/tcp/44000/p2p/{ID}"));
        let start = Instant::now();
        let later = start + HEAD_START;
        let first_address = |dial: &DialOpts| dial.get_peer_id();
        for (order, address, quic_first) in [
            (DEFAULT, &far, true),
            (DEFAULT, &near, false),
            (
                DialOrder {
                    quic: true,
                    quic_on_lan: true,
                },
                &near,
                true,
            ),
        ] {
            let mut dials = BootstrapDials::new(order);
            let first = dials.first(address, start);
            assert_eq!(first_address(&first), Some(peer));
            assert_eq!(order.quic_first(address), quic_first, "{address}");
            assert!(dials.due(start, |_| false).is_empty(), "the second waits");
            assert_eq!(dials.due(later, |_| false).len(), 1, "then comes");
            assert!(dials.due(later, |_| false).is_empty(), "once");
            // Connected by the first dial in time: no second.
            dials.first(address, start);
            assert!(dials.due(later, |_| true).is_empty());
        }
        // QUIC off, or no peer id to dial QUIC by: the address alone, nothing scheduled.
        let mut dials = BootstrapDials::new(DialOrder {
            quic: false,
            quic_on_lan: false,
        });
        dials.first(&far, start);
        assert!(!dials.order.quic_first(&far));
        let mut dials = BootstrapDials::new(DEFAULT);
        let without: Multiaddr = "/ip4/10.0.0.2/tcp/44000".parse().unwrap();
        assert!(dials.first(&without, start).get_peer_id().is_none());
        assert!(dials.due(later, |_| false).is_empty());
    }

    #[test]
    fn quic_addresses_on_the_lan_are_left_out_where_the_host_has_a_tcp_one() {
        let found = vec![
            at("/ip4/10.0.0.2/tcp/44000"),
            at("/ip4/10.0.0.2/udp/44000/quic-v1"),
            at("/ip4/203.0.113.2/tcp/44000"),
            at("/ip4/203.0.113.2/udp/44000/quic-v1"),
            at("/ip4/192.168.1.9/udp/44000/quic-v1"),
        ];
        let kept = DEFAULT.dialable(found.clone());
        assert_eq!(
            kept,
            vec![
                at("/ip4/10.0.0.2/tcp/44000"),
                at("/ip4/203.0.113.2/tcp/44000"),
                at("/ip4/203.0.113.2/udp/44000/quic-v1"),
                // No TCP address of that host: its QUIC one is all there is.
                at("/ip4/192.168.1.9/udp/44000/quic-v1"),
            ]
        );
        let everywhere = DialOrder {
            quic: true,
            quic_on_lan: true,
        };
        assert_eq!(everywhere.dialable(found.clone()), found);
    }
}
