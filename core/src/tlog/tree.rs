//! An in-memory Merkle tree over leaf hashes: roots of any prefix and the inclusion and
//! consistency proofs of RFC 9162 §2.1.3.1 and §2.1.4.1.
//!
//! Besides the leaves it keeps the hash of every complete, aligned subtree (2^h leaves
//! starting at a multiple of 2^h), updated on each append. Every subtree the RFC's recursion
//! asks for is either such a subtree or the right edge of a prefix, which splits into at most
//! log₂ n of them: roots cost O(log n) and proofs O(log² n), instead of a pass over every leaf.
//! The cost is one hash per leaf besides the leaf's own (about 2 × 32 bytes per entry).

use alloc::vec::Vec;

use super::hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
use super::proof::ProofError;

/// A log's leaf hashes in order, with the hashes of its complete subtrees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[h][i]`: the root of leaves `i·2^h .. (i+1)·2^h`; `levels[0]` are the leaves.
    levels: Vec<Vec<Hash>>,
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
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
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        // Every subtree this leaf completes gets its hash.
        let (mut level, mut position) = (0, index);
        while position % 2 == 1 {
            let row = &self.levels[level];
            let parent = node_hash(&row[position as usize - 1], &row[position as usize]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
            position /= 2;
        }
        index
    }

    /// Drops every leaf from `size` on (undoing appends that turned out not to match a
    /// checkpoint). Does nothing when the tree is not larger.
    pub fn truncate(&mut self, size: u64) {
        for (level, row) in self.levels.iter_mut().enumerate() {
            let keep = size.checked_shr(level as u32).unwrap_or(0);
            row.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<&Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::IndexOutOfRange);
        }
        Ok(())
    }

    /// The root of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.range_root(0, size, &[]))
    }

    /// The root the tree would have with `extra` leaf hashes appended, without appending them
    /// (what a batch of new entries would produce).
    pub fn root_extended(&self, extra: &[Hash]) -> Hash {
        self.range_root(0, self.size() + extra.len() as u64, extra)
    }

    /// The inclusion proof of leaf `index` in the first `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange);
        }
        let mut out = Vec::new();
        self.inclusion_path(index, 0, size, &mut out);
        Ok(out)
    }

    /// The proof that the first `size1` leaves are a prefix of the first `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        if size1 > size2 {
            return Err(ProofError::SizesReversed);
        }
        self.check_size(size2)?;
        let mut out = Vec::new();
        if size1 > 0 && size1 < size2 {
            self.consistency_subproof(size1, 0, size2, true, &mut out);
        }
        Ok(out)
    }

    /// The root of the complete subtree of `size` (a power of two) leaves at `start` (a
    /// multiple of `size`) of the tree with `extra` appended.
    fn perfect_root(&self, start: u64, size: u64, extra: &[Hash]) -> Hash {
        let stored = self.size();
        if start + size <= stored {
            let level = size.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        if size == 1 {
            return extra[(start - stored) as usize];
        }
        let half = size / 2;
        node_hash(
            &self.perfect_root(start, half, extra),
            &self.perfect_root(start + half, half, extra),
        )
    }

    /// MTH of leaves `start..end` of the tree with `extra` appended; `start` is a multiple
    /// of the largest power of two not above `end - start` (true of every range the RFC's
    /// recursion visits from 0).
    fn range_root(&self, start: u64, end: u64, extra: &[Hash]) -> Hash {
        let n = end - start;
        match n {
            0 => EMPTY_ROOT,
            n if n.is_power_of_two() => self.perfect_root(start, n, extra),
            n => {
                let k = split_point(n);
                node_hash(
                    &self.perfect_root(start, k, extra),
                    &self.range_root(start + k, end, extra),
                )
            }
        }
    }

    /// PATH(m, D[start:end]) of RFC 9162 §2.1.3.1.
    fn inclusion_path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.inclusion_path(m, start, start + k, out);
            out.push(self.range_root(start + k, end, &[]));
        } else {
            self.inclusion_path(m - k, start + k, end, out);
            out.push(self.range_root(start, start + k, &[]));
        }
    }

    /// SUBPROOF(m, D[start:end], complete) of RFC 9162 §2.1.4.1.
    fn consistency_subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        complete: bool,
        out: &mut Vec<Hash>,
    ) {
        let n = end - start;
        if m == n {
            if !complete {
                out.push(self.range_root(start, end, &[]));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.consistency_subproof(m, start, start + k, complete, out);
            out.push(self.range_root(start + k, end, &[]));
        } else {
            self.consistency_subproof(m - k, start + k, end, false, out);
            out.push(self.range_root(start, start + k, &[]));
        }
    }
}

#[cfg(test)]
mod tests {
    //! The tree against the RFC's recursion written out over the leaves (the previous,
    //! O(n) implementation), for every size to 70 and every index and size pair.

    use super::*;

    fn oracle_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&oracle_root(&leaves[..k]), &oracle_root(&leaves[k..]))
            }
        }
    }

    fn oracle_path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            oracle_path(m, &leaves[..k], out);
            out.push(oracle_root(&leaves[k..]));
        } else {
            oracle_path(m - k, &leaves[k..], out);
            out.push(oracle_root(&leaves[..k]));
        }
    }

    fn oracle_subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(oracle_root(leaves));
            }
            return;
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            oracle_subproof(m, &leaves[..k], complete, out);
            out.push(oracle_root(&leaves[k..]));
        } else {
            oracle_subproof(m - k, &leaves[k..], false, out);
            out.push(oracle_root(&leaves[..k]));
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn roots_and_proofs_match_the_rfc_recursion() {
        let all = leaves(70);
        let mut tree = MerkleTree::new();
        for leaf in &all {
            tree.push_hash(*leaf);
        }
        for size in 0..=70usize {
            assert_eq!(
                tree.root(size as u64).unwrap(),
                oracle_root(&all[..size]),
                "root {size}"
            );
            for index in 0..size {
                let mut expected = Vec::new();
                oracle_path(index, &all[..size], &mut expected);
                assert_eq!(
                    tree.inclusion_proof(index as u64, size as u64).unwrap(),
                    expected
                );
            }
            for first in 1..size {
                let mut expected = Vec::new();
                oracle_subproof(first, &all[..size], true, &mut expected);
                assert_eq!(
                    tree.consistency_proof(first as u64, size as u64).unwrap(),
                    expected
                );
            }
        }
        assert!(tree.root(71).is_err());
        assert!(tree.inclusion_proof(70, 70).is_err());
    }

    #[test]
    fn extended_roots_and_truncation_agree_with_building_the_tree() {
        let all = leaves(45);
        for stored in 0..=45usize {
            let mut tree = MerkleTree::new();
            for leaf in &all[..stored] {
                tree.push_hash(*leaf);
            }
            assert_eq!(
                tree.root_extended(&all[stored..]),
                oracle_root(&all),
                "{stored}"
            );
        }
        let mut tree = MerkleTree::new();
        for leaf in &all {
            tree.push_hash(*leaf);
        }
        for size in (0..45u64).rev() {
            tree.truncate(size);
            assert_eq!(tree.size(), size);
            assert_eq!(tree.root(size).unwrap(), oracle_root(&all[..size as usize]));
            let mut rebuilt = MerkleTree::new();
            for leaf in &all[..size as usize] {
                rebuilt.push_hash(*leaf);
            }
            assert_eq!(tree, rebuilt, "truncating equals never having appended");
        }
    }
}
