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
//! Different askers are named different holders: the askers sent elsewhere count as
//! holders too (they fetch the piece from the peers they were named), and each holder is
//! named to at most [`NAMED_MAX`] askers while another can be named, so the copies of a
//! piece spread as a tree, each holder serving about two, rather than every asker being
//! sent to the same first two recipients.
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

/// Pieces whose holders are remembered per blob, at most (the oldest are forgotten
/// beyond): with [`HOLDERS_KEPT`], bounds the memory peers' requests can make a node spend
/// (a few hundred bytes a piece).
pub const PIECES_KEPT: usize = 1024;

/// Times one holder is named to askers, at most, while others can be named
/// ([`RecentSends::redirect`]): each asker it is named to is then named in its place, so
/// the holders of a piece form a tree that widens by two a level and no holder is sent the
/// whole swarm (naming the same two recipients to every asker made them hot spots at
/// 10,000 nodes: BENCHMARKS.md, "Closing the sparse-view gap").
pub const NAMED_MAX: u8 = 2;

/// How long a holder asked for a piece insisting (an asker it was named to) waits for the
/// piece to arrive when it is still receiving it, before it answers that it lacks it: the
/// holder was named as soon as the node naming it took its request, so the asker's request
/// may come before the piece itself. Without the wait the asker turned back to the node that
/// named it, which then sent the piece once more (with piece links, whose round trips are
/// short, the node fetching for the network uploaded 4.0-4.8x the blob at 16 nodes, against
/// 3.1-3.3x with the wait; BENCHMARKS.md, "Piece links with answers out of order").
pub const NAMED_PATIENCE: Duration = Duration::from_millis(300);

/// Holders of one piece remembered, at most: the [`COPIES_BEFORE_REDIRECT`] recipients and
/// the askers sent elsewhere named least (enough for the tree: each asker takes two names
/// and gives two).
pub const HOLDERS_KEPT: usize = 6;

/// A peer taken to hold a piece: sent it by this node, or sent elsewhere for it by this
/// node (it is fetching it from the peers it was named).
#[derive(Clone, Debug)]
struct Holder<P> {
    peer: P,
    /// When it was sent the piece, or sent elsewhere for it.
    at: Instant,
    /// Whether this node sent it the piece (else it was sent elsewhere).
    sent: bool,
    /// Askers it was named to.
    named: u8,
}

/// The latest holders of each piece of one blob: its recipients, and the askers sent
/// elsewhere for it, with when.
#[derive(Clone, Debug)]
pub struct RecentSends<P> {
    sends: BTreeMap<u32, Vec<Holder<P>>>,
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
    /// the bytes. Only the latest [`COPIES_BEFORE_REDIRECT`] recipients of a piece count.
    pub fn record(&mut self, piece: u32, peer: P, now: Instant) {
        if !self.sends.contains_key(&piece) && self.sends.len() >= PIECES_KEPT {
            self.forget_oldest(now);
        }
        let holders = self.sends.entry(piece).or_default();
        holders.retain(|h| h.peer != peer);
        holders.push(Holder {
            peer,
            at: now,
            sent: true,
            named: 0,
        });
        if holders.iter().filter(|h| h.sent).count() > COPIES_BEFORE_REDIRECT {
            // The oldest recipient: holders are kept in the order they came.
            if let Some(oldest) = holders.iter().position(|h| h.sent) {
                holders.remove(oldest);
            }
        }
        trim(holders);
    }

    /// Whom to send `asker` to instead of sending it `piece` at `now`, or `None`: serve it.
    /// It is sent elsewhere once [`COPIES_BEFORE_REDIRECT`] peers were sent the piece
    /// within [`REDIRECT_WITHIN`] (the asker aside), and named two holders: those named
    /// fewer than [`NAMED_MAX`] times first, the longest-held first. The asker then counts
    /// as a holder to name to later askers. Call only for a request that does not insist.
    pub fn redirect(&mut self, piece: u32, asker: &P, now: Instant) -> Option<Vec<P>> {
        let holders = self.sends.get_mut(&piece)?;
        holders.retain(|h| now.saturating_since(h.at) < REDIRECT_WITHIN);
        let recipients = holders
            .iter()
            .filter(|h| h.sent && h.peer != *asker)
            .count();
        if recipients < COPIES_BEFORE_REDIRECT {
            return None;
        }
        let mut order: Vec<usize> = (0..holders.len())
            .filter(|&i| holders[i].peer != *asker)
            .collect();
        order.sort_by_key(|&i| (holders[i].named >= NAMED_MAX, holders[i].at));
        let named: Vec<P> = order
            .into_iter()
            .take(COPIES_BEFORE_REDIRECT)
            .map(|i| {
                holders[i].named = holders[i].named.saturating_add(1);
                holders[i].peer.clone()
            })
            .collect();
        if !holders.iter().any(|h| h.peer == *asker) {
            holders.push(Holder {
                peer: asker.clone(),
                at: now,
                sent: false,
                named: 0,
            });
            trim(holders);
        }
        Some(named)
    }

