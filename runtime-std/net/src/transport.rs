//! The transports a node speaks: TCP (noise, yamux) and QUIC (TLS 1.3, its own streams), and
//! how a bootstrap address is dialled when both are on.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};

use crate::config::quic_twin;

/// Bytes a peer may send on one QUIC stream before this node reads them: a piece answer
/// (1 MiB) several times over, so a stream never waits for a window update on a LAN.
pub(crate) const QUIC_STREAM_WINDOW: u32 = 8 << 20;
/// Bytes a peer may send on all streams of one QUIC connection before this node reads them:
/// a pipeline of piece answers, and the bandwidth-delay product of a 1 Gbit/s link at 250 ms
/// round trip. It bounds what one connection can make this node buffer.
pub(crate) const QUIC_CONNECTION_WINDOW: u32 = 32 << 20;

/// How long a QUIC dial waits for the handshake. A dial to a port nobody listens on gets
/// no answer over UDP (the kernel's "port unreachable" does not reach an unconnected
/// socket), so a dead peer's QUIC address costs this long where TCP is refused at once on a
/// LAN: every Kademlia lookup that meets a dead peer's address waits for it. libp2p's
/// default is 5 s; 2 s still covers a handshake whose first packet is lost (resent after
/// about a second) on a path of a few hundred milliseconds; a peer that needs longer is
/// reached over TCP.
pub(crate) const QUIC_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a TCP connection may take to be dialled, secured (noise) and multiplexed
/// (yamux), either way. libp2p sets no limit, and a dial into a firewall or NAT that drops
/// packets silently waits out the kernel's SYN retries (about two minutes): an AutoNAT
/// dial-back to a private node, a hole punch that fails, a peer behind a dead address. 5 s
/// covers the four round trips on a path of over a second, and is below the 10 s an AutoNAT
/// v2 request is given: a dial-back that times out here is reported as unreachable there,
/// not lost with the request.
pub(crate) const TCP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// TCP secured by TLS or noise ([`crate::security::TlsOrNoise`]) and multiplexed by yamux,
/// within [`TCP_TIMEOUT`], each secured connection counted in `secured`.
pub(crate) fn tcp(
    key: &libp2p::identity::Keypair,
    secured: crate::security::SecuredCounts,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::Transport;
    Ok(
        libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true))
            .upgrade(libp2p::core::upgrade::Version::V1Lazy)
            .authenticate(crate::security::TlsOrNoise::new(key, secured)?)
            .multiplex(libp2p::yamux::Config::default())
            .timeout(TCP_TIMEOUT)
            .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

/// libp2p's QUIC settings with flow-control windows sized for blobs (libp2p's defaults are
/// 10 MB per stream and 15 MB per connection).
pub(crate) fn quic_config(mut config: libp2p::quic::Config) -> libp2p::quic::Config {
    config.handshake_timeout = QUIC_HANDSHAKE_TIMEOUT;
    config.max_stream_data = QUIC_STREAM_WINDOW;
    config.max_connection_data = QUIC_CONNECTION_WINDOW;
    config
}

/// How long a QUIC dial of a bootstrap peer goes ahead alone before the TCP dial starts too
/// (happy eyeballs, as RFC 8305 races IPv6 and IPv4): enough for a QUIC handshake on a LAN or
/// across a continent, short enough that a peer without QUIC is barely delayed (a QUIC dial
/// to it only ends at the handshake timeout).
pub(crate) const QUIC_HEAD_START: std::time::Duration = std::time::Duration::from_millis(500);

/// Bootstrap dials with QUIC preferred: a peer whose id is known is dialled on its QUIC twin
/// first, and on its TCP address [`QUIC_HEAD_START`] later if no connection came by then.
#[derive(Default)]
pub(crate) struct BootstrapDials {
    /// Peers dialled over QUIC, with when their TCP dial is due and the TCP address.
    tcp_due: HashMap<PeerId, (Instant, Multiaddr)>,
}

impl BootstrapDials {
    /// The dial to make now for bootstrap `address` (not connected) at `now`: its QUIC twin,
    /// with QUIC on and the peer's id in the address (then its TCP dial is scheduled), or
    /// the address itself.
    pub(crate) fn first(&mut self, address: &Multiaddr, quic: bool, now: Instant) -> DialOpts {
        let peer = match address.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => return DialOpts::unknown_peer_id().address(address.clone()).build(),
        };
        match quic_twin(address).filter(|_| quic) {
            Some(twin) => {
                self.tcp_due
                    .insert(peer, (now + QUIC_HEAD_START, address.clone()));
                DialOpts::peer_id(peer).addresses(vec![twin]).build()
            }
            None => DialOpts::peer_id(peer)
                .addresses(vec![address.clone()])
                .build(),
        }
    }

    /// The TCP dials due at `now` for peers that `connected` says are still not connected
    /// (made even while their QUIC dial is pending; the first connection wins).
    pub(crate) fn due(
        &mut self,
        now: Instant,
        connected: impl Fn(&PeerId) -> bool,
    ) -> Vec<DialOpts> {
        let due: Vec<PeerId> = self
            .tcp_due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        due.into_iter()
            .filter_map(|peer| {
                let (_, address) = self.tcp_due.remove(&peer)?;
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

    #[test]
    fn a_bootstrap_peer_is_dialled_on_quic_first_and_on_tcp_after_the_head_start() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let peer: PeerId = id.parse().unwrap();
        let with_id: Multiaddr = format!("/ip4/10.0.0.2/tcp/44000/p2p/{id}").parse().unwrap();
        let start = Instant::now();
        let mut dials = BootstrapDials::default();
        let first = dials.first(&with_id, true, start);
        assert_eq!(first.get_peer_id(), Some(peer));
        assert!(dials.due(start, |_| false).is_empty(), "TCP waits its turn");
        let later = start + QUIC_HEAD_START;
        assert_eq!(
            dials.due(later, |_| false).len(),
            1,
            "then TCP is dialled too"
        );
        assert!(dials.due(later, |_| false).is_empty(), "once");
        // Connected over QUIC in time: no TCP dial.
        dials.first(&with_id, true, start);
        assert!(dials.due(later, |_| true).is_empty());
        // QUIC off, or no peer id to dial QUIC by: the address alone, nothing scheduled.
        dials.first(&with_id, false, start);
        let without: Multiaddr = "/ip4/10.0.0.2/tcp/44000".parse().unwrap();
        assert!(dials.first(&without, true, start).get_peer_id().is_none());
        assert!(dials.due(later, |_| false).is_empty());
    }
}
