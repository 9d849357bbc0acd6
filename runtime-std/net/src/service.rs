//! The running network: a thread that drives the libp2p swarm on smol, announces this node's
//! latest checkpoint over gossipsub, answers log-sync requests, and catches up with peers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, gossipsub, identify, identity, mdns, multiaddr::Protocol,
    noise, yamux,
};
use pyrsia_core::digest::Digest;
use pyrsia_core::rate::Admission;
use pyrsia_std::log::Log;
use pyrsia_std::network::{NetworkStatus, NetworkView, PeerInfo};
use pyrsia_std::peers::{FetchHint, PieceRequest, PieceSource};

mod content;
mod limits;
mod links;
mod log_sync;
mod members;
mod redirects;

use content::{Asked, Command, ProviderQuery};
use pyrsia_std::consensus::Member;
use pyrsia_std::store::{Store, StoreEvent};

pub use members::{DUPLICATE_MEMBER_MESSAGE, member_topic};

use crate::bandwidth::Shaper;
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::codec::{SyncRequest, SyncResponse};
use crate::config::NetConfig;
use pyrsia_core::tlog::sync::LogSync;

/// Strikes after which a peer is blocked.
pub(crate) const MAX_STRIKES: u32 = 3;
/// How often the latest checkpoint is announced even when it did not change (late joiners,
/// lost messages).
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);

/// How often bootstrap peers that are not connected are dialled again.
pub(crate) const REDIAL_EVERY: Duration = Duration::from_secs(5);

/// A running network. Dropping it does not stop the thread; the process exit does.
pub struct Network {
    status: Arc<Mutex<NetworkStatus>>,
    local_id: String,
    /// `--max-download-rate`: piece requests wait for it.
    download: Arc<Shaper>,
    commands: smol::channel::Sender<Command>,
    /// The peers found nearest each digest lately (who fetches it from the upstream).
    closest: content::ClosestCache,
    /// The peers that stalled this node's fetches lately (a fetch asks them last).
    stalls: pyrsia_std::peers::StallMemory,
    _thread: JoinHandle<()>,
}

impl NetworkView for Network {
    fn status(&self) -> NetworkStatus {
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        status.peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        status
    }
}

/// The gossipsub topic of a log's checkpoints.
pub fn checkpoint_topic(origin: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("pyrsia/log/{origin}/checkpoints"))
}

