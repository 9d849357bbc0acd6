//! A raw libp2p peer for attack tests: a stranger with its own identity that speaks the node's
//! request-response protocol (`/pyrsia/sync/2`, or `/pyrsia/sync/1` as an older node: the
//! real codec) and nothing else, so a test
//! can send a real node process exactly the requests a hostile peer would.

use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, identity, multiaddr::Protocol, noise, tcp, yamux};
use pyrsia_net::codec::{LOG_SYNC_PROTOCOL, SyncCodec, SyncRequest, SyncResponse};

/// A peer identity an attack test controls.
pub struct RawPeer {
    keypair: identity::Keypair,
    /// The one protocol version it speaks.
    protocol: StreamProtocol,
    /// The one security protocol it speaks on TCP.
    security: Security,
}

/// The security protocol a test's peer speaks on TCP: noise (as libp2p's builder defaults,
/// and as a node of a build before TLS spoke) or TLS 1.3 only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// noise only.
    Noise,
    /// TLS 1.3 only (libp2p-tls).
    Tls,
}

impl Default for RawPeer {
    fn default() -> Self {
        Self::new()
    }
}

impl RawPeer {
    /// A peer with a fresh random identity.
    pub fn new() -> RawPeer {
        RawPeer {
            keypair: identity::Keypair::generate_ed25519(),
            protocol: LOG_SYNC_PROTOCOL,
            security: Security::Noise,
        }
    }

    /// The same peer securing its TCP connections with `security` only (noise by default).
    pub fn securing_with(mut self, security: Security) -> RawPeer {
        self.security = security;
        self
    }

    /// The same peer speaking only `protocol` (e.g. `/pyrsia/sync/1`, a node of an older
    /// build) in [`RawPeer::ask`].
    pub fn speaking(mut self, protocol: StreamProtocol) -> RawPeer {
        self.protocol = protocol;
        self
    }

    /// The first fresh identity for which `accept` holds (an attacker grinding its peer id,
    /// e.g. to win or lose a rendezvous). Panics after 10,000 tries: `accept` is unsatisfiable.
    pub fn grind(accept: impl Fn(&str) -> bool) -> RawPeer {
        for _ in 0..10_000 {
            let peer = RawPeer::new();
            if accept(&peer.peer_id()) {
                return peer;
            }
        }
        panic!("no identity in 10,000 satisfies the condition");
    }

    /// This peer's identity (e.g. to open a piece link as the same peer).
    pub fn keypair(&self) -> &identity::Keypair {
        &self.keypair
    }

    /// This peer's id, as the node prints and ranks it.
    pub fn peer_id(&self) -> String {
        self.keypair.public().to_peer_id().to_string()
    }

    /// Connects to the node at `address` (a multiaddr ending in `/p2p/<id>`), sends every
    /// request at once and returns each answer, or why it failed, in request order. Gives up
    /// on what has not answered within `timeout`.
    pub fn ask(
        &self,
        address: &str,
        requests: Vec<SyncRequest>,
        timeout: Duration,
    ) -> Vec<Result<SyncResponse, String>> {
        self.ask_timed(address, requests, timeout)
            .into_iter()
            .map(|(answer, _)| answer)
            .collect()
    }

