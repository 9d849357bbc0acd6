//! Test vectors from RFC 6962/9162 as published by transparency-dev's `merkle` repository
//! (github.com/transparency-dev/merkle, file `proof/verify_test.go`, read 2026-11-26): the
//! eight leaves, the roots of every prefix, and the reference inclusion and consistency proofs.
//! The corruptions below follow that file's probes (wrong index or size, wrong roots, a flipped
//! bit, truncated, extended or prefixed proofs), which must all be rejected.

use alloc::vec::Vec;

use super::tree::MerkleTree;
use super::*;
use proptest::prelude::*;

fn h(hex: &str) -> Hash {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn leaves() -> [Vec<u8>; 8] {
    [
        Vec::new(),
        alloc::vec![0x00],
        alloc::vec![0x10],
        alloc::vec![0x20, 0x21],
        alloc::vec![0x30, 0x31],
        alloc::vec![0x40, 0x41, 0x42, 0x43],
        (0x50..=0x57).collect(),
        (0x60..=0x6f).collect(),
    ]
}

fn roots() -> [Hash; 8] {
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
        h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
        h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ]
}

/// (1-based leaf, tree size, proof)
fn inclusion_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    alloc::vec![
        (1, 1, alloc::vec![]),
        (
            1,
            8,
            alloc::vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        ),
        (
            6,
            8,
            alloc::vec![
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        ),
        (
            3,
            3,
            alloc::vec![h(
                "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
            )]
        ),
        (
            2,
            5,
            alloc::vec![
                h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        ),
    ]
}

/// (size1, size2, proof)
fn consistency_vectors() -> Vec<(u64, u64, Vec<Hash>)> {
    alloc::vec![
        (1, 1, alloc::vec![]),
        (
            1,
            8,
            alloc::vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        ),
        (
            6,
            8,
            alloc::vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        ),
        (
            2,
            5,
            alloc::vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        ),
        (
            6,
            7,
            alloc::vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        ),
    ]
}

const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

fn tree() -> MerkleTree {
    let mut tree = MerkleTree::new();
    for leaf in leaves() {
        tree.push(&leaf);
    }
    tree
}

#[test]
fn roots_of_every_prefix_match_the_vectors() {
    let tree = tree();
    assert_eq!(tree.root(0).unwrap(), EMPTY_ROOT);
    for (i, root) in roots().iter().enumerate() {
        assert_eq!(&tree.root(i as u64 + 1).unwrap(), root, "size {}", i + 1);
    }
}

#[test]
fn reference_inclusion_proofs_are_generated_and_verified() {
    let tree = tree();
    let roots = roots();
    for (leaf, size, proof) in inclusion_vectors() {
        let index = leaf - 1;
        assert_eq!(
            tree.inclusion_proof(index, size).unwrap(),
            proof,
            "generate {leaf}/{size}"
        );
        let leaf_hash = leaf_hash(&leaves()[index as usize]);
        let root = roots[size as usize - 1];
        verify_inclusion(index, size, &leaf_hash, &proof, &root).unwrap();
        for (what, bad) in corrupt_inclusion(index, size, &leaf_hash, &proof, &root) {
            assert!(bad.is_err(), "{leaf}/{size}: {what} must be rejected");
        }
    }
}

fn flipped(proof: &[Hash], i: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[i][0] ^= 8;
    p
}

fn corrupt_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Vec<(String, Result<(), ProofError>)> {
    let some = h(SOME_HASH);
    let mut extended = proof.to_vec();
    extended.push(*root);
    let mut prefixed = alloc::vec![*root];
    prefixed.extend_from_slice(proof);
    let mut probes = alloc::vec![
        (
            "index - 1".into(),
            verify_inclusion(index.wrapping_sub(1), size, leaf, proof, root)
        ),
        (
            "index + 1".into(),
            verify_inclusion(index + 1, size, leaf, proof, root)
        ),
        (
            "index ^ 2".into(),
            verify_inclusion(index ^ 2, size, leaf, proof, root)
        ),
        (
            "size * 2".into(),
            verify_inclusion(index, size * 2, leaf, proof, root)
        ),
        (
            "size / 2".into(),
            verify_inclusion(index, size / 2, leaf, proof, root)
        ),
        (
            "wrong leaf".into(),
            verify_inclusion(index, size, &leaf_hash(b"WrongLeaf"), proof, root)
        ),
        (
            "empty root".into(),
            verify_inclusion(index, size, leaf, proof, &EMPTY_ROOT)
        ),
        (
            "random root".into(),
            verify_inclusion(index, size, leaf, proof, &some)
        ),
        (
            "trailing root".into(),
            verify_inclusion(index, size, leaf, &extended, root)
        ),
        (
            "preceding root".into(),
            verify_inclusion(index, size, leaf, &prefixed, root)
        ),
    ];
    for i in 0..proof.len() {
        probes.push((
            alloc::format!("flipped proof[{i}]"),
            verify_inclusion(index, size, leaf, &flipped(proof, i), root),
        ));
    }
    if let Some((_, shorter)) = proof.split_last() {
        probes.push((
            "removed component".into(),
            verify_inclusion(index, size, leaf, shorter, root),
        ));
    }
    if proof.len() > 1 {
        let mut inserted = alloc::vec![proof[0], some];
        inserted.extend_from_slice(&proof[1..]);
        probes.push((
            "inserted component".into(),
            verify_inclusion(index, size, leaf, &inserted, root),
        ));
    }
    probes
}

#[test]
fn reference_consistency_proofs_are_generated_and_verified() {
    let tree = tree();
    let roots = roots();
    for (size1, size2, proof) in consistency_vectors() {
        assert_eq!(
            tree.consistency_proof(size1, size2).unwrap(),
            proof,
            "generate {size1}->{size2}"
        );
        let (root1, root2) = (roots[size1 as usize - 1], roots[size2 as usize - 1]);
        verify_consistency(size1, size2, &proof, &root1, &root2).unwrap();
        if proof.is_empty() {
            continue;
        }
        let some = h(SOME_HASH);
        let mut probes: Vec<(String, Result<(), ProofError>)> = alloc::vec![
            (
                "size1 - 1".into(),
                verify_consistency(size1 - 1, size2, &proof, &root1, &root2)
            ),
            (
                "size1 + 1".into(),
                verify_consistency(size1 + 1, size2, &proof, &root1, &root2)
            ),
            (
                "size1 ^ 2".into(),
                verify_consistency(size1 ^ 2, size2, &proof, &root1, &root2)
            ),
            (
                "size2 * 2".into(),
                verify_consistency(size1, size2 * 2, &proof, &root1, &root2)
            ),
            (
                "size2 / 2".into(),
                verify_consistency(size1, size2 / 2, &proof, &root1, &root2)
            ),
            (
                "wrong root1".into(),
                verify_consistency(size1, size2, &proof, &some, &root2)
            ),
            (
                "wrong root2".into(),
                verify_consistency(size1, size2, &proof, &root1, &some)
            ),
            (
                "swapped roots".into(),
                verify_consistency(size1, size2, &proof, &root2, &root1)
            ),
            (
                "empty proof".into(),
                verify_consistency(size1, size2, &[], &root1, &root2)
            ),
        ];
        for extra in [root1, root2] {
            let mut trailing = proof.clone();
            trailing.push(extra);
            probes.push((
                "trailing root".into(),
                verify_consistency(size1, size2, &trailing, &root1, &root2),
            ));
            let mut preceding = alloc::vec![extra];
            preceding.extend_from_slice(&proof);
            probes.push((
                "preceding root".into(),
                verify_consistency(size1, size2, &preceding, &root1, &root2),
            ));
        }
        probes.push((
            "truncated".into(),
            verify_consistency(size1, size2, &proof[..proof.len() - 1], &root1, &root2),
        ));
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 16;
            probes.push((
                alloc::format!("flipped proof[{i}]"),
                verify_consistency(size1, size2, &bad, &root1, &root2),
            ));
        }
        for (what, result) in probes {
            assert!(result.is_err(), "{size1}->{size2}: {what} must be rejected");
        }
    }
}

