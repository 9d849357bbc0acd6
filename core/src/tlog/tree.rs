//! An in-memory Merkle tree over leaf hashes: roots of any prefix and the inclusion and
//! consistency proofs of RFC 9162 §2.1.3.1 and §2.1.4.1. Straightforward recursion over the
//! leaf hashes (O(n) per call); the persisted log will keep subtree hashes instead.

use alloc::vec::Vec;

use super::hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
use super::proof::ProofError;

/// A log's leaf hashes in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleTree {
    leaves: Vec<Hash>,
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D) over leaf hashes.
fn subtree_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = split_point(n);
            node_hash(&subtree_root(&leaves[..k]), &subtree_root(&leaves[k..]))
        }
    }
}

fn inclusion_path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n);
    if m < k {
        inclusion_path(m, &leaves[..k], out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        inclusion_path(m - k, &leaves[k..], out);
        out.push(subtree_root(&leaves[..k]));
    }
}

fn consistency_subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(subtree_root(leaves));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_subproof(m, &leaves[..k], complete, out);
        out.push(subtree_root(&leaves[k..]));
    } else {
        consistency_subproof(m - k, &leaves[k..], false, out);
        out.push(subtree_root(&leaves[..k]));
    }
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry (hashed as a leaf); returns its index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.push_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash; returns its index.
    pub fn push_hash(&mut self, leaf: Hash) -> u64 {
        self.leaves.push(leaf);
        self.leaves.len() as u64 - 1
    }

    /// Drops every leaf from `size` on (undoing appends that turned out not to match a
    /// checkpoint). Does nothing when the tree is not larger.
    pub fn truncate(&mut self, size: u64) {
        self.leaves
            .truncate(usize::try_from(size).unwrap_or(usize::MAX));
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.leaves.get(usize::try_from(index).ok()?)
    }

    fn prefix(&self, size: u64) -> Result<&[Hash], ProofError> {
        usize::try_from(size)
            .ok()
            .and_then(|n| self.leaves.get(..n))
            .ok_or(ProofError::IndexOutOfRange)
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        Ok(subtree_root(self.prefix(size)?))
    }

    /// The root the tree would have with `extra` leaf hashes appended, without appending them
    /// (what a batch of new entries would produce).
    pub fn root_extended(&self, extra: &[Hash]) -> Hash {
        if extra.is_empty() {
            return subtree_root(&self.leaves);
        }
        let mut leaves = Vec::with_capacity(self.leaves.len() + extra.len());
        leaves.extend_from_slice(&self.leaves);
        leaves.extend_from_slice(extra);
        subtree_root(&leaves)
    }

    /// The inclusion proof of leaf `index` in the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let leaves = self.prefix(size)?;
        let m = usize::try_from(index).map_err(|_| ProofError::IndexOutOfRange)?;
        if m >= leaves.len() {
            return Err(ProofError::IndexOutOfRange);
        }
        let mut out = Vec::new();
        inclusion_path(m, leaves, &mut out);
        Ok(out)
    }

    /// The proof that the first `size1` leaves are a prefix of the first `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        if size1 > size2 {
            return Err(ProofError::SizesReversed);
        }
        let leaves = self.prefix(size2)?;
        let mut out = Vec::new();
        if size1 > 0 && size1 < size2 {
            consistency_subproof(size1 as usize, leaves, true, &mut out);
        }
        Ok(out)
    }
}