/// Starts the network with the node key's `seed` (the same ed25519 key signs checkpoints and
/// identifies the node to peers), the node's `log`, its `store` (whose blobs it provides),
/// the `source` of the pieces it serves (the mirror) and, on a member of a multi-member
/// network, its `member` thread (which gets the member topic's messages). Returns once it
/// listens.
pub fn start(
    config: NetConfig,
    seed: [u8; 32],
    log: Arc<Log>,
    store: Store,
    source: Arc<dyn PieceSource>,
    member: Option<Arc<Member>>,
) -> Result<Network, String> {
    let keypair =
        identity::Keypair::ed25519_from_bytes(seed).map_err(|e| format!("node key: {e}"))?;
    let local_id = keypair.public().to_peer_id().to_string();
    let status = Arc::new(Mutex::new(NetworkStatus {
        peer_id: local_id.clone(),
        mdns: config.mdns,
        limits: pyrsia_std::network::PeerLimits {
            max_upload_rate: config.limits.max_upload_rate,
            max_download_rate: config.limits.max_download_rate,
            max_peers: config.limits.max_peers,
        },
        reachability: pyrsia_std::network::Reachability::with_confirmed(
            config
                .external_addresses
                .iter()
                .map(|a| a.to_string())
                .collect(),
        ),
        ..NetworkStatus::default()
    }));
    let upload = Arc::new(Shaper::new(config.limits.max_upload_rate));
    let download = Arc::new(Shaper::new(config.limits.max_download_rate));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let shared = status.clone();
    let (commands, command_rx) = smol::channel::unbounded();
    let thread = std::thread::Builder::new()
        .name("p2p".into())
        .spawn(move || {
            crate::compat::block_on(async move {
                let secured = crate::security::SecuredCounts::default();
                let links = match config.piece_links {
                    false => None,
                    true => match links::Links::start(&config.listen, config.piece_link_port, &keypair) {
                        Ok(links) => Some(links),
                        // A port the operator chose is a promise to the firewall's rules:
                        // the node does not start without it.
                        Err(e) if config.piece_link_port != 0 => {
                            let _ = ready_tx.send(Err(format!(
                                "cannot listen for piece links on port {}: {e}",
                                config.piece_link_port
                            )));
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for piece links; pieces go over libp2p only");
                            None
                        }
                    },
                };
                let link_port = links.as_ref().map(|l| l.port);
                let swarm = match build(keypair, &config, &log, &secured, link_port) {
                    Ok(swarm) => {
                        let _ = ready_tx.send(Ok(()));
                        swarm
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let order = config.dial_order();
                let mut event_loop =
                    EventLoop::new(swarm, log, shared, config.peers, store, command_rx, source);
                event_loop.dial_order = order;
                event_loop.bootstrap_dials = crate::dial_order::BootstrapDials::new(order);
                event_loop.secured = secured;
                event_loop.member = member;
                event_loop.upload = upload;
                if let Some(port) = link_port {
                    tracing::info!(port, "piece links listening");
                }
                event_loop.links = links;
                event_loop.run().await;
            });
        })
        .map_err(|e| format!("cannot start the network thread: {e}"))?;
    ready_rx
        .recv()
        .map_err(|_| "the network thread stopped while starting".to_string())??;
    Ok(Network {
        status,
        local_id,
        download,
        commands,
        closest: Default::default(),
        stalls: Default::default(),
        _thread: thread,
    })
}

fn build(
    keypair: identity::Keypair,
    config: &NetConfig,
    log: &Log,
    secured: &crate::security::SecuredCounts,
    link_port: Option<u16>,
) -> Result<Swarm<Behaviour>, String> {
    let (mdns, max_peers, relay_server) =
        (config.mdns, config.limits.max_peers, config.relay_server);
    let boot = boot_id()?;
    let behaviour = |key: &identity::Keypair, relay_client| {
        Behaviour::new(
            key,
            mdns,
            max_peers,
            relay_client,
            relay_server,
            boot,
            link_port,
        )
        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    };
    let relay_transport = |e: noise::Error| format!("relay transport: {e}");
    let swarm_config =
        |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(300));
    let tcp = |key: &identity::Keypair| crate::transport::tcp(key, secured.clone());
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
    // `/dns4`, `/dns6` and `/dnsaddr` names resolve through the system's resolver (its
    // configuration and /etc/hosts), over either transport.
    let dns = |e: std::io::Error| format!("DNS resolver (from /etc/resolv.conf): {e}");
    let mut swarm = if config.quic {
        builder
            .with_quic_config(crate::transport::quic_config)
            .with_other_transport(tcp)
            .map_err(|e| format!("transport: {e}"))?
            .with_dns()
            .map_err(dns)?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(relay_transport)?
            .with_behaviour(behaviour)
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(swarm_config)
            .build()
    } else {
        builder
            .with_other_transport(tcp)
            .map_err(|e| format!("transport: {e}"))?
            .with_dns()
            .map_err(dns)?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(relay_transport)?
            .with_behaviour(behaviour)
            .map_err(|e| format!("behaviour: {e}"))?
            .with_swarm_config(swarm_config)
            .build()
    };
    for address in &config.external_addresses {
        swarm.add_external_address(address.clone());
    }
    for address in config.listen_addresses() {
        swarm
            .listen_on(address.clone())
            .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    }
    for topic in [checkpoint_topic(&log.origin()), member_topic(&log.origin())] {
        let gossipsub = &mut swarm.behaviour_mut().gossipsub;
        gossipsub
            .subscribe(&topic)
            .map_err(|e| format!("gossipsub subscribe: {e}"))?;
        gossipsub
            .set_topic_params(topic, crate::scoring::topic())
            .map_err(|e| format!("gossipsub topic scoring: {e}"))?;
    }
    let order = config.dial_order();
    for address in &config.peers {
        if let Some(Protocol::P2p(peer)) = address.iter().last() {
            // With QUIC first for the peer, its QUIC twin too: Kademlia dials every address
            // it knows at once, and the first to connect is kept.
            let twin = order
                .quic_first(address)
                .then(|| crate::config::quic_twin(address))
                .flatten();
            for known in twin.into_iter().chain([address.clone()]) {
                swarm.behaviour_mut().kad.add_address(&peer, known);
            }
        }
    }
    Ok(swarm)
}

/// A random id for this run of the node, named in its identify agent string so that peers
/// tell its connections from those of a process of it that is gone (core's
/// [`pyrsia_core::restarts`]).
fn boot_id() -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("boot id: {e}"))?;
    Ok(u64::from_le_bytes(bytes))
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    log: Arc<Log>,
    status: Arc<Mutex<NetworkStatus>>,
    topic: gossipsub::IdentTopic,
    sync: LogSync<PeerId, OutboundRequestId>,
    strikes: HashMap<PeerId, u32>,
    /// Member messages per member, and the clock it is measured on.
    member_rate: pyrsia_core::consensus::limits::RateLimit,
    started: Instant,
    checkpoint_requests: HashMap<OutboundRequestId, PeerId>,
    announced: Option<(String, Instant)>,
    /// When to ask a connected peer for its checkpoint, and which ([`EventLoop::pull_checkpoint`]).
    pull: pyrsia_core::tlog::pull::CheckpointPull,
    /// Each peer's open connections, to close those of a peer's process that restarted since.
    connections: crate::connections::Connections,
    /// Relays known and reserved on (a private node's way in).
    reservations: crate::relay::Reservations,
    /// Peers a hole punch (DCUtR) connected directly.
    hole_punched: std::collections::HashSet<PeerId>,
    /// As a relay server: how many circuits this node carries now for each peer at either
    /// end (a peer whose circuit it carries may ask it to bridge a blob).
    circuits: HashMap<PeerId, usize>,
    bootstrap: Vec<Multiaddr>,
    /// Which transport peers are dialled on first.
    dial_order: crate::dial_order::DialOrder,
    /// TCP connections secured by TLS and by noise, copied into `/peers` as they connect.
    secured: crate::security::SecuredCounts,
    /// Bootstrap dials on the first transport and their fallbacks on the other.
    bootstrap_dials: crate::dial_order::BootstrapDials,
    /// UDP ports of QUIC listeners whose sockets were sized ([`crate::udp_buffers`]).
    sized_quic_ports: std::collections::HashSet<u16>,
    dialled: Option<Instant>,
    store: Store,
    store_events: std::sync::mpsc::Receiver<StoreEvent>,
    commands: smol::channel::Receiver<Command>,
    provider_queries: HashMap<libp2p::kad::QueryId, ProviderQuery>,
    /// Lookups of the peers nearest a digest, and where their answers go.
    closest_queries: HashMap<libp2p::kad::QueryId, std::sync::mpsc::Sender<content::Closest>>,
    /// Piece answers handed to libp2p and not yet written out: with `preparing`, the load
    /// this node reports to peers that ask what it holds.
    uploading: std::collections::HashSet<request_response::InboundRequestId>,
    piece_requests: HashMap<OutboundRequestId, (u64, PieceReplies)>,
    source: Arc<dyn PieceSource>,
    served: smol::channel::Sender<Served>,
    served_rx: smol::channel::Receiver<Served>,
    member: Option<Arc<Member>>,
    /// Each connected peer's request budget.
    peer_limits: pyrsia_core::rate::PeerRequests<PeerId>,
    /// Piece and entry answers being prepared off the event loop.
    preparing: Arc<std::sync::atomic::AtomicUsize>,
    /// Of those, answers with piece bytes (waiting for a download or the upload rate
    /// included): with `uploading`, what core's `serves_now` is asked about.
    preparing_pieces: Arc<std::sync::atomic::AtomicUsize>,
    /// Whom each piece of the blobs served lately went to (super-seeding: a request that
    /// does not insist for a piece sent to a couple of peers lately is sent to them).
    redirects: redirects::Redirects,
    /// `--max-upload-rate`: piece answers wait for it.
    upload: Arc<Shaper>,
    /// Piece links: the listener, and the links this node asks on (`None` with
    /// `--no-piece-links` or when the listener could not start).
    links: Option<links::Links>,
}

