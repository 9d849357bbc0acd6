//! Verifying inclusion and consistency proofs (RFC 9162 §2.1.3.2 and §2.1.4.2) without an
//! allocator. Every failure is a typed [`ProofError`]; nothing here panics on hostile input.

use core::fmt;

use super::hash::{Hash, node_hash};

/// Why a proof was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    IndexOutOfRange,
    /// The second tree is smaller than the first.
    SizesReversed,
    /// The proof has more or fewer hashes than the sizes call for.
    WrongLength,
    /// The proof is well-formed but does not lead to the given root(s).
    RootMismatch,
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProofError::IndexOutOfRange => "leaf index is outside the tree",
            ProofError::SizesReversed => "the newer tree is smaller than the older one",
            ProofError::WrongLength => "proof has the wrong number of hashes",
            ProofError::RootMismatch => "proof does not lead to the expected root",
        })
    }
}

impl core::error::Error for ProofError {}

/// One level of the RFC 9162 path walk over the node index `f_n` in a tree whose last index
/// is `s_n`: returns whether this level's proof hash is the left sibling, and moves both
/// indices up (past levels where the node has no right sibling).
fn walk(f_n: &mut u64, s_n: &mut u64) -> bool {
    let left = *f_n & 1 == 1 || *f_n == *s_n;
    if left {
        while *f_n & 1 == 0 && *f_n != 0 {
            *f_n >>= 1;
            *s_n >>= 1;
        }
    }
    *f_n >>= 1;
    *s_n >>= 1;
    left
}

/// The root that `proof` and the leaf hash imply for a tree of `size` leaves.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        r = if walk(&mut f_n, &mut s_n) {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(r)
}

/// Checks that the leaf with hash `leaf` is at `index` in the tree of `size` leaves whose
/// root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(index, size, leaf, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of
/// `size2` leaves with root `root2`: the log only grew.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(ProofError::SizesReversed);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if size1 == 0 {
        // Every tree extends the empty one.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let Some((&first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength);
    };
    // When the old tree is a complete subtree its root is the path's start, not sent.
    let (start, path) = if size1.is_power_of_two() {
        (*root1, proof)
    } else {
        (first, rest)
    };
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if walk(&mut f_n, &mut s_n) {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr == root1 && &sr == root2 {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}
