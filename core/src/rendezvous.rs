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

/// The candidate nearest to `key` in Kademlia's metric: the XOR of SHA-256(candidate) and
/// SHA-256(key), compared as a big-endian number (libp2p hashes peer ids and record keys so).
/// This is who fetches a blob from the upstream for the network: a node that asks the DHT
/// for the peers closest to the digest gets the same nearest one whatever peers it is
/// connected to, so nodes with different peer sets agree. `None` without candidates.
pub fn nearest<'c, I>(key: &[u8], candidates: I) -> Option<&'c [u8]>
where
    I: IntoIterator<Item = &'c [u8]>,
{
    let target = crate::digest::Digest::sha256(key);
    candidates
        .into_iter()
        .map(|c| (distance(&target, c), c))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, c)| c)
}

/// The candidates in [`nearest`]'s order, nearest first, at most `n` of them (equal
/// candidates once): whom to ask in turn when the nearest does not fetch the blob (it left,
/// or lies), so that nodes agree on the next one too.
#[cfg(feature = "alloc")]
pub fn nearest_first<'c, I>(key: &[u8], candidates: I, n: usize) -> alloc::vec::Vec<&'c [u8]>
where
    I: IntoIterator<Item = &'c [u8]>,
{
    let target = crate::digest::Digest::sha256(key);
    let mut ranked: alloc::vec::Vec<([u8; 32], &'c [u8])> = candidates
        .into_iter()
        .map(|c| (distance(&target, c), c))
        .collect();
    ranked.sort();
    ranked.dedup_by(|a, b| a.1 == b.1);
    ranked.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Kademlia's distance from `target` (a hashed key) to `candidate`.
fn distance(target: &crate::digest::Digest, candidate: &[u8]) -> [u8; 32] {
    let hashed = crate::digest::Digest::sha256(candidate);
    let mut distance = [0u8; 32];
    for (d, (a, b)) in distance
        .iter_mut()
        .zip(hashed.as_bytes().iter().zip(target.as_bytes()))
    {
        *d = a ^ b;
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_is_the_same_in_every_view_that_holds_it() {
        let nodes: alloc::vec::Vec<[u8; 4]> = (0u32..50).map(|i| i.to_be_bytes()).collect();
        for k in 0u32..100 {
            let key = k.to_le_bytes();
            let all = nearest(&key, nodes.iter().map(|n| &n[..])).unwrap();
            // Any view that includes the nearest (here: every other node, plus it) agrees.
            let view = nodes
                .iter()
                .enumerate()
                .filter(|(i, n)| i % 2 == (k as usize) % 2 || &n[..] == all)
                .map(|(_, n)| &n[..]);
            assert_eq!(nearest(&key, view), Some(all));
        }
        assert_eq!(nearest(b"k", core::iter::empty()), None);
        let key = 7u32.to_le_bytes();
        let order = nearest_first(&key, nodes.iter().map(|n| &n[..]), 3);
        assert_eq!(order.len(), 3);
        assert_eq!(Some(order[0]), nearest(&key, nodes.iter().map(|n| &n[..])));
        // Without the nearest, the second comes first.
        let rest = nodes.iter().map(|n| &n[..]).filter(|n| *n != order[0]);
        assert_eq!(nearest(&key, rest), Some(order[1]));
    }

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
