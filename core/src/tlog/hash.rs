//! RFC 9162 hashing: `leaf = SHA-256(0x00 ‖ entry)`, `node = SHA-256(0x01 ‖ left ‖ right)`.
//! The distinct prefixes make a leaf and an interior node with the same bytes hash
//! differently, so no proof can pass one off as the other (second-preimage resistance).

use crate::digest::Hasher;

/// A Merkle tree hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of a log entry's bytes.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Hasher::new();
    h.update(&[0x00]);
    h.update(entry);
    *h.finish().as_bytes()
}

/// The hash of an interior node from its children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Hasher::new();
    h.update(&[0x01]);
    h.update(left);
    h.update(right);
    *h.finish().as_bytes()
}

/// A hash from its 64 lowercase or uppercase hex digits, as the log's HTTP API writes proofs.
pub fn hash_from_hex(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
