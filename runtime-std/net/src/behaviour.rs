//! The libp2p behaviours a node runs: identify (addresses and protocols), Kademlia (peer
//! routing, and content routing: provider records for every digest held), mDNS (LAN discovery, optional),
//! gossipsub (checkpoint announcements), log sync (request-response), AutoNAT v2 (client and
//! server: whether peers can dial this node), relays and DCUtR (a private node's way in) and
//! a block list for peers that misbehave, and a wait before dialling again a peer that
//! refused this node.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    StreamProtocol, allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify,
    identity, kad, mdns, relay, request_response,
};

use crate::codec::{LOG_SYNC_PROTOCOLS, SyncCodec};

/// The identify protocol version string (a test's peer that names a link port speaks it).
pub const IDENTIFY_PROTOCOL: &str = "/pyrsia/id/1";
/// The Kademlia protocol name (a Pyrsia-only DHT, not the public IPFS one).
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/pyrsia/kad/1");
/// The largest gossip message: a signed note with every cosignature, or a member message
/// proposing a batch of at most `MAX_BATCH_BYTES`, fits below it.
pub(crate) const MAX_GOSSIP: usize = 256 * 1024;
/// How often mDNS asks the LAN who is there (libp2p's default is five minutes).
pub(crate) const MDNS_QUERY_EVERY: Duration = Duration::from_secs(30);
/// How often provider records are published again.
pub(crate) const REPROVIDE_EVERY: Duration = Duration::from_secs(3600);
/// The most digests a node provides.
pub(crate) const MAX_PROVIDED: usize = 1_000_000;
/// How long a log-sync request may take before the peer counts as stalled.
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections established at once, in all.
pub(crate) const MAX_CONNECTIONS: u32 = 1024;
/// Connections established at once with one peer.
pub(crate) const MAX_CONNECTIONS_PER_PEER: u32 = 4;
/// Incoming connections still in their handshake at once.
pub(crate) const MAX_PENDING_INCOMING: u32 = 128;

/// Everything the swarm runs.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) per_address: crate::per_address::PerAddressLimit,
    /// Holds back dials to peers that refused this node lately (core's `redial`).
    pub(crate) redial: crate::redial::RedialBackoff,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) gossipsub: gossipsub::Behaviour,
    pub(crate) sync: request_response::Behaviour<SyncCodec>,
    /// Asks peers to dial this node back at the addresses it was seen at (AutoNAT v2).
    pub(crate) autonat_client: autonat::v2::client::Behaviour,
    /// Dials peers back at the address they ask about, from a new port.
    pub(crate) autonat_server: autonat::v2::server::Behaviour,
    /// Reservations on relays and circuits through them (a private node's way in).
    pub(crate) relay_client: relay::client::Behaviour,
    /// Serves as a relay, within [`crate::relay::server_config`] (`--relay-server`).
    pub(crate) relay_server: Toggle<relay::Behaviour>,
    /// Turns a relayed connection into a direct one by hole punching.
    pub(crate) dcutr: dcutr::Behaviour,
}

impl Behaviour {
    /// Builds the behaviours for `key`; mDNS only when `mdns` is set; at most `max_peers`
    /// connections established; `relay_client` from the swarm builder; a relay server only
    /// when `relay_server` is set; `boot` (this run's id) in identify's agent string.
    pub(crate) fn new(
        key: &identity::Keypair,
        mdns: bool,
        max_peers: u32,
        relay_client: relay::client::Behaviour,
        relay_server: bool,
        boot: u64,
        link_port: Option<u16>,
    ) -> Result<Behaviour, String> {
        let peer_id = key.public().to_peer_id();
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config.set_query_timeout(Duration::from_secs(30));
        kad_config.set_provider_publication_interval(Some(REPROVIDE_EVERY));
        // A node provides every digest it holds: far more than libp2p's default of 1024.
        let store_config = kad::store::MemoryStoreConfig {
            max_provided_keys: MAX_PROVIDED,
            ..Default::default()
        };
        let mut kad = kad::Behaviour::with_config(
            peer_id,
            kad::store::MemoryStore::with_config(peer_id, store_config),
            kad_config,
        );
        kad.set_mode(Some(kad::Mode::Server));
        let mdns = if mdns {
            Some(
                mdns::tokio::Behaviour::new(
                    mdns::Config {
                        query_interval: MDNS_QUERY_EVERY,
                        ..Default::default()
                    },
                    peer_id,
                )
                .map_err(|e| format!("mDNS: {e}"))?,
            )
        } else {
            None
        };
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(MAX_GOSSIP)
            .heartbeat_interval(Duration::from_secs(1))
            .message_id_fn(|message: &gossipsub::Message| {
                gossipsub::MessageId::from(
                    pyrsia_core::digest::Digest::sha256(&message.data)
                        .hex()
                        .as_str()
                        .to_string(),
                )
            })
            .build()
            .map_err(|e| format!("gossipsub config: {e}"))?;
        let mut gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| format!("gossipsub: {e}"))?;
        gossipsub
            .with_peer_score(crate::scoring::params(), crate::scoring::thresholds())
            .map_err(|e| format!("gossipsub peer scoring: {e}"))?;
        let sync = request_response::Behaviour::new(
            LOG_SYNC_PROTOCOLS.map(|p| (p, request_response::ProtocolSupport::Full)),
            request_response::Config::default().with_request_timeout(SYNC_TIMEOUT),
        );
        Ok(Behaviour {
            blocked: allow_block_list::Behaviour::default(),
            per_address: crate::per_address::PerAddressLimit::new(
                pyrsia_core::rate::CONNECTIONS_PER_ADDRESS,
            ),
            redial: crate::redial::RedialBackoff::new(),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(max_peers.min(MAX_CONNECTIONS)))
                    .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER))
                    .with_max_pending_incoming(Some(MAX_PENDING_INCOMING)),
            ),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public()).with_agent_version(
                    pyrsia_core::restarts::agent_string(env!("CARGO_PKG_VERSION"), link_port, boot),
                ),
            ),
            kad,
            mdns: mdns.into(),
            gossipsub,
            sync,
            autonat_client: autonat::v2::client::Behaviour::default(),
            autonat_server: autonat::v2::server::Behaviour::default(),
            relay_client,
            relay_server: relay_server
                .then(|| relay::Behaviour::new(peer_id, crate::relay::server_config()))
                .into(),
            dcutr: dcutr::Behaviour::new(peer_id),
        })
    }
}
