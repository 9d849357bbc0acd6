//! Piece links: the rules for the dedicated connections that carry piece bytes between nodes.
//!
//! A node-to-node piece transfer over libp2p's TCP stack goes through TLS, yamux and the
//! swarm's event loop; on two cores that path costs about twice the CPU of the bytes' TLS
//! alone (BENCHMARKS.md). A node therefore also listens for **piece links**: plain TCP
//! connections secured with the same libp2p-tls certificates (so both ends are authenticated by
//! peer id), each carrying one asker's piece requests to one holder and the holder's answers
//! in the log-sync protocol's own frames, each frame behind the request's id. Answers come in
//! the order the holder has them, not the order asked: a request the holder answers only once
//! it has fetched the piece for the network holds up no other. Requests about pieces use a
//! link ([`carries`]: piece bytes, what a holder has, hash lists); everything else (bridges
//! through a relay, the log, gossip, the DHT) stays on libp2p, and so does every request
//! while no link is ready.
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
//!   of the previous answer (a silent or trickling socket is closed); each answer written
//!   within [`WRITE_STALL`] (an asker that stops reading is closed: [`write_stalled`]);
//! - a link, once its handshake names the peer, and every request on it only from a peer
//!   connected over libp2p now and not blocked ([`admit_request`]); refused, the link closes;
//! - at most [`OUTSTANDING_PER_LINK`] requests read and not yet answered: the holder reads no
//!   more frames until one is answered ([`reads_request`]); a request whose id is one of those
//!   outstanding is malformed ([`RequestId`]);
//! - frames are the log-sync codec's, with its size limits: a malformed frame closes the link
//!   and counts as the peer's misbehaviour, as on libp2p;
//! - each request passes the same per-peer rate limit and the same piece-serving rules as one
//!   on libp2p.
//!
//! An asker keeps at most [`IN_FLIGHT`] requests on a link, numbers them in order, gives up a
//! request unanswered for [`ANSWER_TIMEOUT`] (and the whole link when nothing at all arrived in
//! that time: [`overdue`]), drops a late answer to a request it gave up and closes the link on
//! an answer to an id it never sent ([`AnswerFate`]), and closes a link idle for
//! [`ASKER_IDLE`] (before the holder would).

use crate::time::{Duration, Instant};

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

/// How long a holder may take to write one answer on a link before it closes the link (the
/// asker reads too slowly, or not at all). The pieces it handed the link's writer count in its
/// piece-serving load (`piece_schedule::serves_now`), so a peer that asks and then stops
/// reading, or reads a byte now and then, would otherwise hold those answer slots and every
/// other asker would be told busy. An honest asker has given up an answer after
/// [`ANSWER_TIMEOUT`] anyway ([`write_stalled`]).
pub const WRITE_STALL: Duration = ANSWER_TIMEOUT;

/// Whether a holder closes a link at `now` whose writer began writing its current answer at
/// `writing_since` (`None`: it is writing nothing).
pub fn write_stalled(now: Instant, writing_since: Option<Instant>) -> bool {
    writing_since.is_some_and(|since| now.saturating_since(since) >= WRITE_STALL)
}

/// How long an asker keeps an unused link open: shorter than [`IDLE_TIMEOUT`], so the asker,
/// not the holder, ends an idle link and never loses a request to the holder's close.
pub const ASKER_IDLE: Duration = Duration::from_secs(300);

/// How long an asker waits for the answer to a request on a link (as for a piece request on
/// libp2p).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests an asker keeps on one link before their answers: as many piece requests as the
/// piece scheduler keeps on one peer (`piece_schedule::MAX_PER_PEER`), and room for a poll of
/// what the holder has and a hash list beside them, so that neither waits behind a full
/// pipeline (a test holds them so).
pub const IN_FLIGHT: usize = 10;

/// Requests a holder reads from one link and has not answered yet; it reads no more until one
/// is answered (twice what an asker keeps, so a pipeline is never held up by the limit).
pub const OUTSTANDING_PER_LINK: usize = 2 * IN_FLIGHT;

/// Whether a holder reads one more request frame from a link on which `outstanding` requests
/// wait for their answers.
pub fn reads_request(outstanding: usize) -> bool {
    outstanding < OUTSTANDING_PER_LINK
}

