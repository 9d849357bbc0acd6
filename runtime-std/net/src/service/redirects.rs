//! Super-seeding at the piece server: the recipients of each piece of the blobs this node
//! served lately (core's [`RecentSends`], one per blob), so that a request that does not
//! insist for a piece this node sent to a couple of peers lately is answered with their ids
//! instead of the bytes.

use std::collections::HashMap;

use libp2p::PeerId;
use pyrsia_core::digest::Digest;
use pyrsia_core::piece_schedule::recent_sends::RecentSends;
use pyrsia_core::pieces::PIECE_LEN;
use pyrsia_core::time::Instant;

/// Blobs whose piece recipients are remembered, at most (the one served longest ago is
/// forgotten beyond): with core's per-blob bound, what peers' requests can make this memory
/// hold.
pub(crate) const RECENT_BLOBS: usize = 64;

/// The recipients of the pieces this node sent lately, per blob.
#[derive(Default)]
pub(crate) struct Redirects {
    blobs: HashMap<Digest, (Instant, RecentSends<PeerId>)>,
}

/// The piece an offset starts, if it starts one (a request at another offset is never
/// redirected nor counted).
fn piece_at(offset: u64) -> Option<u32> {
    offset
        .is_multiple_of(u64::from(PIECE_LEN))
        .then(|| u32::try_from(offset / u64::from(PIECE_LEN)).ok())
        .flatten()
}

impl Redirects {
    /// The peers to name instead of sending `asker` the piece of `digest` at `offset`, at
    /// `now`: core's rule ([`RecentSends::redirect`]). Call only for a request that does not
    /// insist.
    pub(crate) fn redirect(
        &mut self,
        digest: &Digest,
        offset: u64,
        asker: &PeerId,
        now: Instant,
    ) -> Option<Vec<PeerId>> {
        let piece = piece_at(offset)?;
        let (_, sends) = self.blobs.get_mut(digest)?;
        sends.redirect(piece, asker, now)
    }

    /// How many peers were sent the piece of `digest` at `offset` lately (core's
    /// [`RecentSends::sent_lately`]).
    pub(crate) fn sent_lately(&self, digest: &Digest, offset: u64, now: Instant) -> usize {
        let Some(piece) = piece_at(offset) else {
            return 0;
        };
        self.blobs
            .get(digest)
            .map_or(0, |(_, sends)| sends.sent_lately(piece, now))
    }

    /// This node takes the request of `peer` for the piece of `digest` at `offset` at `now`,
    /// to answer with the bytes.
    pub(crate) fn record(&mut self, digest: &Digest, offset: u64, peer: PeerId, now: Instant) {
        let Some(piece) = piece_at(offset) else {
            return;
        };
        if !self.blobs.contains_key(digest) && self.blobs.len() >= RECENT_BLOBS {
            let oldest = self
                .blobs
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(digest, _)| *digest);
            if let Some(oldest) = oldest {
                self.blobs.remove(&oldest);
            }
        }
        let (used, sends) = self
            .blobs
            .entry(*digest)
            .or_insert_with(|| (now, RecentSends::new()));
        *used = now;
        sends.record(piece, peer, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_pieces_count_and_the_blobs_kept_are_bounded() {
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut redirects = Redirects::default();
        let now = Instant::from_millis(5);
        let blob = Digest::sha256(b"blob");
        let piece = u64::from(PIECE_LEN);
        redirects.record(&blob, piece + 1, peers[0], now);
        redirects.record(&blob, piece + 1, peers[1], now);
        assert_eq!(redirects.redirect(&blob, piece + 1, &peers[2], now), None);
        redirects.record(&blob, piece, peers[0], now);
        redirects.record(&blob, piece, peers[1], now);
        assert_eq!(
            redirects.redirect(&blob, piece, &peers[2], now),
            Some(peers[..2].to_vec())
        );
        for k in 0..RECENT_BLOBS as u64 * 2 {
            let other = Digest::sha256(&k.to_le_bytes());
            redirects.record(&other, 0, peers[0], Instant::from_millis(10 + k));
        }
        assert_eq!(redirects.blobs.len(), RECENT_BLOBS);
        assert_eq!(
            redirects.redirect(&blob, piece, &peers[2], now),
            None,
            "the blob served longest ago is forgotten"
        );
    }
}