/// Where the answer to a piece request goes.
type PieceReplies = std::sync::mpsc::Sender<pyrsia_std::peers::PieceReply>;

/// A piece answered off the event loop, waiting to be sent (with the request's id when it is
/// a piece request: its answer counts in the load until written out).
type Served = (
    PeerId,
    Option<request_response::InboundRequestId>,
    Responder,
    SyncResponse,
);

/// Where an answer to a peer's request goes: a log-sync stream's channel, or a piece link's
/// thread.
pub(crate) enum Responder {
    /// A request on libp2p's log-sync protocol.
    Sync(request_response::ResponseChannel<SyncResponse>),
    /// A request on a piece link: its thread writes the answer.
    Link(crate::piece_link::LinkAnswer),
}

impl Responder {
    /// Hands `response` to its stream or link; false when it is gone.
    fn respond(self, swarm: &mut Swarm<Behaviour>, response: SyncResponse) -> bool {
        match self {
            Responder::Sync(channel) => swarm
                .behaviour_mut()
                .sync
                .send_response(channel, response)
                .is_ok(),
            Responder::Link(answer) => answer.send(response),
        }
    }
}

impl EventLoop {
    fn new(
        swarm: Swarm<Behaviour>,
        log: Arc<Log>,
        status: Arc<Mutex<NetworkStatus>>,
        bootstrap: Vec<Multiaddr>,
        store: Store,
        commands: smol::channel::Receiver<Command>,
        source: Arc<dyn PieceSource>,
    ) -> Self {
        let (served, served_rx) = smol::channel::unbounded();
        EventLoop {
            topic: checkpoint_topic(&log.origin()),
            sync: LogSync::new(),
            swarm,
            log,
            status,
            strikes: HashMap::new(),
            member_rate: Default::default(),
            started: Instant::now(),
            checkpoint_requests: HashMap::new(),
            announced: None,
            pull: Default::default(),
            connections: Default::default(),
            reservations: Default::default(),
            hole_punched: Default::default(),
            circuits: HashMap::new(),
            bootstrap,
            dial_order: Default::default(),
            secured: Default::default(),
            bootstrap_dials: crate::dial_order::BootstrapDials::new(Default::default()),
            sized_quic_ports: Default::default(),
            dialled: None,
            store_events: store.watch(),
            store,
            commands,
            provider_queries: HashMap::new(),
            closest_queries: HashMap::new(),
            uploading: std::collections::HashSet::new(),
            piece_requests: HashMap::new(),
            source,
            served,
            served_rx,
            member: None,
            peer_limits: pyrsia_core::rate::PeerRequests::default(),
            preparing: Arc::default(),
            preparing_pieces: Arc::default(),
            redirects: redirects::Redirects::default(),
            upload: Arc::new(Shaper::new(0)),
            links: None,
        }
    }