    /// As [`RawPeer::ask`], with how long after the requests left each answer came.
    pub fn ask_timed(
        &self,
        address: &str,
        requests: Vec<SyncRequest>,
        timeout: Duration,
    ) -> Vec<(Result<SyncResponse, String>, Duration)> {
        let (address, node) = node_address(address);
        let mut swarm = build_secured_swarm(self.keypair.clone(), true, self.security, |_| {
            request_response::Behaviour::<SyncCodec>::new(
                [(self.protocol.clone(), ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(timeout),
            )
        });
        let mut answers: Vec<Option<(Result<SyncResponse, String>, Duration)>> =
            requests.iter().map(|_| None).collect();
        let mut sent_at = Instant::now();
        let deadline = Instant::now() + timeout + Duration::from_secs(5);
        // libp2p's TCP transport runs on tokio: dial and poll inside its context.
        smol::block_on(async_compat::Compat::new(async {
            swarm.dial(address.clone()).expect("dial");
            let mut pending: Vec<(OutboundRequestId, usize)> = Vec::new();
            let mut requests = Some(requests);
            while answers.iter().any(Option::is_none) {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(event) = next_event_within(&mut swarm, left).await else {
                    break;
                };
                match event {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => {
                        sent_at = Instant::now();
                        for (i, request) in requests.take().into_iter().flatten().enumerate() {
                            let id = swarm.behaviour_mut().send_request(&node, request);
                            pending.push((id, i));
                        }
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        for answer in answers.iter_mut().filter(|a| a.is_none()) {
                            *answer =
                                Some((Err(format!("cannot connect: {error}")), sent_at.elapsed()));
                        }
                    }
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) => {
                        if let Some(&(_, i)) = pending.iter().find(|(id, _)| *id == request_id) {
                            answers[i] = Some((Ok(response), sent_at.elapsed()));
                        }
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) => {
                        if let Some(&(_, i)) = pending.iter().find(|(id, _)| *id == request_id) {
                            answers[i] = Some((Err(error.to_string()), sent_at.elapsed()));
                        }
                    }
                    _ => {}
                }
            }
        }));
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| (Err("no answer in time".into()), timeout)))
            .collect()
    }
}

/// A swarm of `keypair` on TCP, noise and yamux, and with `quic` on QUIC too (as nodes run),
/// with `behaviour`, its connections kept while idle for up to a minute. A peer that runs
/// Kademlia goes without QUIC: its lookups would wait out QUIC handshakes with the dead
/// peers' addresses a test leaves behind (5 s each at libp2p's default), where TCP is
/// refused at once. Call inside the tokio context (`async_compat`).
pub(crate) fn build_swarm<B: libp2p::swarm::NetworkBehaviour>(
    keypair: identity::Keypair,
    quic: bool,
    behaviour: impl FnOnce(&identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    build_secured_swarm(keypair, quic, Security::Noise, behaviour)
}

/// As [`build_swarm`], with TCP secured by `security` only.
pub(crate) fn build_secured_swarm<B: libp2p::swarm::NetworkBehaviour>(
    keypair: identity::Keypair,
    quic: bool,
    security: Security,
    behaviour: impl FnOnce(&identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let tcp = move |key: &identity::Keypair| tcp_transport(key, security);
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(60));
    if quic {
        builder
            .with_quic()
            .with_other_transport(tcp)
            .expect("transport")
            .with_behaviour(behaviour)
            .expect("behaviour")
            .with_swarm_config(idle)
            .build()
    } else {
        builder
            .with_other_transport(tcp)
            .expect("transport")
            .with_behaviour(behaviour)
            .expect("behaviour")
            .with_swarm_config(idle)
            .build()
    }
}

/// TCP secured by `security` alone, multiplexed by yamux.
fn tcp_transport(
    key: &identity::Keypair,
    security: Security,
) -> Result<
    libp2p::core::transport::Boxed<(libp2p::PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::Transport;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(libp2p::core::upgrade::Version::V1Lazy);
    Ok(match security {
        Security::Noise => tcp
            .authenticate(noise::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
            .boxed(),
        Security::Tls => tcp
            .authenticate(libp2p::tls::Config::new(key)?)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, libp2p::core::muxing::StreamMuxerBox::new(muxer)))
            .boxed(),
    })
}

/// The swarm's next event, or `None` once `wait` has passed without one: the step of every
/// attacker's loop here (with the time left to a deadline, or a short tick between checks of a
/// stop flag). Call inside the tokio context, as [`build_swarm`] says.
pub(crate) async fn next_event_within<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut libp2p::Swarm<B>,
    wait: Duration,
) -> Option<SwarmEvent<B::ToSwarm>> {
    let timer = Box::pin(smol::Timer::after(wait));
    match futures::future::select(swarm.select_next_some(), timer).await {
        futures::future::Either::Left((event, _)) => Some(event),
        futures::future::Either::Right(_) => None,
    }
}