#[test]
fn edge_cases_of_consistency() {
    let (a, b) = (h(SOME_HASH), EMPTY_ROOT);
    assert_eq!(verify_consistency(0, 0, &[], &a, &a), Ok(()));
    assert_eq!(verify_consistency(0, 1, &[], &a, &b), Ok(()));
    assert_eq!(
        verify_consistency(1, 1, &[], &a, &b),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(1, 0, &[], &a, &b),
        Err(ProofError::SizesReversed)
    );
    assert_eq!(
        verify_consistency(1, 2, &[], &a, &b),
        Err(ProofError::WrongLength)
    );
    assert_eq!(
        verify_consistency(1, 1, &[b], &b, &b),
        Err(ProofError::WrongLength)
    );
    assert_eq!(
        verify_consistency(0, 1, &[b], &b, &b),
        Err(ProofError::WrongLength)
    );
    assert_eq!(
        verify_inclusion(0, 0, &a, &[], &a),
        Err(ProofError::IndexOutOfRange)
    );
    assert_eq!(
        verify_inclusion(2, 1, &a, &[], &a),
        Err(ProofError::IndexOutOfRange)
    );
}

#[test]
fn leaves_and_nodes_are_domain_separated() {
    // A "leaf" whose bytes are two child hashes does not hash to their parent node, so an
    // interior node cannot be presented as a leaf (second-preimage forgery, PROTOCOL case 16).
    let (l, r) = (leaf_hash(b"left"), leaf_hash(b"right"));
    let mut joined = [0u8; 64];
    joined[..32].copy_from_slice(&l);
    joined[32..].copy_from_slice(&r);
    assert_ne!(leaf_hash(&joined), node_hash(&l, &r));
    let mut tree = MerkleTree::new();
    tree.push(b"left");
    tree.push(b"right");
    let root = tree.root(2).unwrap();
    assert_eq!(root, node_hash(&l, &r));
    assert!(verify_inclusion(0, 1, &leaf_hash(&joined), &[], &root).is_err());
}

proptest! {
    #[test]
    fn generated_proofs_verify_for_every_size(n in 1usize..40, seed in any::<u64>()) {
        let mut tree = MerkleTree::new();
        for i in 0..n {
            tree.push(&(seed ^ i as u64).to_le_bytes());
        }
        for size in 1..=n as u64 {
            let root = tree.root(size).unwrap();
            for index in 0..size {
                let proof = tree.inclusion_proof(index, size).unwrap();
                prop_assert_eq!(verify_inclusion(index, size, tree.leaf(index).unwrap(), &proof, &root), Ok(()));
            }
            for old in 0..=size {
                let proof = tree.consistency_proof(old, size).unwrap();
                let old_root = tree.root(old).unwrap();
                prop_assert_eq!(verify_consistency(old, size, &proof, &old_root, &root), Ok(()));
            }
        }
    }

    #[test]
    fn arbitrary_proofs_never_panic(index in any::<u64>(), size in any::<u64>(), size2 in any::<u64>(), len in 0usize..70) {
        let proof: Vec<Hash> = (0..len).map(|i| [i as u8; 32]).collect();
        let _ = verify_inclusion(index, size, &EMPTY_ROOT, &proof, &EMPTY_ROOT);
        let _ = verify_consistency(size, size2, &proof, &EMPTY_ROOT, &EMPTY_ROOT);
    }
}
