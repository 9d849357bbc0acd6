//! Rendezvous (highest-random-weight) hashing: every node ranks the same candidates for the
//! same key in the same order without talking to the others. It picks which node fetches a
//! blob from the upstream for the whole network, and (with the consensus) which members build.

use crate::digest::Hasher;

/// The prefix of every rendezvous score, so scores never collide with other hashes.
pub const RENDEZVOUS_DOMAIN: &[u8] = b"pyrsia/rendezvous/v1\0";

/// `candidate`'s score for `key`: SHA-256(domain ‖ len(key) ‖ key ‖ candidate). Higher wins.
pub fn score(key: &[u8], candidate: &[u8]) -> [u8; 32] {
    let mut h = Hasher::new();
    h.update(RENDEZVOUS_DOMAIN);
    h.update(&(key.len() as u64).to_be_bytes());
    h.update(key);
    h.update(candidate);
    *h.finish().as_bytes()
}

/// The candidate with the highest score for `key` (ties, which need equal candidates, go to the
/// first). `None` when there are no candidates.
pub fn winner<'c, I>(key: &[u8], candidates: I) -> Option<&'c [u8]>
where
    I: IntoIterator<Item = &'c [u8]>,
{
    let mut best: Option<(&'c [u8], [u8; 32])> = None;
    for candidate in candidates {
        let s = score(key, candidate);
        if best.as_ref().is_none_or(|(_, b)| s > *b) {
            best = Some((candidate, s));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_view_of_the_same_set_agrees_and_losing_the_winner_only_moves_its_keys() {
        let nodes: [&[u8]; 5] = [b"a", b"b", b"c", b"d", b"e"];
        let mut reversed = nodes;
        reversed.reverse();
        let mut moved = 0;
        for k in 0u32..200 {
            let key = k.to_be_bytes();
            let w = winner(&key, nodes).unwrap();
            assert_eq!(winner(&key, reversed), Some(w), "order does not matter");
            // Without node "c", only the keys "c" won change hands.
            let without: Vec<&[u8]> = nodes.iter().copied().filter(|n| *n != b"c").collect();
            let w2 = winner(&key, without).unwrap();
            if w != b"c" {
                assert_eq!(w2, w);
            } else {
                moved += 1;
            }
        }
        assert!(
            (20..=60).contains(&moved),
            "about a fifth of the keys were c's: {moved}"
        );
        assert_eq!(winner(b"k", core::iter::empty()), None);
    }
}