/// Request frames a node cannot decode (a bad version, a garbage payload, junk): what a test
/// sends with [`RawPeer::send_raw`] to get a peer blocked.
pub fn malformed_frames() -> Vec<Vec<u8>> {
    vec![
        vec![0xff; 16],
        vec![0x01, 0x00, 0x00, 0x00, 0x02, 0xc3, 0x00],
        vec![0xff; 64],
        vec![0xee; 8],
    ]
}

/// A node's multiaddr and the peer id at its end (`/p2p/<id>`).
pub(crate) fn node_address(address: &str) -> (Multiaddr, libp2p::PeerId) {
    let address: Multiaddr = address.parse().expect("node multiaddr");
    let Some(Protocol::P2p(node)) = address.iter().last() else {
        panic!("the node address has no /p2p/<id>: {address}");
    };
    (address, node)
}

/// Whether `node` is nearer `digest` than every peer in `others`: the node the network asks
/// to fetch that blob from the upstream (`pyrsia_core::rendezvous::nearest`, over peer ids'
/// bytes, as nodes rank them).
pub fn node_wins(digest: &pyrsia_core::digest::Digest, node: &str, others: &[&str]) -> bool {
    let key = |id: &str| id.parse::<libp2p::PeerId>().expect("peer id").to_bytes();
    let node = key(node);
    let others: Vec<Vec<u8>> = others.iter().map(|id| key(id)).collect();
    let candidates = std::iter::once(node.as_slice()).chain(others.iter().map(Vec::as_slice));
    pyrsia_core::rendezvous::nearest(digest.as_bytes(), candidates) == Some(node.as_slice())
}

/// The nodes of `ids` in the order the network asks them to fetch `digest` from the upstream
/// (nearest the digest first, as [`node_wins`] ranks them): indices into `ids`.
pub fn claimant_order(digest: &pyrsia_core::digest::Digest, ids: &[String]) -> Vec<usize> {
    let keys: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| id.parse::<libp2p::PeerId>().expect("peer id").to_bytes())
        .collect();
    let ranked = pyrsia_core::rendezvous::nearest_first(
        digest.as_bytes(),
        keys.iter().map(Vec::as_slice),
        keys.len(),
    );
    ranked
        .into_iter()
        .map(|key| {
            keys.iter()
                .position(|k| k.as_slice() == key)
                .expect("a key of ids")
        })
        .collect()
}

/// What a [`LyingProvider`] runs: the node's DHT (to announce blobs) and its request-response
/// protocol (to answer piece requests).
#[derive(libp2p::swarm::NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct ProviderBehaviour {
    kad: libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>,
    sync: request_response::Behaviour<SyncCodec>,
    /// Only for [`Lie::StallsOnLink`]: names the link port to the node.
    identify: libp2p::swarm::behaviour::toggle::Toggle<libp2p::identify::Behaviour>,
}

/// How a [`LyingProvider`] lies.
#[derive(Clone, Copy, Debug)]
pub enum Lie {
    /// Every piece answer claims a size this many bytes larger than the truth (and carries
    /// junk bytes).
    Size(u64),
    /// It says it holds every piece of the blobs, and answers every piece request `Missing`.
    HoldsEverything,
    /// It says it holds every piece of the blobs, and answers every piece request, insisting
    /// or not, `Elsewhere`: naming itself, a junk id and the node it is connected to (which
    /// may not hold the piece).
    SendsElsewhere,
    /// It names a piece link port over identify (a `link_attacker::StallingLinkHolder`'s),
    /// says it holds every piece of the blobs, and never answers a piece request on libp2p.
    StallsOnLink(u16),
}

/// A stranger that announces blobs on the DHT and lies about them ([`Lie`]): about their
/// size, or about holding them. Runs until dropped.
pub struct LyingProvider {
    peer_id: String,
    _lying: crate::background::Background,
}

impl LyingProvider {
    /// Connects to the node at `address` and announces `blobs` (digest and true size).
    pub fn start(
        address: &str,
        blobs: Vec<(pyrsia_core::digest::Digest, u64)>,
        extra: u64,
    ) -> LyingProvider {
        Self::lying(address, blobs, Lie::Size(extra))
    }

