//! The transparency log's Merkle tree (RFC 9162 §2.1): leaf and node hashing with domain
//! separation, and the verification of inclusion and consistency proofs without an
//! allocator, for the light client down to the edge cache. With `alloc`, [`tree::MerkleTree`]
//! computes roots and proofs. [`checkpoint`] holds the signed notes members cosign and
//! [`entry`] the records the log holds; [`rules`] what every entry must satisfy.

pub mod checkpoint;
pub mod coordinates;
pub mod entry;
mod hash;
#[cfg(feature = "alloc")]
pub mod index;
mod proof;
pub mod pull;
pub mod rebuilt;
#[cfg(feature = "alloc")]
pub mod rules;
#[cfg(feature = "alloc")]
pub mod state;
#[cfg(feature = "alloc")]
pub mod sync;
#[cfg(feature = "alloc")]
pub mod tree;

pub use hash::{EMPTY_ROOT, Hash, hash_from_hex, leaf_hash, node_hash};
pub use proof::{ProofError, root_from_inclusion_proof, verify_consistency, verify_inclusion};

#[cfg(all(test, feature = "alloc"))]
mod note_tests;
#[cfg(all(test, feature = "alloc"))]
mod tests;
