//! The event loop's side of piece links (`crate::piece_link`; core's `piece_link` has the
//! rules): where each peer's links go, the links this node asks on, and the requests peers
//! send on links, answered as those on libp2p are.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use libp2p::{Multiaddr, PeerId, identity, multiaddr::Protocol};
use pyrsia_core::piece_link::{
    ASKER_IDLE, LinkRequest, admit_request, carries, link_port_of, strikes_request,
};
use pyrsia_core::rate::Admission;
use pyrsia_std::network::PieceLinkStatus;

use super::{EventLoop, PieceReplies, Responder};
use crate::codec::SyncRequest;
use crate::piece_link::ask::{Link, Outgoing};
use crate::piece_link::serve::ServedLinks;
use crate::piece_link::{Inbound, LinkTarget, direct_ip, std_duration};

/// How long this node waits before trying again to open a link that failed to open.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// This node's piece links: its listener's port and counts, and its links to peers.
pub(super) struct Links {
    key: identity::Keypair,
    /// The port peers open links to (named in the agent string).
    pub(super) port: u16,
    served: Arc<ServedLinks>,
    pub(super) inbound: smol::channel::Receiver<Inbound>,
    /// Holds `inbound` open should the listener's thread end (a closed channel would be ready
    /// at every turn of the event loop).
    _inbound_open: smol::channel::Sender<Inbound>,
    targets: HashMap<PeerId, LinkTarget>,
    asking: HashMap<PeerId, Link>,
    pieces_asked: u64,
    pieces_served: u64,
    requests_refused: u64,
}

impl Links {
    /// Listens for links on the IP of `listen` (`--p2p-listen`'s), on a port of its own.
    pub(super) fn start(
        listen: &Multiaddr,
        port: u16,
        key: &identity::Keypair,
    ) -> std::io::Result<Links> {
        let ip = listen
            .iter()
            .find_map(|p| match p {
                Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
                Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            })
            .ok_or_else(|| std::io::Error::other(format!("no IP in {listen}")))?;
        let (inbound_tx, inbound) = smol::channel::unbounded();
        let served = Arc::new(ServedLinks::default());
        let port =
            crate::piece_link::serve::listen((ip, port), key, inbound_tx.clone(), served.clone())?;
        Ok(Links {
            key: key.clone(),
            port,
            served,
            inbound,
            _inbound_open: inbound_tx,
            targets: HashMap::new(),
            asking: HashMap::new(),
            pieces_asked: 0,
            pieces_served: 0,
            requests_refused: 0,
        })
    }

    /// Piece answers handed to link threads and not yet written out (they count in the
    /// load core's `serves_now` is asked about).
    pub(super) fn writing(&self) -> usize {
        self.served.writing.load(Ordering::SeqCst)
    }

    /// A piece answer goes to a link's thread.
    pub(super) fn note_writing(&self) {
        self.served.writing.fetch_add(1, Ordering::SeqCst);
    }

    /// A piece answer for a link's thread found it gone.
    pub(super) fn done_writing(&self) {
        self.served.writing.fetch_sub(1, Ordering::SeqCst);
    }

    /// What `/peers` shows of the links.
    fn status(&self) -> PieceLinkStatus {
        PieceLinkStatus {
            port: Some(self.port),
            asking: self.asking.values().filter(|l| l.is_ready()).count(),
            served: self.served.open(),
            pieces_asked: self.pieces_asked,
            pieces_served: self.pieces_served,
            refused: self.requests_refused + self.served.refused.load(Ordering::Relaxed),
        }
    }
}

impl EventLoop {
    /// Notes where `peer`'s links go: the port its agent string names, at the IP of a direct
    /// connection to it.
    pub(super) fn note_link_target(&mut self, peer: &PeerId, agent: &str) {
        let ip = direct_ip(self.connections.addresses(peer));
        let Some(links) = &mut self.links else { return };
        match (link_port_of(agent), ip) {
            (Some(port), Some(ip)) => {
                let address = SocketAddr::new(ip, port);
                let target = links.targets.entry(*peer).or_insert(LinkTarget {
                    address,
                    retry_after: None,
                });
                if target.address != address {
                    *target = LinkTarget {
                        address,
                        retry_after: None,
                    };
                    links.asking.remove(peer);
                }
            }
            _ => {
                links.targets.remove(peer);
                links.asking.remove(peer);
            }
        }
    }

    /// Opens a link to `peer` now, if it names a link port (called once it identified: the
    /// link is ready before the first pieces are asked).
    pub(super) fn open_link_early(&mut self, peer: &PeerId) {
        if let Some(links) = &mut self.links
            && !links.asking.contains_key(peer)
        {
            open_link(links, *peer);
        }
    }

    /// Forgets `peer`'s links once it has no connection left.
    pub(super) fn forget_links(&mut self, peer: &PeerId) {
        if let Some(links) = &mut self.links {
            links.targets.remove(peer);
            links.asking.remove(peer);
        }
    }

