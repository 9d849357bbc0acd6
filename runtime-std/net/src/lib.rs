//! # pyrsia-net
//!
//! The full node's P2P network on libp2p 0.57, driven by smol: TCP + TLS or noise + yamux and QUIC, identify,
//! Kademlia, mDNS (optional), gossipsub and a framed request-response protocol. Today it
//! replicates the transparency log: every node announces its latest checkpoint on the log's
//! gossipsub topic, and a node that sees a newer one fetches the missing entries from the
//! announcer and keeps them only if the checkpoint's quorum, the entries' rules and the root
//! check out (see `pyrsia_std::log`). Peers that send invalid data are struck and blocked.
//!
//! It is a separate package so that the lite mirror (`pyrsia-lite`) never links libp2p; the
//! node sees it through [`pyrsia_std::network::NetworkView`]. libp2p's tokio transports run
//! under smol through `async-compat`, in one module (`compat`).

mod bandwidth;
mod behaviour;
pub mod codec;
mod compat;
pub mod config;
mod connections;
mod dial_order;
mod joined_writes;
mod per_address;
mod piece_link;
mod redial;
mod relay;
mod scoring;
mod security;
mod service;
mod transport;
mod udp_buffers;

pub use behaviour::IDENTIFY_PROTOCOL;
pub use config::{DEFAULT_LISTEN, NetConfig, NetLimits};
pub use service::{
    DUPLICATE_MEMBER_MESSAGE, Network, checkpoint_topic, dial_address, member_topic, start,
};
