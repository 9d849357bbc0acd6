//! The transports a node speaks: TCP (TLS or noise, yamux) and QUIC (TLS 1.3, its own
//! streams). Which one a peer is dialled on first is `dial_order`'s.

use libp2p::PeerId;

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

/// TCP secured by TLS or noise ([`crate::security::TlsOrNoise`]) and multiplexed by yamux
/// with each frame in one TLS record ([`crate::joined_writes`]), within [`TCP_TIMEOUT`],
/// each secured connection counted in `secured`.
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
            .multiplex(crate::joined_writes::YamuxOverRecords::default())
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
