//! Blobs in pieces: the fixed piece size, and the piece root — an RFC 9162 Merkle tree over
//! the pieces' bytes — that commits to every piece at once. A commit in the log lists the piece
//! root of each large blob, so a node fetching pieces from peers checks each piece on arrival
//! (against the piece hash list, itself checked against the committed root) and a bad piece
//! costs one re-request, not the whole blob.

use crate::digest::Hasher;
use crate::tlog::Hash;

/// Bytes per piece (the last piece of a blob may be shorter).
pub const PIECE_LEN: u32 = 1 << 20;

/// How many pieces a blob of `size` bytes has (at least one).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(u64::from(PIECE_LEN)).max(1)
}

/// Hashes a blob's pieces as they stream past, without holding them: each piece's leaf hash
/// (`SHA-256(0x00 ‖ piece)`) comes out when the piece is complete.
#[derive(Clone)]
pub struct PieceHasher {
    current: Hasher,
    in_piece: u32,
}

impl Default for PieceHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PieceHasher {
    /// Starts at the first byte of a blob.
    pub fn new() -> Self {
        let mut current = Hasher::new();
        current.update(&[0x00]);
        PieceHasher {
            current,
            in_piece: 0,
        }
    }

    /// Feeds the next bytes; `done` receives the leaf hash of every piece they complete.
    pub fn update(&mut self, mut bytes: &[u8], mut done: impl FnMut(Hash)) {
        while !bytes.is_empty() {
            let room = (PIECE_LEN - self.in_piece) as usize;
            let take = room.min(bytes.len());
            self.current.update(&bytes[..take]);
            self.in_piece += take as u32;
            bytes = &bytes[take..];
            if self.in_piece == PIECE_LEN {
                let finished = core::mem::replace(&mut self.current, Hasher::new());
                self.current.update(&[0x00]);
                self.in_piece = 0;
                done(*finished.finish().as_bytes());
            }
        }
    }

    /// The leaf hash of the last, partial piece, if the blob did not end on a piece boundary
    /// (or is empty: an empty blob is one empty piece).
    pub fn finish(self, blob_len: u64) -> Option<Hash> {
        (self.in_piece > 0 || blob_len == 0).then(|| *self.current.finish().as_bytes())
    }
}

/// The piece root of a blob from its pieces' leaf hashes, in order.
#[cfg(feature = "alloc")]
pub fn piece_root(leaves: &[Hash]) -> Hash {
    let mut tree = crate::tlog::tree::MerkleTree::new();
    for leaf in leaves {
        tree.push_hash(*leaf);
    }
    tree.root(tree.size()).unwrap_or(crate::tlog::EMPTY_ROOT)
}

/// Who is to blame when a blob assembled from peers fails its digest and no piece list could
/// check the pieces one by one: its only contributor, or nobody (any of several may have
/// lied, and striking the honest ones is what a liar wants).
pub fn blame_for_mismatch<T>(contributors: &[T]) -> Option<&T> {
    match contributors {
        [only] => Some(only),
        _ => None,
    }
}

/// Whether a peer whose answer contradicts the blob size already adopted is proven wrong
/// (struck) or only disagrees (no longer asked, not blamed): only a committed piece list
/// proves a size; without one, the first answer may be the lie.
pub fn size_contradiction_proven(has_piece_list: bool) -> bool {
    has_piece_list
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::tlog::leaf_hash;

    #[test]
    fn blame_needs_a_sole_contributor_or_a_piece_list() {
        assert_eq!(blame_for_mismatch(&["a"]), Some(&"a"));
        assert_eq!(blame_for_mismatch(&["a", "b"]), None);
        assert_eq!(blame_for_mismatch::<&str>(&[]), None);
        assert!(size_contradiction_proven(true));
        assert!(!size_contradiction_proven(false));
    }

    #[test]
    fn streaming_leaves_match_hashing_each_piece() {
        let len = 2 * PIECE_LEN as usize + 1234;
        let blob: alloc::vec::Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut hasher = PieceHasher::new();
        let mut leaves = alloc::vec::Vec::new();
        for chunk in blob.chunks(100_000) {
            hasher.update(chunk, |leaf| leaves.push(leaf));
        }
        leaves.extend(hasher.finish(len as u64));
        let expected: alloc::vec::Vec<Hash> =
            blob.chunks(PIECE_LEN as usize).map(leaf_hash).collect();
        assert_eq!(leaves, expected);
        assert_eq!(piece_count(len as u64), 3);
        assert_eq!(piece_count(0), 1);
        assert_eq!(piece_count(u64::from(PIECE_LEN)), 1);
        // The root commits to every piece: another byte anywhere changes it.
        let mut other = expected.clone();
        other[1][0] ^= 1;
        assert_ne!(piece_root(&expected), piece_root(&other));
    }
}
