//! Piece links (core's `piece_link` has the rules and limits): TCP connections secured with
//! the node's libp2p-tls certificate that carry one asker's piece requests to one holder and
//! the answers back, outside libp2p's multiplexer and event loop. Each end is a blocking thread:
//! [`serve`] listens and answers (through the event loop, which applies the same rules as to a
//! request on libp2p), [`ask`] keeps a pipeline of requests to one peer. Each link is read by
//! one thread and written by another ([`split`]), so answers go out in the order the holder
//! has them. rustls does each link's handshake; [`records`] then protects what it carries.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::codec::{SyncRequest, SyncResponse};

pub(crate) mod ask;
mod records;
pub(crate) mod serve;
mod split;

/// What a link thread hands the event loop.
pub(crate) enum Inbound {
    /// `peer` completed a link's handshake: the event loop says whether it may keep it
    /// (dropping `admitted` says no).
    Opened {
        peer: PeerId,
        admitted: std::sync::mpsc::Sender<bool>,
    },
    /// A piece request from `peer`: the answer goes to `respond`; dropping `respond` refuses
    /// it and closes the link.
    Request {
        peer: PeerId,
        request: SyncRequest,
        respond: LinkAnswer,
    },
    /// `peer` sent a frame that does not decode or is over a limit (the link is closed).
    Malformed { peer: PeerId, why: String },
}

/// Where the answer to one request on a link goes: the link's writing thread, under the
/// request's id. Dropped unanswered, it refuses the request and the link closes.
pub(crate) struct LinkAnswer {
    id: u64,
    answers: std::sync::mpsc::Sender<(u64, Option<SyncResponse>)>,
    answered: bool,
}

impl LinkAnswer {
    /// Where the answer to request `id` goes.
    pub(crate) fn new(
        id: u64,
        answers: std::sync::mpsc::Sender<(u64, Option<SyncResponse>)>,
    ) -> Self {
        LinkAnswer {
            id,
            answers,
            answered: false,
        }
    }

    /// Hands `response` to the link's writing thread; false when the link is gone.
    pub(crate) fn send(mut self, response: SyncResponse) -> bool {
        self.answered = true;
        self.answers.send((self.id, Some(response))).is_ok()
    }
}

impl Drop for LinkAnswer {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.answers.send((self.id, None));
        }
    }
}

/// The std duration of a core duration.
pub(crate) fn std_duration(d: pyrsia_core::time::Duration) -> Duration {
    Duration::from_micros(d.as_micros())
}

/// The IP of the first address in `addresses` that is not through a relay.
pub(crate) fn direct_ip<'a>(
    mut addresses: impl Iterator<Item = &'a libp2p::Multiaddr>,
) -> Option<IpAddr> {
    use libp2p::multiaddr::Protocol;
    addresses
        .find(|a| !crate::relay::is_relayed(a))?
        .iter()
        .find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })
}

/// Where a peer's links go and when this node may try again after one failed to open.
pub(crate) struct LinkTarget {
    pub(crate) address: SocketAddr,
    pub(crate) retry_after: Option<Instant>,
}