    /// Dials the bootstrap peers that are not connected (all of them at start, then every
    /// [`REDIAL_EVERY`]): a peer that starts later or restarts is found again.
    fn redial(&mut self) {
        let swarm = &self.swarm;
        for dial in self
            .bootstrap_dials
            .due(Instant::now(), |peer| swarm.is_connected(peer))
        {
            let _ = self.swarm.dial(dial);
        }
        if self.dialled.is_some_and(|at| at.elapsed() < REDIAL_EVERY) {
            return;
        }
        self.dialled = Some(Instant::now());
        let any_connected = self.swarm.connected_peers().next().is_some();
        for address in self.bootstrap.clone() {
            let connected = match address.iter().last() {
                Some(Protocol::P2p(peer)) => self.swarm.is_connected(&peer),
                _ => any_connected,
            };
            if !connected {
                let dial = self.bootstrap_dials.first(&address, Instant::now());
                match self.swarm.dial(dial) {
                    Err(e) if crate::redial::is_held_back(&e) => {
                        tracing::debug!(%address, error = %e, "bootstrap peer not dialled");
                    }
                    Err(e) => tracing::warn!(%address, error = %e, "cannot dial bootstrap peer"),
                    Ok(()) => {}
                }
            }
        }
    }

    async fn run(mut self) {
        let mut tick = smol::Timer::interval(Duration::from_millis(200));
        let commands = self.commands.clone();
        let served = self.served_rx.clone();
        // Without links, a channel held open for the whole loop: a closed one would be ready
        // at every turn and spin the loop.
        let (_held_open, no_links) = smol::channel::unbounded();
        let link_inbound = match &self.links {
            Some(links) => links.inbound.clone(),
            None => no_links,
        };
        self.provide_all();
        // Before Kademlia's first bootstrap query dials the same peers over TCP.
        self.redial();
        loop {
            futures::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                command = commands.recv().fuse() => match command {
                    Ok(command) => self.on_command(command),
                    Err(_) => return,
                },
                answer = served.recv().fuse() => if let Ok((peer, id, channel, response)) = answer {
                    self.send_served(peer, id, channel, response);
                },
                inbound = link_inbound.recv().fuse() => if let Ok(inbound) = inbound {
                    self.on_link_inbound(inbound);
                },
                _ = tick.next().fuse() => {
                    self.redial();
                    self.announce();
                    self.pull_checkpoint();
                    self.sync_tick();
                    self.on_store_events();
                    self.tick_links();
                    self.expire_provider_queries();
                    self.show_scores();
                }
            }
        }
    }

    /// Sends an answer prepared off the event loop: a piece counts in the load until it is
    /// written out; what this node holds goes with the load now.
    fn send_served(
        &mut self,
        peer: PeerId,
        id: Option<request_response::InboundRequestId>,
        channel: Responder,
        mut response: SyncResponse,
    ) {
        match &mut response {
            SyncResponse::Piece { bytes, .. } => {
                self.count(&peer, bytes.len(), 0);
                if let Some(id) = id {
                    self.uploading.insert(id);
                }
            }
            SyncResponse::Have { load, .. } => {
                let preparing = self.preparing.load(std::sync::atomic::Ordering::SeqCst);
                *load = u32::try_from(preparing + self.uploading.len()).unwrap_or(u32::MAX);
            }
            _ => {}
        }
        // A piece for a link's thread counts in the load until the thread has written it.
        let link_piece =
            matches!(channel, Responder::Link(_)) && matches!(response, SyncResponse::Piece { .. });
        let links = self.links.as_ref().filter(|_| link_piece);
        if let Some(links) = links {
            links.note_writing();
        }
        let delivered = channel.respond(&mut self.swarm, response);
        if let (Some(links), false) = (links, delivered) {
            links.done_writing();
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, NetworkStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, peer: &PeerId, sent: usize, received: usize) {
        let id = peer.to_string();
        let mut status = self.status();
        if let Some(info) = status.peers.iter_mut().find(|p| p.peer_id == id) {
            info.bytes_sent += sent as u64;
            info.bytes_received += received as u64;
        }
    }

    /// Listens through relays (a reservation on each) while this node is private, up to
    /// [`crate::relay::MAX_RESERVATIONS`].
    fn reserve(&mut self) {
        let private =
            self.status().reachability.state == pyrsia_std::network::ReachabilityState::Private;
        for circuit in self.reservations.circuits_to_open(private) {
            match self.swarm.listen_on(circuit.clone()) {
                Ok(_) => tracing::info!(%circuit, "asking a relay for a reservation"),
                Err(e) => tracing::warn!(%circuit, error = %e, "cannot listen through a relay"),
            }
        }
    }

    /// Sets `peer`'s entry in `/peers` from its open connections: their addresses, and the
    /// path (`relayed` with only relayed connections, `hole-punched` after DCUtR connected it
    /// directly, else `direct`); no entry once none is open.
    fn refresh_peer(&mut self, peer: &PeerId) {
        let addresses: Vec<String> = self
            .connections
            .addresses(peer)
            .map(ToString::to_string)
            .collect();
        let (path, relay) = match self.connections.path(peer) {
            pyrsia_core::reach::Path::Relayed(relay) => ("relayed", Some(relay)),
            _ if self.hole_punched.contains(peer) => ("hole-punched", None),
            _ => ("direct", None),
        };
        let id = peer.to_string();
        let mut status = self.status();
        if addresses.is_empty() {
            status.peers.retain(|p| p.peer_id != id);
            return;
        }
        let at = match status.peers.iter().position(|p| p.peer_id == id) {
            Some(at) => at,
            None => {
                status.peers.push(PeerInfo {
                    peer_id: id,
                    ..PeerInfo::default()
                });
                status.peers.len() - 1
            }
        };
        let info = &mut status.peers[at];
        info.addresses = addresses;
        info.path = path.to_string();
        info.relay = relay;
    }

    /// Asks `peer` for its latest checkpoint; the answer goes through [`LogSync::on_note`].
    fn ask_checkpoint(&mut self, peer: PeerId) {
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Checkpoint);
        self.checkpoint_requests.insert(id, peer);
    }

    /// Asks a connected peer for its latest checkpoint when core's
    /// [`CheckpointPull`](pyrsia_core::tlog::pull::CheckpointPull) says so (the repair for a
    /// missed announcement; its documentation says when and whom).
    fn pull_checkpoint(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let now_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let now = pyrsia_core::time::Instant::from_micros(now_us);
        let holds = self.log.checkpoint().is_some();
        if let Some(turn) = self.pull.due(now, holds, peers.len()) {
            self.ask_checkpoint(peers[turn]);
        }
    }

    /// Publishes the latest checkpoint when it changed, and every [`ANNOUNCE_EVERY`] anyway.
    fn announce(&mut self) {
        let Some(note) = self.log.checkpoint() else {
            return;
        };
        let text = note.to_string();
        let due = self
            .announced
            .as_ref()
            .is_none_or(|(last, at)| *last != text || at.elapsed() >= ANNOUNCE_EVERY);
        if !due {
            return;
        }
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), text.as_bytes())
        {
            Ok(_) => {
                tracing::debug!(size = note.checkpoint.size, "announced checkpoint");
                self.announced = Some((text, Instant::now()));
            }
            // No subscribed peer yet: try again on the next tick.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(gossipsub::PublishError::Duplicate) => {
                self.announced = Some((text, Instant::now()))
            }
            Err(e) => tracing::debug!(error = %e, "could not announce the checkpoint"),
        }
    }

    fn strike(&mut self, peer: PeerId, why: &str) {
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        let strikes = *strikes;
        tracing::warn!(%peer, strikes, why, "peer misbehaved");
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, pyrsia_core::gossip_score::for_strikes(strikes));
        self.show_score(&peer);
        if strikes >= MAX_STRIKES {
            tracing::warn!(%peer, "blocking peer after repeated misbehaviour");
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.status().blocked.push(peer.to_string());
        }
    }

    /// Shows every connected peer's gossip score in the network status (`/peers`).
    fn show_scores(&self) {
        let gossipsub = &self.swarm.behaviour().gossipsub;
        let mut status = self.status();
        for info in &mut status.peers {
            if let Ok(peer) = info.peer_id.parse::<PeerId>() {
                info.gossip_score = gossipsub.peer_score(&peer).map(|s| s.round() as i64);
            }
        }
    }

    /// Shows `peer`'s current gossip score in the network status (`/peers`).
    fn show_score(&self, peer: &PeerId) {
        let score = self.swarm.behaviour().gossipsub.peer_score(peer);
        let id = peer.to_string();
        let mut status = self.status();
        if let Some(info) = status.peers.iter_mut().find(|p| p.peer_id == id) {
            // Whole points are what an operator reads; the score is bounded well within i64.
            info.gossip_score = score.map(|s| s.round() as i64);
        }
    }

    /// Sizes the UDP socket behind a new QUIC listen `address` (once per port; see
    /// [`crate::udp_buffers`]), and says when the system's cap kept it small.
    fn size_quic_sockets(&mut self, address: &Multiaddr) {
        // A relayed address names the relay's port, not a socket of this node.
        if address.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            return;
        }
        let mut parts = address.iter();
        let port = parts.find_map(|p| match p {
            Protocol::Udp(port) => Some(port),
            _ => None,
        });
        let quic = parts.any(|p| matches!(p, Protocol::QuicV1));
        let Some(port) = port.filter(|_| quic) else {
            return;
        };
        if !self.sized_quic_ports.insert(port) {
            return;
        }
        let wanted = crate::udp_buffers::QUIC_SOCKET_BUFFER;
        for sized in crate::udp_buffers::enlarge(port) {
            if sized.large_enough() {
                tracing::info!(
                    port,
                    receive = sized.receive,
                    send = sized.send,
                    "QUIC socket buffers sized"
                );
            } else {
                tracing::warn!(
                    port,
                    receive = sized.receive,
                    send = sized.send,
                    "QUIC socket buffers below {wanted} bytes: datagrams may be dropped on fast or \
                     long links; raise net.core.rmem_max and net.core.wmem_max to {wanted} or more, \
                     or run the node with CAP_NET_ADMIN"
                );
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                let peer_id = *self.swarm.local_peer_id();
                tracing::info!(address = %address.clone().with(Protocol::P2p(peer_id)), "p2p listening");
                self.status().listen_addresses.push(address.to_string());
                self.size_quic_sockets(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                for stale in
                    self.connections
                        .established(peer_id, connection_id, &endpoint, Instant::now())
                {
                    tracing::info!(peer = %peer_id, "closing a connection the peer's new one supersedes (a peer without boot ids)");
                    self.swarm.close_connection(stale);
                }
                self.refresh_peer(&peer_id);
                self.status().secured = self.secured.snapshot();
                tracing::info!(peer = %peer_id, "peer connected");
                self.ask_checkpoint(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.connections.closed(&peer_id, connection_id);
                self.refresh_peer(&peer_id);
                if num_established > 0 {
                    return;
                }
                self.peer_limits.forget(&peer_id);
                self.forget_links(&peer_id);
                self.hole_punched.remove(&peer_id);
                self.reservations.lost(&peer_id);
                let relay = peer_id.to_string();
                self.status().reachability.relays.retain(|r| *r != relay);
                self.reserve();
                tracing::info!(peer = %peer_id, "peer disconnected");
            }
            // A circuit through a relay is how a private node is reached, not a sign that it
            // is public: it shows in `relays`.
            SwarmEvent::ExternalAddrConfirmed { address } if crate::relay::is_relayed(&address) => {
                tracing::info!(%address, "peers reach this node through a relay at this address");
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "peers reach this node at this address");
                self.status().reachability.confirm(address.to_string());
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                self.status().reachability.expire(&address.to_string());
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                connection_id,
            }) => {
                self.note_link_target(&peer_id, &info.agent_version);
                self.open_link_early(&peer_id);
                for stale in
                    self.connections
                        .identified(&peer_id, connection_id, &info.agent_version)
                {
                    tracing::info!(peer = %peer_id, "closing a connection of the peer's process that restarted since");
                    self.swarm.close_connection(stale);
                }
                if info.protocols.contains(&libp2p::relay::HOP_PROTOCOL_NAME) {
                    let direct = self
                        .connections
                        .addresses(&peer_id)
                        .find(|a| !crate::relay::is_relayed(a))
                        .cloned();
                    if let Some(address) = direct {
                        self.reservations.found(peer_id, address);
                        self.reserve();
                    }
                }
                for address in self.dial_order.dialable(info.listen_addrs) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, address);
                }
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
                for (peer, address) in found {
                    by_peer.entry(peer).or_default().push(address);
                }
                let found = by_peer.into_iter().flat_map(|(peer, addresses)| {
                    let dialable = self.dial_order.dialable(addresses);
                    dialable.into_iter().map(move |address| (peer, address))
                });
                for (peer, address) in found.collect::<Vec<_>>() {
                    if !self.swarm.is_connected(&peer) {
                        tracing::info!(%peer, %address, "found a peer on the LAN");
                        // Two nodes on a LAN discover each other in the same instant and
                        // dial at once. From their listening ports (libp2p's default port
                        // reuse), with both listening on one port, the two SYNs make a single
                        // TCP simultaneous open that both sides take as outbound; the
                        // security handshake then fails on both and neither dials again. A
                        // fresh source port keeps the two dials two connections.
                        let dial = DialOpts::peer_id(peer)
                            .addresses(vec![address])
                            .allocate_new_port()
                            .build();
                        let _ = self.swarm.dial(dial);
                    }
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                self.count(&propagation_source, 0, message.data.len());
                if message.topic == member_topic(&self.log.origin()).hash() {
                    let acceptance = self.on_member_message(propagation_source, message.data);
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            acceptance,
                        );
                    return;
                }
                // Fetch entries from the announcer: it holds what it announced.
                let announcer = message
                    .source
                    .filter(|s| self.swarm.is_connected(s))
                    .unwrap_or(propagation_source);
                let acceptance = match self.on_note_text(announcer, &message.data) {
                    Ok(()) => gossipsub::MessageAcceptance::Accept,
                    Err(why) => {
                        self.strike(propagation_source, &why);
                        gossipsub::MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::AutonatClient(autonat::v2::client::Event {
                tested_addr,
                server,
                result: Err(error),
                ..
            }) => {
                tracing::info!(address = %tested_addr, %server, %error, "a peer could not dial this node back");
                self.status().reachability.refute(tested_addr.to_string());
                self.reserve();
            }
            BehaviourEvent::RelayClient(libp2p::relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal: false,
                ..
            }) => {
                tracing::info!(relay = %relay_peer_id, "holding a reservation on a relay");
                let relay = relay_peer_id.to_string();
                let mut status = self.status();
                if !status.reachability.relays.contains(&relay) {
                    status.reachability.relays.push(relay);
                }
            }
            BehaviourEvent::RelayServer(libp2p::relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            }) => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, "carrying a circuit");
                for peer in [src_peer_id, dst_peer_id] {
                    *self.circuits.entry(peer).or_default() += 1;
                }
            }
            BehaviourEvent::RelayServer(libp2p::relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                ..
            }) => {
                for peer in [src_peer_id, dst_peer_id] {
                    if let Some(count) = self.circuits.get_mut(&peer) {
                        *count -= 1;
                        if *count == 0 {
                            self.circuits.remove(&peer);
                        }
                    }
                }
            }
            BehaviourEvent::Dcutr(libp2p::dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(direct) => {
                    tracing::info!(peer = %remote_peer_id, "hole punched: a direct connection replaces the relayed one");
                    self.hole_punched.insert(remote_peer_id);
                    for relayed in self.connections.relayed_except(&remote_peer_id, direct) {
                        self.swarm.close_connection(relayed);
                    }
                    self.refresh_peer(&remote_peer_id);
                }
                Err(error) => {
                    tracing::info!(peer = %remote_peer_id, %error, "hole punching failed: the peer stays reached through a relay, and no piece crosses it");
                }
            },
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message,
                connection_id,
            } => match message {
                request_response::Message::Request {
                    request,
                    channel,
                    request_id,
                } => {
                    if matches!(
                        request,
                        SyncRequest::Piece { .. } | SyncRequest::BridgePiece { .. }
                    ) && self.connections.is_relayed(&peer, connection_id)
                    {
                        // A relay's circuit carries coordination, never blob bytes: the
                        // request goes unanswered and the peer asks elsewhere.
                        tracing::debug!(%peer, "no pieces through a relay");
                        return;
                    }
                    let now_us =
                        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    match self.peer_limits.admit(peer, now_us) {
                        Admission::Answer => {}
                        Admission::Drop => return,
                        Admission::DropAndStrike => {
                            self.strike(peer, "requests far over the rate limit");
                            return;
                        }
                    }
                    let request = match content::about_pieces(request) {
                        Ok((request, asked)) => {
                            let channel = Responder::Sync(channel);
                            self.serve_piece(peer, Some(request_id), channel, request, asked);
                            return;
                        }
                        Err(other) => other,
                    };
                    let response = match request {
                        SyncRequest::BridgePiece {
                            digest,
                            offset,
                            len,
                            host,
                            repository,
                        } => {
                            let request =
                                PieceRequest::bytes(Digest::from_sha256_bytes(digest), offset, len);
                            let asked = Asked::Bridge {
                                hint: FetchHint { host, repository },
                                asker_circuit: self.circuits.contains_key(&peer),
                            };
                            self.serve_piece(
                                peer,
                                Some(request_id),
                                Responder::Sync(channel),
                                request,
                                asked,
                            );
                            return;
                        }
                        SyncRequest::Checkpoint => {
                            SyncResponse::Checkpoint(self.log.checkpoint().map(|c| c.to_string()))
                        }
                        SyncRequest::Entries { start, count } => {
                            self.serve_entries(peer, channel, start, count);
                            return;
                        }
                        SyncRequest::Consistency { from, to } => SyncResponse::Consistency(
                            self.log.consistency_proof(from, to).unwrap_or_default(),
                        ),
                        SyncRequest::Malformed(why) => {
                            self.strike(peer, &format!("malformed request frame: {why}"));
                            return;
                        }
                        // (`about_pieces` took these.)
                        SyncRequest::Piece { .. }
                        | SyncRequest::Have { .. }
                        | SyncRequest::PieceHashes { .. } => return,
                    };
                    let size = match &response {
                        SyncResponse::Checkpoint(c) => c.as_ref().map_or(0, String::len),
                        SyncResponse::Entries(e) => e.iter().map(Vec::len).sum(),
                        SyncResponse::Piece { bytes, .. } => bytes.len(),
                        SyncResponse::PieceHashes(list) => list.len() * 32,
                        SyncResponse::Missing => 0,
                        SyncResponse::Consistency(proof) => proof.len() * 32,
                        SyncResponse::Have { .. }
                        | SyncResponse::Busy
                        | SyncResponse::Elsewhere(_) => 0,
                    };
                    self.count(&peer, size, 0);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(channel, response);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => match response {
                    SyncResponse::Checkpoint(text) => {
                        if self.checkpoint_requests.remove(&request_id).is_none() {
                            self.on_wrong_sync_answer(request_id);
                            return;
                        }
                        if let Some(text) = text {
                            self.count(&peer, 0, text.len());
                            if let Err(why) = self.on_note_text(peer, text.as_bytes()) {
                                self.strike(peer, &why);
                            }
                        }
                    }
                    SyncResponse::Entries(batch) => {
                        self.count(&peer, 0, batch.iter().map(Vec::len).sum());
                        let sync = &mut self.sync;
                        let actions = self
                            .log
                            .with_state(|log| sync.on_entries(log, request_id, batch));
                        self.perform(actions);
                    }
                    SyncResponse::Consistency(proof) => {
                        self.count(&peer, 0, proof.len() * 32);
                        let sync = &mut self.sync;
                        let actions = self
                            .log
                            .with_state(|log| sync.on_consistency(log, request_id, proof));
                        self.perform(actions);
                    }
                    about_pieces => {
                        self.count(&peer, 0, about_pieces.piece_payload_len());
                        match crate::codec::piece_answer(about_pieces) {
                            Ok(answer) => self.on_piece_answer(request_id, answer),
                            Err(_) => self.on_wrong_sync_answer(request_id),
                        }
                    }
                },
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.checkpoint_requests.remove(&request_id);
                if self.on_piece_reply(request_id, Err(error.to_string())) {
                    return;
                }
                tracing::info!(%peer, %error, "log-sync request failed");
                let sync = &mut self.sync;
                let actions = self.log.with_state(|log| sync.on_failure(log, request_id));
                self.perform(actions);
            }
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                self.uploading.remove(&request_id);
                tracing::debug!(%peer, %error, "log-sync request from peer failed");
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.uploading.remove(&request_id);
            }
        }
    }
}

/// The `/p2p/<id>` address a peer can dial this node on.
pub fn dial_address(listen: &Multiaddr, peer: PeerId) -> Multiaddr {
    listen.clone().with(Protocol::P2p(peer))
}
