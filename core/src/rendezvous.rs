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

/// How many nodes, nearest a digest first, are asked in turn to fetch it from the upstream
/// for the network: the nearest may have left or may lie, and the next one then takes over,
/// while a stranger can still make no more than this many nodes fetch any one blob.
pub const CLAIMANTS: usize = 3;

/// The nodes that fetch the blob `key` from the upstream for the whole network, in the order
/// they are asked: the [`CLAIMANTS`] nearest it among `local` (this node; `None` in the
/// answer) and `peers` (the peers the DHT finds nearest the key and those connected now;
/// `Some(index)` into them). Nodes connected to different peers agree, because the DHT's
/// lookup is global; when the nearest leaves, the next takes over. A node honours a peer's
/// request to fetch a blob for the network only when it is among them.
#[cfg(feature = "alloc")]
pub fn claimants(key: &[u8], local: &[u8], peers: &[&[u8]]) -> alloc::vec::Vec<Option<usize>> {
    let candidates = peers.iter().copied().chain(core::iter::once(local));
    nearest_first(key, candidates, CLAIMANTS)
        .into_iter()
        .map(|chosen| {
            (chosen != local)
                .then(|| peers.iter().position(|p| *p == chosen))
                .flatten()
        })
        .collect()
}

/// What a node asked by a peer to fetch a blob for the network does ([`honour`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Honour {
    /// It is not among the claimants in its own view: it refuses, so a stranger cannot
    /// spread its fetches over every node.
    Refuse,
    /// It is the nearest the digest in its own view: it fetches from its upstream at once.
    Upstream,
    /// Claimants nearer the digest come before it in its own view: the asker's view missed
    /// them (other peers, or peers at their connection limit). It downloads the blob as for
    /// a client of its own, asking the nearer ones first, and fetches from its upstream only
    /// at its own turn. Each such hand-on goes to a node nearer the digest, so it never loops.
    ThroughNearer,
}

/// What this node does when a peer asks it to fetch a blob for the network, from the
/// claimants in its own view in order (`None` is this node; [`claimants`]).
pub fn honour<P>(claimants: &[Option<P>]) -> Honour {
    match claimants.iter().position(Option::is_none) {
        None => Honour::Refuse,
        Some(0) => Honour::Upstream,
        Some(_) => Honour::ThroughNearer,
    }
}

/// Whether a node whose turn in the claim walk came looks again ([`NEARER_DOWNLOADER_LOOKS`]
/// times at most), before it fetches a blob from the upstream, for nodes nearer the digest
/// already downloading it ([`nearer_downloader`]), and defers to them. Only at a download's
/// start (`resuming` is false: a download resuming after its source died is next in line),
/// and only when its view may miss the nearest node: a claimant nearer it was asked and did
/// not serve (`nearer_failed`: gone, or alive and at its connection limit, refusing this
/// node), or its lookup of the nodes nearest the digest could not reach some it was told of
/// (`lookup_unreached`: such a node, at its limit, may be the nearest; it then fetches for
/// everyone, and two that each think themselves nearest would both fetch). A node that
/// knows itself the nearest fetches at once.
pub fn look_again_before_upstream(
    nearer_failed: bool,
    lookup_unreached: bool,
    resuming: bool,
) -> bool {
    (nearer_failed || lookup_unreached) && !resuming
}

/// Of the nodes downloading a blob now (`downloaders`, from the DHT's provider records), the
/// index of the one nearest the digest `key`, when it is nearer than this node (`local`): it
/// fetches the blob for the network, and this node defers to it. `None`: this node is the
/// nearest downloader, and fetches from the upstream.
pub fn nearer_downloader(key: &[u8], local: &[u8], downloaders: &[&[u8]]) -> Option<usize> {
    let target = crate::digest::Digest::sha256(key);
    let own = distance(&target, local);
    downloaders
        .iter()
        .enumerate()
        .map(|(i, d)| (distance(&target, d), i))
        .filter(|(d, _)| *d < own)
        .min()
        .map(|(_, i)| i)
}

/// How many times a node that looks again before the upstream ([`look_again_before_upstream`])
/// asks the DHT who downloads the blob, about every quarter second, before it concludes that
/// no nearer node does. One look is not enough: a nearer node that began its download a moment
/// earlier is announced only once its provider record is stored, which takes it a lookup of the
/// nodes nearest the digest first (in the failing run read, one look 90 ms after that node
/// started missed it). The looks stop at the first nearer downloader found.
pub const NEARER_DOWNLOADER_LOOKS: usize = 4;

