//! What one peer may cost this node on the request-response protocol: a rate per peer
//! (a token bucket, `pyrsia_core::rate`), a bound on piece answers being prepared at once, and
//! a strike for a malformed frame. Connection counts are bounded by the swarm's
//! `connection_limits` behaviour (see `behaviour.rs`).

use std::collections::HashMap;

use libp2p::PeerId;
use pyrsia_core::rate::TokenBucket;

/// Requests per second one peer may have answered (sustained): a peer pulling a blob at full
/// speed asks about 100 pieces of 1 MiB per second.
pub(crate) const PEER_REQUESTS_PER_SEC: u64 = 200;
/// The burst above [`PEER_REQUESTS_PER_SEC`].
pub(crate) const PEER_REQUESTS_BURST: u64 = 400;
/// Requests over the rate, from one peer, after which it is struck (and again every as many).
pub(crate) const DROPPED_PER_STRIKE: u64 = 1000;
/// Piece and entry answers prepared at once (each reads the disk off the event loop); beyond,
/// a piece request is answered `Missing` at once.
pub(crate) const MAX_ANSWERS_IN_PREPARATION: usize = 64;

/// Each connected peer's request budget.
#[derive(Default)]
pub(crate) struct PeerLimits {
    peers: HashMap<PeerId, (TokenBucket, u64)>,
}

/// What to do with a peer's request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Answer it.
    Answer,
    /// Over the rate: drop it unanswered.
    Drop,
    /// Over the rate for long: drop it and strike the peer.
    DropAndStrike,
}

impl PeerLimits {
    /// Charges one request of `peer` at `now_us`.
    pub(crate) fn admit(&mut self, peer: PeerId, now_us: u64) -> Admission {
        let (bucket, dropped) = self
            .peers
            .entry(peer)
            .or_insert_with(|| (TokenBucket::full(PEER_REQUESTS_BURST, now_us), 0));
        if bucket.allow(now_us, PEER_REQUESTS_PER_SEC, PEER_REQUESTS_BURST) {
            return Admission::Answer;
        }
        *dropped += 1;
        if dropped.is_multiple_of(DROPPED_PER_STRIKE) {
            Admission::DropAndStrike
        } else {
            Admission::Drop
        }
    }

    /// Forgets a peer that is no longer connected (the table holds connected peers only).
    pub(crate) fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_peer_is_dropped_then_struck_and_others_are_unaffected() {
        let mut limits = PeerLimits::default();
        let (flooder, other) = (PeerId::random(), PeerId::random());
        let outcomes: Vec<Admission> = (0..PEER_REQUESTS_BURST + DROPPED_PER_STRIKE)
            .map(|_| limits.admit(flooder, 0))
            .collect();
        let answered = outcomes.iter().filter(|a| **a == Admission::Answer).count();
        assert_eq!(answered as u64, PEER_REQUESTS_BURST);
        assert_eq!(outcomes.last(), Some(&Admission::DropAndStrike));
        assert_eq!(limits.admit(other, 0), Admission::Answer);
        limits.forget(&flooder);
        assert_eq!(
            limits.admit(flooder, 0),
            Admission::Answer,
            "a fresh connection, a fresh budget"
        );
    }
}
