//! The transparency log's Merkle tree (RFC 9162 §2.1): leaf and node hashing with domain
//! separation, and the verification of inclusion and consistency proofs without an
//! allocator, for the light client down to the edge cache. With `alloc`, [`tree::MerkleTree`]
//! computes roots and proofs.
//!
//! Checkpoints, log entries and replication build on this in the transparency-log issue.

mod hash;
mod proof;
#[cfg(feature = "alloc")]
pub mod tree;

pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
pub use proof::{ProofError, root_from_inclusion_proof, verify_consistency, verify_inclusion};

#[cfg(all(test, feature = "alloc"))]
mod tests;