    /// How many peers were sent `piece` within [`REDIRECT_WITHIN`] of `now` (at most
    /// [`COPIES_BEFORE_REDIRECT`]): with that many, an insisting request for it is taken only
    /// with spare room ([`super::serves_insisting_now`]).
    pub fn sent_lately(&self, piece: u32, now: Instant) -> usize {
        self.sends.get(&piece).map_or(0, |holders| {
            holders
                .iter()
                .filter(|h| h.sent && now.saturating_since(h.at) < REDIRECT_WITHIN)
                .count()
        })
    }

    /// Whether nothing is remembered (the blob's memory can be dropped).
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
    }

    /// Forgets what is too old to name at `now`, and if that frees nothing, the piece sent
    /// longest ago.
    fn forget_oldest(&mut self, now: Instant) {
        self.sends.retain(|_, holders| {
            holders
                .iter()
                .any(|h| now.saturating_since(h.at) < REDIRECT_WITHIN)
        });
        if self.sends.len() < PIECES_KEPT {
            return;
        }
        let oldest = self
            .sends
            .iter()
            .min_by_key(|(_, holders)| holders.iter().map(|h| h.at).max())
            .map(|(piece, _)| *piece);
        if let Some(oldest) = oldest {
            self.sends.remove(&oldest);
        }
    }
}

/// Keeps at most [`HOLDERS_KEPT`] holders of a piece: forgets askers sent elsewhere that
/// were named the most, the oldest first (the recipients this node sent it stay).
fn trim<P>(holders: &mut Vec<Holder<P>>) {
    while holders.len() > HOLDERS_KEPT {
        let Some(drop) = (0..holders.len())
            .filter(|&i| !holders[i].sent)
            .max_by_key(|&i| (holders[i].named, core::cmp::Reverse(holders[i].at)))
        else {
            return;
        };
        holders.remove(drop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn recipients_count_as_sent_lately_within_the_window_only() {
        let mut sends = RecentSends::new();
        assert_eq!(sends.sent_lately(7, at(0)), 0);
        sends.record(7, 1, at(0));
        assert_eq!(sends.sent_lately(7, at(1)), 1);
        sends.record(7, 2, at(1));
        sends.record(7, 3, at(2));
        assert_eq!(sends.sent_lately(7, at(3)), COPIES_BEFORE_REDIRECT);
        // An asker sent elsewhere is a holder, not a recipient.
        assert!(sends.redirect(7, &4, at(3)).is_some());
        assert_eq!(sends.sent_lately(7, at(3)), COPIES_BEFORE_REDIRECT);
        assert_eq!(sends.sent_lately(8, at(3)), 0, "another piece");
        let later = 2 + REDIRECT_WITHIN.as_micros() / 1_000;
        assert_eq!(sends.sent_lately(7, at(later)), 0, "out of the window");
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
    fn askers_sent_elsewhere_are_named_in_their_turn_and_no_holder_more_than_twice() {
        let mut sends = RecentSends::new();
        sends.record(7, 1u32, at(0));
        sends.record(7, 2, at(1));
        let mut ask = |asker: u32| {
            let mut named = sends.redirect(7, &asker, at(u64::from(asker))).unwrap();
            named.sort_unstable();
            named
        };
        assert_eq!(ask(3), [1, 2]);
        assert_eq!(ask(4), [1, 2]);
        assert_eq!(
            ask(5),
            [3, 4],
            "the recipients were named twice: the askers they were named to in their place"
        );
        assert_eq!(ask(6), [3, 4]);
        assert_eq!(ask(7), [5, 6]);

        // A crowd of askers: each is named at most twice, and never to itself.
        let mut times = BTreeMap::new();
        for asker in 8..200u32 {
            for peer in ask(asker) {
                assert_ne!(peer, asker);
                *times.entry(peer).or_insert(0u8) += 1;
            }
        }
        assert!(times.values().all(|&n| n <= NAMED_MAX), "{times:?}");
        assert!(
            sends.sends[&7].len() <= HOLDERS_KEPT,
            "memory stays bounded"
        );
        assert_eq!(
            sends.sends[&7].iter().filter(|h| h.sent).count(),
            COPIES_BEFORE_REDIRECT,
            "the recipients are kept: the askers are sent elsewhere as long as they are recent"
        );
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
