//! Piece links: the rules for the dedicated connections that carry piece bytes between nodes.
//!
//! A node-to-node piece transfer over libp2p's TCP stack goes through TLS, yamux and the
//! swarm's event loop; on two cores that path costs about twice the CPU of the bytes' TLS
//! alone (BENCHMARKS.md). A node therefore also listens for **piece links**: plain TCP
//! connections secured with the same libp2p-tls certificates (so both ends are authenticated by
//! peer id), each carrying one asker's piece requests to one holder and the holder's answers,
//! in order, in the log-sync protocol's own frames. Only piece-byte requests without a fetch
//! hint use a link ([`carries`]); everything else (Have, hashes, fetch-for-network, bridges,
//! the log, gossip) stays on libp2p, and so does every piece while no link is ready.
//!
//! A node names its link port in its identify agent string (`link/<port>`, read by
//! [`link_port_of`]); a peer connects to that port at the address its libp2p connection came
//! from. A link that cannot be opened (a firewall, a NAT) costs nothing: the pieces go over
//! libp2p as before.
//!
//! **Limits** (what a holder accepts, decided here, applied by the runtime):
//! - at most [`MAX_SERVED_LINKS`] links served at once, at most [`MAX_LINKS_PER_PEER`] per peer
//!   ([`accepts_link`], [`accepts_peer_link`]);
//! - the TLS handshake within [`HANDSHAKE_TIMEOUT`]; a request frame within [`IDLE_TIMEOUT`]
//!   of the previous answer (a silent or trickling socket is closed);
//! - a link, once its handshake names the peer, and every request on it only from a peer
//!   connected over libp2p now and not blocked ([`admit_request`]); refused, the link closes;
//! - frames are the log-sync codec's, with its size limits: a malformed frame closes the link
//!   and counts as the peer's misbehaviour, as on libp2p;
//! - each request passes the same per-peer rate limit and the same piece-serving rules as one
//!   on libp2p.
//!
//! An asker keeps at most [`IN_FLIGHT`] requests on a link, waits at most [`ANSWER_TIMEOUT`]
//! for the oldest answer, and closes a link idle for [`ASKER_IDLE`] (before the holder would).

use crate::time::Duration;

/// What names the link port in an agent string.
pub const LINK_TAG: &str = "link/";

/// Links a node serves at once (sockets accepted, handshaking or open).
pub const MAX_SERVED_LINKS: usize = 64;

/// Links a node serves at once to one peer (a peer needs one; two allow a reconnect to overlap
/// a dying link).
pub const MAX_LINKS_PER_PEER: usize = 2;

/// How long a holder waits for a link's TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a holder waits for a link's next request frame (whole) before closing it. Long:
/// only an authenticated, connected peer gets this far, at most [`MAX_LINKS_PER_PEER`]
/// times, and a link reopened for every pull would cost its first pieces the libp2p path.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How long an asker keeps an unused link open: shorter than [`IDLE_TIMEOUT`], so the asker,
/// not the holder, ends an idle link and never loses a request to the holder's close.
pub const ASKER_IDLE: Duration = Duration::from_secs(300);

/// How long an asker waits for the oldest answer on a link (as for a piece request on libp2p).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests an asker keeps on one link before their answers.
pub const IN_FLIGHT: usize = 4;

/// Whether a holder accepts one more link while it serves `served` (before the handshake).
pub fn accepts_link(served: usize) -> bool {
    served < MAX_SERVED_LINKS
}

/// Whether a holder accepts one more link from a peer it already serves `from_peer` links
/// (after the handshake authenticated the peer).
pub fn accepts_peer_link(from_peer: usize) -> bool {
    from_peer < MAX_LINKS_PER_PEER
}

/// Why a holder refuses a request on a link (and closes the link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The peer has no libp2p connection to this node now: a link only adds to one.
    NotConnected,
    /// The peer is blocked for misbehaviour.
    Blocked,
}

/// Whether a holder answers a request on a link from a peer that is (or is not) `connected`
/// over libp2p and `blocked`.
pub fn admit_request(connected: bool, blocked: bool) -> Result<(), Refusal> {
    if blocked {
        Err(Refusal::Blocked)
    } else if connected {
        Ok(())
    } else {
        Err(Refusal::NotConnected)
    }
}

/// Whether an asker sends a piece request over a ready link rather than libp2p: only requests
/// for piece bytes that ask the holder to fetch nothing (a fetch for the network or a bridge
/// may take long and stays on libp2p, where it does not hold up the link's other answers).
pub fn carries(asks_bytes: bool, asks_a_fetch: bool, link_ready: bool) -> bool {
    link_ready && asks_bytes && !asks_a_fetch
}

/// The link port an agent string names: a space-separated word `link/` followed by a port
/// number from 1 to 65535 (digits only). `None` for anything else (a node with links off, a
/// node built before links, another implementation, a malformed word).
pub fn link_port_of(agent: &str) -> Option<u16> {
    let digits = agent
        .split(' ')
        .find_map(|word| word.strip_prefix(LINK_TAG))?;
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|port| *port != 0)
}

#[cfg(test)]
mod tests;