/// What a holder makes of a request's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestId {
    /// Answer it under this id.
    Fresh,
    /// A request with this id waits for its answer already: a malformed frame (the link closes
    /// and the peer is struck).
    Duplicate,
}

/// What a holder makes of a request whose id is (or is not) `outstanding` already.
pub fn request_id(outstanding: bool) -> RequestId {
    if outstanding {
        RequestId::Duplicate
    } else {
        RequestId::Fresh
    }
}

/// What an asker does with an answer frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerFate {
    /// It answers a request waiting on the link: hand it to the fetcher that asked.
    Deliver,
    /// It answers a request this asker sent and has given up ([`overdue`]): drop it.
    Late,
    /// It names an id this asker never sent: the holder is broken or lying; close the link.
    Unasked,
}

/// What an asker does with an answer for `id`, when its next request would get `next_id` (ids
/// count up from 0) and a request with `id` is (or is not) `waiting`.
pub fn answer_fate(id: u64, next_id: u64, waiting: bool) -> AnswerFate {
    if waiting {
        AnswerFate::Deliver
    } else if id < next_id {
        AnswerFate::Late
    } else {
        AnswerFate::Unasked
    }
}

/// What an asker does about its requests on a link when it checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overdue {
    /// Nothing yet.
    Wait,
    /// Give up the oldest request (its fetcher asks elsewhere); the link keeps the others.
    GiveUpOldest,
    /// Nothing arrived on the link for [`ANSWER_TIMEOUT`] while a request waited: close it and
    /// give up all its requests.
    CloseLink,
}

/// What an asker does at `now` about a link whose oldest waiting request went out at
/// `oldest_sent` (`None`: nothing waits) and on which the last frame arrived at `last_frame`
/// (or the link opened then, before any frame).
pub fn overdue(now: Instant, oldest_sent: Option<Instant>, last_frame: Instant) -> Overdue {
    let Some(sent) = oldest_sent else {
        return Overdue::Wait;
    };
    if now.saturating_since(sent) < ANSWER_TIMEOUT {
        Overdue::Wait
    } else if now.saturating_since(last_frame.max(sent)) >= ANSWER_TIMEOUT {
        Overdue::CloseLink
    } else {
        Overdue::GiveUpOldest
    }
}

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

/// What a request of the log-sync protocol asks, as far as the link rules care (the runtime
/// names the kind of each request it sends or reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkRequest {
    /// Bytes of a blob (also asking the holder to fetch them for the network).
    PieceBytes,
    /// What the holder has of a blob.
    Have,
    /// A blob's piece hash list.
    PieceHashes,
    /// Bytes the holder fetches through a relay's circuit for the asker.
    BridgedPiece,
    /// Anything else: checkpoints, log entries, consistency proofs.
    LogSync,
}

impl LinkRequest {
    /// Whether the request is about pieces a peer holds: what links carry ([`carries`]).
    /// A bridged piece is not: its answer depends on the relay circuits the holder carries.
    pub fn about_pieces(self) -> bool {
        matches!(
            self,
            LinkRequest::PieceBytes | LinkRequest::Have | LinkRequest::PieceHashes
        )
    }
}

/// Whether a request that a holder reads on a link is misbehaviour (a strike against the peer,
/// and the link closes): anything not about pieces ([`LinkRequest::about_pieces`]), since an
/// asker puts nothing else on a link ([`carries`]).
pub fn strikes_request(request: LinkRequest) -> bool {
    !request.about_pieces()
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

/// Whether an asker sends a request over a ready link rather than libp2p: every request
/// about pieces ([`LinkRequest::about_pieces`]) — piece bytes (also those that ask the holder to fetch the piece for the
/// network: answers come as the holder has them, so a slow one holds up no other), what the
/// holder has of a blob (a fetch polls each peer every round), a blob's piece hash list. On
/// libp2p each of those opens a yamux stream and negotiates its protocol; on a link it is one
/// frame. Log sync, membership and requests bridged through a relay stay on libp2p.
pub fn carries(request: LinkRequest, link_ready: bool) -> bool {
    link_ready && request.about_pieces()
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
