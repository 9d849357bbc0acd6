//! Super-seeding: a node that sent a piece to a couple of peers lately sends the next asker
//! to them instead of sending it again (BitTorrent's super-seeding; Kraken's origin does
//! the same by handing each piece to few peers). The node fetching a fresh blob for the
//! network is asked for each piece by every node that knows no other holder yet; without
//! this rule its upload grew with the swarm (3.2–4.3× the blob at 16 nodes, BENCHMARKS.md:
//! "Who uploads the most, and why"). An asker redirected once asks for that piece
//! insisting ([`PieceRequest::insist`](super::PieceRequest::insist)), and an insisting
//! request is always served (subject to the busy rule), so a redirect costs at most one
//! round trip and never the piece.
//!
//! The one rule for the node (its piece server keeps a [`RecentSends`] per blob) and the
//! simulation (`pyrsia-sim pieces`, every honest node).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::time::{Duration, Instant};

/// Recipients of a piece lately after which a request that does not insist is sent to them
/// instead ([`RecentSends::redirect`]). Two: the piece's copies then double per round trip
/// away from the node, as in a binary tree, while its own upload of that piece stays at two.
pub const COPIES_BEFORE_REDIRECT: usize = 2;

/// How long a recipient counts as holding a piece it was sent: long enough for a swarm
/// pulling one blob together; short enough that a peer which has since left or evicted the
/// blob is soon no longer named.
pub const REDIRECT_WITHIN: Duration = Duration::from_secs(30);

/// Pieces whose recipients are remembered per blob, at most (the oldest are forgotten
/// beyond): bounds the memory a peer's requests can make a node spend (a few dozen bytes a
/// piece).
pub const PIECES_KEPT: usize = 1024;

/// The latest recipients of each piece of one blob, with when each was sent it.
#[derive(Clone, Debug)]
pub struct RecentSends<P> {
    sends: BTreeMap<u32, Vec<(P, Instant)>>,
}

impl<P> Default for RecentSends<P> {
    fn default() -> Self {
        RecentSends {
            sends: BTreeMap::new(),
        }
    }
}

impl<P: Clone + PartialEq> RecentSends<P> {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// `piece` is sent to `peer` at `now`: call when a request is taken to be answered with
    /// the bytes. Only the latest [`COPIES_BEFORE_REDIRECT`] recipients of a piece are kept.
    pub fn record(&mut self, piece: u32, peer: P, now: Instant) {
        if !self.sends.contains_key(&piece) && self.sends.len() >= PIECES_KEPT {
            self.forget_oldest(now);
        }
        let recipients = self.sends.entry(piece).or_default();
        recipients.retain(|(p, _)| *p != peer);
        recipients.push((peer, now));
        if recipients.len() > COPIES_BEFORE_REDIRECT {
            recipients.remove(0);
        }
    }

    /// Whom to send `asker` to instead of sending it `piece` at `now`: the recipients of the
    /// piece within [`REDIRECT_WITHIN`] (the asker aside), when there are
    /// [`COPIES_BEFORE_REDIRECT`] of them; `None`: serve it. Call only for a request that does
    /// not insist.
    pub fn redirect(&self, piece: u32, asker: &P, now: Instant) -> Option<Vec<P>> {
        let recipients: Vec<P> = self
            .sends
            .get(&piece)?
            .iter()
            .filter(|(p, at)| p != asker && now.saturating_since(*at) < REDIRECT_WITHIN)
            .map(|(p, _)| p.clone())
            .collect();
        (recipients.len() >= COPIES_BEFORE_REDIRECT).then_some(recipients)
    }

    /// Whether nothing is remembered (the blob's memory can be dropped).
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// Forgets what is too old to name at `now`, and if that frees nothing, the piece sent
    /// longest ago.
    fn forget_oldest(&mut self, now: Instant) {
        self.sends.retain(|_, recipients| {
            recipients
                .iter()
                .any(|(_, at)| now.saturating_since(*at) < REDIRECT_WITHIN)
        });
        if self.sends.len() < PIECES_KEPT {
            return;
        }
        let oldest = self
            .sends
            .iter()
            .min_by_key(|(_, recipients)| recipients.iter().map(|(_, at)| *at).max())
            .map(|(piece, _)| *piece);
        if let Some(piece) = oldest {
            self.sends.remove(&piece);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn the_third_asker_is_sent_to_the_latest_two_recipients_within_the_window() {
        let mut sends = RecentSends::new();
        assert_eq!(sends.redirect(7, &1, at(0)), None, "nobody was sent it");
        sends.record(7, 1, at(0));
        assert_eq!(sends.redirect(7, &2, at(1)), None, "one copy out: serve");
        sends.record(7, 2, at(1));
        assert_eq!(sends.redirect(7, &3, at(2)), Some(alloc::vec![1, 2]));
        assert_eq!(
            sends.redirect(7, &1, at(2)),
            None,
            "an asker is never sent to itself (it asks again: it lost the piece)"
        );
        assert_eq!(sends.redirect(8, &3, at(2)), None, "another piece");
        sends.record(7, 3, at(3));
        assert_eq!(
            sends.redirect(7, &4, at(4)),
            Some(alloc::vec![2, 3]),
            "the latest two"
        );
        let later = at(3).checked_add(REDIRECT_WITHIN).unwrap();
        assert_eq!(sends.redirect(7, &4, later), None, "too old to name");
    }

    #[test]
    fn memory_stays_bounded_whatever_a_peer_asks() {
        let mut sends = RecentSends::new();
        for piece in 0..(PIECES_KEPT as u32 * 3) {
            sends.record(piece, 1u8, at(u64::from(piece)));
            sends.record(piece, 1u8, at(u64::from(piece)));
            sends.record(piece, 2u8, at(u64::from(piece)));
            sends.record(piece, 3u8, at(u64::from(piece)));
        }
        assert!(sends.sends.len() <= PIECES_KEPT);
        assert!(
            sends
                .sends
                .values()
                .all(|r| r.len() <= COPIES_BEFORE_REDIRECT)
        );
        let last = PIECES_KEPT as u32 * 3 - 1;
        assert_eq!(
            sends.redirect(last, &9, at(u64::from(last))),
            Some(alloc::vec![2, 3]),
            "the newest pieces are the ones kept"
        );
    }
}