/// How many times a node that defers to a nearer downloader it cannot reach looks for the
/// peers downloading the blob from it (they serve what they hold), about every quarter
/// second, before it fetches the blob from the upstream itself.
pub const REJOIN_LOOKUPS: usize = 6;

/// Whether a peer downloading the blob is worth following when this node defers: it holds
/// `pieces` pieces from the start and `ahead` more beyond them. One holding none may be
/// waiting on this very node (each found the other downloading): following it stalls both.
pub fn worth_following(pieces: u32, ahead: usize) -> bool {
    pieces > 0 || ahead > 0
}

/// How many times a download whose peers stopped delivering asks again who holds or fetches
/// the rest (each claimant in turn may die), before it resumes from the upstream itself.
/// Each round must have made progress ([`ask_peers_again`]).
pub const TAKEOVER_ROUNDS: usize = CLAIMANTS + 1;

/// Whether a download whose peers stopped delivering, in round `round` (from 0), asks the
/// peers again rather than its upstream: only when that round moved the download on (a dead
/// claimant's followers did; peers that never delivered will not) and rounds are left.
pub fn ask_peers_again(round: usize, progressed: bool) -> bool {
    progressed && round + 1 < TAKEOVER_ROUNDS
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
    fn claimants_are_the_nearest_three_with_this_node_as_none() {
        let nodes: alloc::vec::Vec<[u8; 4]> = (0u32..8).map(|i| i.to_be_bytes()).collect();
        let key = b"blob";
        let ranked = nearest_first(key, nodes.iter().map(|n| &n[..]), CLAIMANTS);
        let (local, peers): (&[u8], alloc::vec::Vec<&[u8]>) = (
            ranked[1],
            nodes
                .iter()
                .map(|n| &n[..])
                .filter(|n| *n != ranked[1])
                .collect(),
        );
        let chosen = claimants(key, local, &peers);
        assert_eq!(chosen.len(), CLAIMANTS);
        assert_eq!(
            chosen[1], None,
            "this node, second nearest, is second in line"
        );
        assert_eq!(chosen[0].map(|i| peers[i]), Some(ranked[0]));
        assert_eq!(chosen[2].map(|i| peers[i]), Some(ranked[2]));
    }

    #[test]
    fn peers_are_asked_again_only_after_progress_and_while_rounds_are_left() {
        assert!(ask_peers_again(0, true));
        assert!(
            !ask_peers_again(0, false),
            "peers that never delivered: the upstream"
        );
        assert!(ask_peers_again(TAKEOVER_ROUNDS - 2, true));
        assert!(
            !ask_peers_again(TAKEOVER_ROUNDS - 1, true),
            "rounds are bounded"
        );
    }

    #[test]
    fn a_claimant_with_nearer_ones_in_its_view_fetches_through_them() {
        assert_eq!(honour::<u8>(&[None, Some(1), Some(2)]), Honour::Upstream);
        assert_eq!(honour(&[Some(1u8), None, Some(2)]), Honour::ThroughNearer);
        assert_eq!(honour(&[Some(1u8), Some(2), Some(3)]), Honour::Refuse);
        assert_eq!(honour::<u8>(&[]), Honour::Refuse);
    }

    #[test]
    fn a_node_that_may_not_see_the_nearest_defers_to_a_nearer_downloader() {
        assert!(
            !look_again_before_upstream(false, false, false),
            "a node that knows itself the nearest fetches at once"
        );
        assert!(look_again_before_upstream(true, false, false));
        assert!(look_again_before_upstream(false, true, false));
        assert!(
            !look_again_before_upstream(true, true, true),
            "a resuming download is next in line"
        );
        let nodes: alloc::vec::Vec<[u8; 4]> = (0u32..6).map(|i| i.to_be_bytes()).collect();
        let key = b"blob";
        let ranked = nearest_first(key, nodes.iter().map(|n| &n[..]), 6);
        // This node is third nearest; the downloaders are the fifth, the first and the second.
        let downloaders = [ranked[4], ranked[0], ranked[1]];
        assert_eq!(nearer_downloader(key, ranked[2], &downloaders), Some(1));
        assert_eq!(
            nearer_downloader(key, ranked[0], &downloaders[..1]),
            None,
            "the nearest defers to nobody"
        );
        assert!(
            !worth_following(0, 0),
            "one holding nothing may wait on this node"
        );
        assert!(worth_following(1, 0));
        assert!(worth_following(0, 2));
    }

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