    /// Connects to the node at `address` and announces `blobs` (digest and true size), lying
    /// about them as `lie` says.
    pub fn lying(
        address: &str,
        blobs: Vec<(pyrsia_core::digest::Digest, u64)>,
        lie: Lie,
    ) -> LyingProvider {
        Self::lying_as(identity::Keypair::generate_ed25519(), address, blobs, lie)
    }

    /// [`LyingProvider::lying`] with the identity `keypair` (a test that needs the liars to
    /// rank somewhere among the nodes nearest a digest picks their keys first).
    pub fn lying_as(
        keypair: identity::Keypair,
        address: &str,
        blobs: Vec<(pyrsia_core::digest::Digest, u64)>,
        lie: Lie,
    ) -> LyingProvider {
        let peer_id = keypair.public().to_peer_id();
        let (address, node) = node_address(address);
        let lying = crate::background::Background::spawn(move |stop| {
            smol::block_on(async_compat::Compat::new(async move {
                let mut swarm = build_swarm(keypair, false, |key| {
                    let id = key.public().to_peer_id();
                    let mut kad = libp2p::kad::Behaviour::with_config(
                        id,
                        libp2p::kad::store::MemoryStore::new(id),
                        libp2p::kad::Config::new(libp2p::StreamProtocol::new("/pyrsia/kad/1")),
                    );
                    kad.set_mode(Some(libp2p::kad::Mode::Server));
                    let identify = match lie {
                        Lie::StallsOnLink(port) => Some(libp2p::identify::Behaviour::new(
                            libp2p::identify::Config::new(
                                pyrsia_net::IDENTIFY_PROTOCOL.into(),
                                key.public(),
                            )
                            .with_agent_version(
                                pyrsia_core::restarts::agent_string("0.0.0", Some(port), 1),
                            ),
                        )),
                        _ => None,
                    };
                    ProviderBehaviour {
                        kad,
                        sync: request_response::Behaviour::new(
                            [(LOG_SYNC_PROTOCOL, ProtocolSupport::Full)],
                            request_response::Config::default(),
                        ),
                        identify: identify.into(),
                    }
                });
                swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&node, address.clone());
                swarm.dial(address).expect("dial");
                let mut announced = false;
                // Piece requests a staller never answers (dropped, their streams would close).
                let mut unanswered = Vec::new();
                while !stop.is_set() {
                    let Some(event) =
                        next_event_within(&mut swarm, Duration::from_millis(100)).await
                    else {
                        continue;
                    };
                    match event {
                        SwarmEvent::ConnectionEstablished { peer_id, .. }
                            if peer_id == node && !announced =>
                        {
                            announced = true;
                            for (digest, _) in &blobs {
                                let key = libp2p::kad::RecordKey::new(digest.as_bytes());
                                let _ = swarm.behaviour_mut().kad.start_providing(key);
                            }
                        }
                        SwarmEvent::Behaviour(ProviderBehaviourEvent::Sync(
                            request_response::Event::Message {
                                message:
                                    request_response::Message::Request {
                                        request, channel, ..
                                    },
                                ..
                            },
                        )) => {
                            let find = |digest: &[u8; 32]| {
                                blobs.iter().find(|(d, _)| d.as_bytes() == digest)
                            };
                            let claimed = |size: u64| match lie {
                                Lie::Size(extra) => size + extra,
                                Lie::HoldsEverything
                                | Lie::SendsElsewhere
                                | Lie::StallsOnLink(_) => size,
                            };
                            if matches!(lie, Lie::StallsOnLink(_))
                                && matches!(request, SyncRequest::Piece { .. })
                            {
                                unanswered.push(channel);
                                continue;
                            }
                            let response = match (request, lie) {
                                (SyncRequest::Have { digest }, _) => match find(&digest) {
                                    Some((_, size)) => SyncResponse::Have {
                                        total: claimed(*size),
                                        pieces: pyrsia_core::pieces::piece_count(claimed(*size))
                                            as u32,
                                        load: 0,
                                        ahead: Vec::new(),
                                    },
                                    None => SyncResponse::Missing,
                                },
                                (
                                    SyncRequest::Piece {
                                        digest,
                                        offset,
                                        len,
                                        ..
                                    },
                                    Lie::Size(extra),
                                ) => match find(&digest) {
                                    Some((_, size)) => {
                                        let total = size + extra;
                                        let n = u64::from(len).min(total.saturating_sub(offset));
                                        SyncResponse::Piece {
                                            total,
                                            bytes: vec![0x5a; n as usize].into(),
                                        }
                                    }
                                    None => SyncResponse::Missing,
                                },
                                (SyncRequest::Piece { .. }, Lie::SendsElsewhere) => {
                                    SyncResponse::Elsewhere(vec![
                                        peer_id.to_bytes(),
                                        b"not a peer id".to_vec(),
                                        node.to_bytes(),
                                    ])
                                }
                                (SyncRequest::Checkpoint, _) => SyncResponse::Checkpoint(None),
                                _ => SyncResponse::Missing,
                            };
                            let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                        }
                        _ => {}
                    }
                }
            }));
        });
        LyingProvider {
            peer_id: peer_id.to_string(),
            _lying: lying,
        }
    }

    /// Its peer id.
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }
}