    /// Sends a piece request on `peer`'s link when core's rule says it goes there and the link
    /// is ready (opening one if there is none); gives the request back for libp2p otherwise.
    pub(super) fn send_on_link(
        &mut self,
        peer: PeerId,
        message: SyncRequest,
        tag: u64,
        reply: PieceReplies,
    ) -> Option<(SyncRequest, u64, PieceReplies)> {
        let Some(links) = &mut self.links else {
            return Some((message, tag, reply));
        };
        let kind = link_request(&message);
        if !kind.about_pieces() {
            // (No link would carry it: none is opened for it.)
            return Some((message, tag, reply));
        }
        if links.asking.get(&peer).is_some_and(Link::is_closed) {
            links.asking.remove(&peer);
        }
        let Some(link) = links.asking.get_mut(&peer) else {
            open_link(links, peer);
            return Some((message, tag, reply));
        };
        if !carries(kind, link.is_ready()) {
            return Some((message, tag, reply));
        }
        let asks_bytes = kind == LinkRequest::PieceBytes;
        match link.send(Outgoing {
            request: message,
            tag,
            reply,
        }) {
            Ok(()) => {
                links.pieces_asked += u64::from(asks_bytes);
                None
            }
            Err(back) => {
                links.asking.remove(&peer);
                Some((back.request, back.tag, back.reply))
            }
        }
    }

    /// What a link thread hands over: a request, answered as one on libp2p once core's rule
    /// admits the peer; or a malformed frame, the peer's misbehaviour.
    pub(super) fn on_link_inbound(&mut self, inbound: Inbound) {
        let (peer, request, respond) = match inbound {
            Inbound::Malformed { peer, why } => {
                self.strike(peer, &why);
                return;
            }
            Inbound::Opened { peer, admitted } => {
                let admit = self.admit_on_link(&peer);
                let _ = admitted.send(admit);
                return;
            }
            Inbound::Request {
                peer,
                request,
                respond,
            } => (peer, request, respond),
        };
        if !self.admit_on_link(&peer) {
            return;
        }
        let kind = link_request(&request);
        if strikes_request(kind) {
            self.strike(
                peer,
                "a request about something other than pieces on a piece link",
            );
            return;
        }
        let now_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match self.peer_limits.admit(peer, now_us) {
            Admission::Answer => {}
            Admission::Drop => {
                let _ = respond.send(crate::codec::SyncResponse::Busy);
                return;
            }
            Admission::DropAndStrike => {
                self.strike(peer, "requests far over the rate limit");
                let _ = respond.send(crate::codec::SyncResponse::Busy);
                return;
            }
        }
        // (`strikes_request` let nothing else through.)
        let Ok((request, asked)) = super::content::about_pieces(request) else {
            return;
        };
        if let (LinkRequest::PieceBytes, Some(links)) = (kind, &mut self.links) {
            links.pieces_served += 1;
        }
        self.serve_piece(peer, None, Responder::Link(respond), request, asked);
    }

    /// Whether `peer` may use a link now (core's `admit_request`); a refusal is counted and
    /// logged, and the link's thread closes the link.
    fn admit_on_link(&mut self, peer: &PeerId) -> bool {
        let connected = self.swarm.is_connected(peer);
        let blocked = self
            .swarm
            .behaviour()
            .blocked
            .blocked_peers()
            .contains(peer);
        let Err(refusal) = admit_request(connected, blocked) else {
            return true;
        };
        if let Some(links) = &mut self.links {
            links.requests_refused += 1;
        }
        tracing::info!(%peer, ?refusal, "refused a piece link; closing it");
        false
    }

    /// Every tick: ends links idle for core's `ASKER_IDLE` and those that closed, adds the
    /// bytes links received to their peers' counts and shows the links in `/peers`.
    pub(super) fn tick_links(&mut self) {
        let Some(links) = &mut self.links else { return };
        let idle = std_duration(ASKER_IDLE);
        links
            .asking
            .retain(|_, link| !link.is_closed() && link.last_used.elapsed() < idle);
        for (peer, link) in &links.asking {
            if link.is_ready()
                && let Some(target) = links.targets.get_mut(peer)
            {
                target.retry_after = None;
            }
        }
        let received: Vec<(PeerId, u64)> = links
            .asking
            .iter()
            .map(|(peer, link)| (*peer, link.take_received()))
            .filter(|(_, bytes)| *bytes > 0)
            .collect();
        let status = links.status();
        for (peer, bytes) in received {
            self.count(&peer, 0, usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        self.status().piece_links = status;
    }
}

/// The kind of `request` that core's link rules decide on.
fn link_request(request: &SyncRequest) -> LinkRequest {
    match request {
        SyncRequest::Piece { .. } => LinkRequest::PieceBytes,
        SyncRequest::Have { .. } => LinkRequest::Have,
        SyncRequest::PieceHashes { .. } => LinkRequest::PieceHashes,
        SyncRequest::BridgePiece { .. } => LinkRequest::BridgedPiece,
        SyncRequest::Checkpoint
        | SyncRequest::Entries { .. }
        | SyncRequest::Consistency { .. }
        | SyncRequest::Malformed(_) => LinkRequest::LogSync,
    }
}

/// Opens a link to `peer` if it names a link port and no earlier attempt failed lately.
fn open_link(links: &mut Links, peer: PeerId) {
    let Some(target) = links.targets.get_mut(&peer) else {
        return;
    };
    if target.retry_after.is_some_and(|at| Instant::now() < at) {
        return;
    }
    // A link that fails to open is not tried again for a while (a firewall, a NAT); one
    // that opens clears nothing here: it is used until it closes.
    target.retry_after = Some(Instant::now() + RETRY_AFTER);
    if let Some(link) = Link::open(target.address, &links.key, peer) {
        tracing::debug!(%peer, address = %target.address, "opening a piece link");
        links.asking.insert(peer, link);
    }
}
