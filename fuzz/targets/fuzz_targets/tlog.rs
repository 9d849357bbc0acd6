//! Merkle proofs: hostile sizes, indices and proof hashes never panic; proofs generated for a
//! tree built from the input always verify, and a proof with one flipped bit never does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyrsia_core::tlog::tree::MerkleTree;
use pyrsia_core::tlog::{Hash, verify_consistency, verify_inclusion};

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (head, rest) = data.split_at(16);
    let a = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(head[8..].try_into().unwrap_or_default());
    let proof: Vec<Hash> = rest
        .chunks_exact(32)
        .map(|c| c.try_into().unwrap_or([0; 32]))
        .collect();
    let root = proof.first().copied().unwrap_or([0; 32]);
    let _ = verify_inclusion(a, b, &root, &proof, &root);
    let _ = verify_consistency(a, b, &proof, &root, &root);

    let mut tree = MerkleTree::new();
    for leaf in rest.chunks(3).take(64) {
        tree.push(leaf);
    }
    let size = tree.size();
    if size == 0 {
        return;
    }
    let (index, old) = (a % size, b % (size + 1));
    let root = tree.root(size).expect("size is in range");
    let leaf = *tree.leaf(index).expect("index is in range");
    let mut inclusion = tree.inclusion_proof(index, size).expect("in range");
    assert!(verify_inclusion(index, size, &leaf, &inclusion, &root).is_ok());
    let old_root = tree.root(old).expect("in range");
    let mut consistency = tree.consistency_proof(old, size).expect("in range");
    assert!(verify_consistency(old, size, &consistency, &old_root, &root).is_ok());
    if let Some(first) = inclusion.first_mut() {
        first[0] ^= 1;
        assert!(verify_inclusion(index, size, &leaf, &inclusion, &root).is_err());
    }
    if let Some(first) = consistency.first_mut() {
        first[31] ^= 0x80;
        assert!(verify_consistency(old, size, &consistency, &old_root, &root).is_err());
    }
});