/// Writes request bytes as they are and reads whatever comes back: a peer that sends frames
/// the node's codec must refuse.
#[derive(Clone, Copy, Debug, Default)]
struct JunkCodec;

impl request_response::Codec for JunkCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Err(std::io::Error::other("this peer answers nothing"))
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut out = Vec::new();
        futures::AsyncReadExt::read_to_end(&mut futures::AsyncReadExt::take(io, 1 << 20), &mut out)
            .await?;
        Ok(out)
    }

    async fn write_request<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        futures::AsyncWriteExt::write_all(io, &bytes).await?;
        futures::AsyncWriteExt::close(io).await
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        Ok(())
    }
}

impl RawPeer {
    /// Connects to the node at `address` and stays for `time`; returns whether the
    /// connection was still open at the end (a node that refuses it closes it at once).
    pub fn hold(&self, address: &str, time: Duration) -> bool {
        let (address, node) = node_address(address);
        let mut swarm = build_swarm(self.keypair.clone(), true, |_| {
            request_response::Behaviour::<SyncCodec>::new(
                [(LOG_SYNC_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default(),
            )
        });
        let deadline = Instant::now() + time;
        smol::block_on(async_compat::Compat::new(async {
            swarm.dial(address.clone()).expect("dial");
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if next_event_within(&mut swarm, left).await.is_none() {
                    break;
                }
            }
        }));
        swarm.is_connected(&node)
    }

    /// Connects to the node at `address` and sends each of `frames`, byte for byte, as a
    /// request on the node's request-response protocol, one after the other; returns how
    /// each ended (the bytes of an answer, or why there was none).
    pub fn send_raw(
        &self,
        address: &str,
        frames: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Vec<Result<Vec<u8>, String>> {
        let (address, node) = node_address(address);
        let mut swarm = build_swarm(self.keypair.clone(), true, |_| {
            request_response::Behaviour::<JunkCodec>::new(
                [(LOG_SYNC_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(timeout),
            )
        });
        let mut results = Vec::new();
        smol::block_on(async_compat::Compat::new(async {
            swarm.dial(address.clone()).expect("dial");
            let mut frames = frames.into_iter();
            let mut pending = None;
            let deadline = Instant::now() + timeout * 4;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Some(event) = next_event_within(&mut swarm, left).await else {
                    break;
                };
                let next = match event {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => true,
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) if Some(request_id) == pending => {
                        results.push(Ok(response));
                        true
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) if Some(request_id) == pending => {
                        results.push(Err(error.to_string()));
                        true
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        results.push(Err(format!("cannot connect: {error}")));
                        true
                    }
                    _ => false,
                };
                if next {
                    match frames.next() {
                        Some(frame) if swarm.is_connected(&node) => {
                            pending = Some(swarm.behaviour_mut().send_request(&node, frame));
                        }
                        Some(_) => results.push(Err("not connected".into())),
                        None => break,
                    }
                }
            }
        }));
        results
    }
}
