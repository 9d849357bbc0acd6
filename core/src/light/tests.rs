//! The light-client check against PROTOCOL.md §6 cases 8–18, on real trees and signatures:
//! four or five members (f = 1, quorum 3), a log built with [`MerkleTree`].

use alloc::vec::Vec;

use super::*;
use crate::identity::SecretKey;
use crate::tlog::checkpoint::{Checkpoint, Cosignature};
use crate::tlog::entry::*;
use crate::tlog::tree::MerkleTree;

const ORIGIN: &str = "pyrsia.test/log";
const NOW: u64 = 1_795_694_400;

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn genesis(members: u8) -> Vec<u8> {
    let keys: Vec<u8> = (1..=members)
        .flat_map(|s| key(s).public().to_bytes())
        .collect();
    Entry::Genesis(Genesis {
        origin: ORIGIN,
        faults: crate::members::faults_for(members.into()) as u32,
        members: KeyList(&keys),
        created: NOW,
    })
    .encode()
}

/// A log: the genesis, then a request and a commit of `digest` per artifact, then fillers.
struct Log {
    genesis: Vec<u8>,
    entries: Vec<Vec<u8>>,
    tree: MerkleTree,
}

impl Log {
    fn new(members: u8) -> Self {
        let genesis = genesis(members);
        let mut log = Log {
            genesis: genesis.clone(),
            entries: Vec::new(),
            tree: MerkleTree::new(),
        };
        log.push(genesis);
        log
    }

    fn push(&mut self, entry: Vec<u8>) -> u64 {
        self.entries.push(entry);
        self.tree.push(self.entries.last().unwrap())
    }

    /// Appends a commit of `outputs` attested by `attesters` for request `request_index`,
    /// with attestations signed for `signed_index` (a replay when they differ).
    fn commit(&mut self, outputs: &[Digest], attesters: &[u8], signed_index: u64) -> u64 {
        let request_index = self.entries.len() as u64 - 1;
        let digests: Vec<u8> = outputs.iter().flat_map(|d| *d.as_bytes()).collect();
        let statement = Statement {
            request_index,
            coordinates: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name: "docker.io/library/alpine",
                version: "sha256:aa",
            },
            build_type: DOCKER_FETCH_V1,
            outputs: DigestList(&digests),
            epoch: 0,
            selection_size: 1,
            selection_root: [0; 32],
            piece_roots: PieceRootList(&[]),
        };
        let signing = Statement {
            request_index: signed_index,
            ..statement
        };
        let attestations: Vec<u8> = attesters
            .iter()
            .flat_map(|&s| signing.sign(&key(s)).to_bytes())
            .collect();
        self.push(
            Entry::Commit(Commit {
                statement,
                attestations: SignatureList(&attestations),
            })
            .encode(),
        )
    }

    fn note(&self, size: u64, timestamp: u64, signers: &[u8]) -> SignedCheckpoint {
        let cp = Checkpoint::new(ORIGIN, size, self.tree.root(size).unwrap(), timestamp).unwrap();
        let mut note = SignedCheckpoint::unsigned(cp.clone());
        for &s in signers {
            note.add(cp.sign(&key(s))).unwrap();
        }
        note
    }

    fn genesis_proof(&self, size: u64) -> Vec<Hash> {
        self.tree.inclusion_proof(0, size).unwrap()
    }

    fn client(&self) -> LightClient {
        LightClient::new(&self.genesis, Policy::default()).unwrap()
    }

    /// A client that trusts the checkpoint at `size`.
    fn trusting(&self, size: u64) -> LightClient {
        let mut client = self.client();
        let note = self.note(size, NOW, &[1, 2, 3]);
        client
            .accept_checkpoint(&note, &self.genesis_proof(size), NOW, Connectivity::Online)
            .unwrap();
        client
    }
}

fn log_with_commit() -> (Log, u64, Digest) {
    let mut log = Log::new(4);
    let blob = Digest::sha256(b"layer");
    log.push(alloc::vec![ENTRY_FORMAT, 1, 0]); // an opaque filler: never decoded here
    let index = log.commit(&[Digest::sha256(b"manifest"), blob], &[1, 2], 1);
    for i in 0..5u8 {
        log.push(alloc::vec![i]);
    }
    (log, index, blob)
}

#[test]
fn a_committed_digest_verifies_end_to_end() {
    let (log, index, blob) = log_with_commit();
    let size = log.tree.size();
    let client = log.trusting(size);
    let proof = log.tree.inclusion_proof(index, size).unwrap();
    let entry = &log.entries[index as usize];
    assert!(matches!(
        client.check_committed(entry, index, &proof, &blob),
        Ok(Entry::Commit(_))
    ));
    assert_eq!(
        client.check_committed(entry, index, &proof, &Digest::sha256(b"other")),
        Err(LightError::NotCommitted)
    );
    let genesis_proof = log.tree.inclusion_proof(0, size).unwrap();
    assert_eq!(
        client.check_committed(&log.genesis, 0, &genesis_proof, &blob),
        Err(LightError::NotACommit)
    );
}

#[test]
fn a_note_read_in_place_is_judged_like_a_parsed_one() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let proof = log.genesis_proof(size);
    for signers in [&[1u8, 2, 3][..], &[1, 2], &[1, 1, 2], &[7, 8, 9]] {
        let mut note = log.note(size, NOW, &[]);
        let cp = note.checkpoint.clone();
        for &s in signers {
            let _ = note.add(cp.sign(&key(s)));
        }
        if note.cosignatures.is_empty() {
            continue;
        }
        let text = note.to_string();
        let view = NoteView::parse(&text).unwrap();
        let client = log.client();
        assert_eq!(
            client
                .check_note(&view, &proof, NOW, Connectivity::Online)
                .map(|c| c.freshness()),
            client.check_checkpoint(&note, &proof, NOW, Connectivity::Online),
            "signers {signers:?}"
        );
    }
    let mut client = log.client();
    let text = log.note(size, NOW, &[1, 2, 3]).to_string();
    let view = NoteView::parse(&text).unwrap();
    let checked = client
        .check_note(&view, &proof, NOW, Connectivity::Online)
        .unwrap();
    assert!(client.trusted().is_none(), "checking trusts nothing");
    assert_eq!(client.trust(checked), Ok(Freshness::Fresh));
    assert_eq!(client.trusted().copied(), Some(checked.trusted()));
    // A checked note older than what the client moved on to is refused.
    let older = log.trusting(size - 1);
    let mut newer = log.trusting(size);
    let stale = older
        .check_note(
            &NoteView::parse(&log.note(size - 1, NOW, &[1, 2, 3]).to_string()).unwrap(),
            &[],
            NOW,
            Connectivity::Online,
        )
        .unwrap();
    assert_eq!(newer.trust(stale), Err(LightError::Rollback));
}

#[test]
fn case_8_equivocating_signer_cannot_reach_quorum() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let honest = log.note(size, NOW, &[1, 2, 3]);
    // Member 1 also signs another root for the same size; only member 4 joins it.
    let forked_root = {
        let mut other = MerkleTree::new();
        for e in &log.entries[..size as usize - 1] {
            other.push(e);
        }
        other.push(b"forged");
        other.root(size).unwrap()
    };
    let cp = Checkpoint::new(ORIGIN, size, forked_root, NOW).unwrap();
    let mut forked = SignedCheckpoint::unsigned(cp.clone());
    forked.add(cp.sign(&key(1))).unwrap();
    forked.add(cp.sign(&key(4))).unwrap();
    let mut client = log.client();
    let proof = log.genesis_proof(size);
    assert_eq!(
        client.check_checkpoint(&forked, &proof, NOW, Connectivity::Online),
        Err(LightError::NoQuorum { have: 2, need: 3 })
    );
    client
        .accept_checkpoint(&honest, &proof, NOW, Connectivity::Online)
        .unwrap();
    // Even fully signed, the other root at the same size is a fork, not an update.
    let mut forged_full = SignedCheckpoint::unsigned(cp.clone());
    for s in [1, 2, 3] {
        forged_full.add(cp.sign(&key(s))).unwrap();
    }
    assert_eq!(
        client.check_checkpoint(&forged_full, &[], NOW, Connectivity::Online),
        Err(LightError::Fork)
    );
}

#[test]
fn case_9_split_view_needs_quorum_on_each_side() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let client = log.client();
    let proof = log.genesis_proof(size);
    for signers in [&[1u8, 2][..], &[3, 4][..]] {
        assert!(matches!(
            client.check_checkpoint(
                &log.note(size, NOW, signers),
                &proof,
                NOW,
                Connectivity::Online
            ),
            Err(LightError::NoQuorum { have: 2, .. })
        ));
    }
}

#[test]
fn case_10_rollback_is_refused() {
    let (log, _, _) = log_with_commit();
    let client = log.trusting(log.tree.size());
    let older = log.note(3, NOW, &[1, 2, 3]);
    assert_eq!(
        client.check_checkpoint(&older, &[], NOW, Connectivity::Online),
        Err(LightError::Rollback)
    );
}

#[test]
fn case_11_freeze_stale_checkpoint() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let client = log.client();
    let proof = log.genesis_proof(size);
    let policy = Policy::default();
    let old = log.note(size, NOW - policy.fresh_for - 1, &[1, 2, 3]);
    assert_eq!(
        client.check_checkpoint(&old, &proof, NOW, Connectivity::Online),
        Err(LightError::TooOld)
    );
    assert_eq!(
        client.check_checkpoint(&old, &proof, NOW, Connectivity::Offline),
        Ok(Freshness::Stale)
    );
    let ancient = log.note(size, NOW - policy.stale_for - 1, &[1, 2, 3]);
    assert_eq!(
        client.check_checkpoint(&ancient, &proof, NOW, Connectivity::Offline),
        Err(LightError::TooOld)
    );
    // Case 29: a signer's clock a few minutes ahead is tolerated; far ahead is not.
    let skewed = log.note(size, NOW + 299, &[1, 2, 3]);
    assert_eq!(
        client.check_checkpoint(&skewed, &proof, NOW, Connectivity::Online),
        Ok(Freshness::Fresh)
    );
    let future = log.note(size, NOW + 3600, &[1, 2, 3]);
    assert_eq!(
        client.check_checkpoint(&future, &proof, NOW, Connectivity::Online),
        Err(LightError::FromFuture)
    );
}

#[test]
fn case_12_replayed_attestations_do_not_count() {
    let mut log = Log::new(4);
    log.push(alloc::vec![0]);
    let blob = Digest::sha256(b"layer");
    // Attestations signed for request 7, placed in a commit of request 1.
    let index = log.commit(&[blob], &[1, 2], 7);
    let size = log.tree.size();
    let client = log.trusting(size);
    let proof = log.tree.inclusion_proof(index, size).unwrap();
    assert_eq!(
        client.check_committed(&log.entries[index as usize], index, &proof, &blob),
        Err(LightError::TooFewAttestations)
    );
    // A single valid attestation is below f+1 = 2 too.
    let index = log.commit(&[blob], &[3], index);
    let size = log.tree.size();
    let client = log.trusting(size);
    let proof = log.tree.inclusion_proof(index, size).unwrap();
    assert_eq!(
        client.check_committed(&log.entries[index as usize], index, &proof, &blob),
        Err(LightError::TooFewAttestations)
    );
}

#[test]
fn case_14_bad_inclusion_proofs_are_refused() {
    let (log, index, blob) = log_with_commit();
    let size = log.tree.size();
    let client = log.trusting(size);
    let entry = &log.entries[index as usize];
    let good = log.tree.inclusion_proof(index, size).unwrap();
    let mut flipped = good.clone();
    flipped[0][5] ^= 1;
    let garbage = alloc::vec![[0xab; 32]; good.len()];
    let mut longer = good.clone();
    longer.push([0; 32]);
    let shorter = good[..good.len() - 1].to_vec();
    let other_size = log.tree.inclusion_proof(index, size - 1).unwrap();
    for (proof, at) in [
        (&flipped, index),
        (&garbage, index),
        (&longer, index),
        (&shorter, index),
        (&other_size, index),
        (&good, index + 1),
        (&good, size + 3),
    ] {
        assert!(matches!(
            client.check_committed(entry, at, proof, &blob),
            Err(LightError::Inclusion(_))
        ));
    }
    // The wrong leaf with the right proof.
    assert!(matches!(
        client.check_committed(&log.entries[1], index, &good, &blob),
        Err(LightError::Inclusion(_))
    ));
    assert!(client.check_committed(entry, index, &good, &blob).is_ok());
}

#[test]
fn case_15_bad_consistency_proofs_are_refused() {
    let (mut log, _, _) = log_with_commit();
    let old = log.tree.size();
    let mut client = log.trusting(old);
    log.push(alloc::vec![0xee]);
    log.push(alloc::vec![0xef]);
    let new = log.tree.size();
    let note = log.note(new, NOW, &[2, 3, 4]);
    let good = log.tree.consistency_proof(old, new).unwrap();
    let mut flipped = good.clone();
    flipped[0][0] ^= 0x80;
    let wrong_sizes = log.tree.consistency_proof(old - 1, new).unwrap();
    for proof in [&flipped, &wrong_sizes, &Vec::new()] {
        assert!(matches!(
            client.check_checkpoint(&note, proof, NOW, Connectivity::Online),
            Err(LightError::Consistency(_))
        ));
    }
    assert_eq!(
        client.accept_checkpoint(&note, &good, NOW, Connectivity::Online),
        Ok(Freshness::Fresh)
    );
    assert_eq!(client.trusted().unwrap().size, new);
}

#[test]
fn case_16_interior_node_cannot_pass_as_a_leaf() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let client = log.trusting(size);
    // The concatenation of leaves 0 and 1's hashes is what node(0..2) hashes (after 0x01):
    // presenting it as an entry at level 1 must fail because leaves hash with 0x00.
    let mut forged = Vec::new();
    forged.extend(log.tree.leaf(0).unwrap());
    forged.extend(log.tree.leaf(1).unwrap());
    let proof = log.tree.inclusion_proof(0, size).unwrap()[1..].to_vec();
    assert!(matches!(
        client.check_entry(&forged, 0, &proof),
        Err(LightError::Inclusion(_))
    ));
}

#[test]
fn case_17_unknown_and_removed_keys_do_not_count() {
    let mut log = Log::new(5);
    log.push(alloc::vec![1]);
    let size = log.tree.size();
    let mut client = log.client();
    let proof = log.genesis_proof(size);
    // Two members and two outsiders.
    let note = log.note(size, NOW, &[1, 2, 8, 9]);
    assert_eq!(
        client.check_checkpoint(&note, &proof, NOW, Connectivity::Online),
        Err(LightError::NoQuorum { have: 2, need: 4 })
    );
    // At n = 5 the quorum is 4 (not 2f+1 = 3): three signatures are not final.
    assert_eq!(
        client.check_checkpoint(
            &log.note(size, NOW, &[1, 2, 3]),
            &proof,
            NOW,
            Connectivity::Online
        ),
        Err(LightError::NoQuorum { have: 3, need: 4 })
    );
    // A signature by a member's key id that does not verify counts nothing.
    let mut bad = log.note(size, NOW, &[1, 2]);
    bad.add(Cosignature {
        key_id: key(3).public().key_id(),
        signature: bad.cosignatures[0].signature,
    })
    .unwrap();
    assert!(matches!(
        client.check_checkpoint(&bad, &proof, NOW, Connectivity::Online),
        Err(LightError::NoQuorum { have: 2, .. })
    ));
    // Removing member 5 takes 4 signatures at n = 5; then its signature no longer counts.
    assert!(
        client
            .apply_membership(&membership(MembershipOp::Remove, 5, &[1, 2, 3], 1))
            .is_err()
    );
    client
        .apply_membership(&membership(MembershipOp::Remove, 5, &[1, 2, 3, 4], 1))
        .unwrap();
    assert_eq!(client.members().epoch(), 1);
    assert_eq!(
        client.check_checkpoint(
            &log.note(size, NOW, &[1, 2, 5]),
            &proof,
            NOW,
            Connectivity::Online
        ),
        Err(LightError::NoQuorum { have: 2, need: 3 })
    );
    assert!(
        client
            .check_checkpoint(
                &log.note(size, NOW, &[1, 2, 3]),
                &proof,
                NOW,
                Connectivity::Online
            )
            .is_ok()
    );
}

fn membership(op: MembershipOp, subject: u8, signers: &[u8], epoch: u64) -> Vec<u8> {
    let unsigned = MembershipChange {
        epoch,
        key: key(subject).public(),
        signatures: SignatureList(&[]),
    };
    let signatures: Vec<u8> = signers
        .iter()
        .flat_map(|&s| unsigned.sign(ORIGIN, op, &key(s)).to_bytes())
        .collect();
    let change = MembershipChange {
        signatures: SignatureList(&signatures),
        ..unsigned
    };
    match op {
        MembershipOp::Add => Entry::AddMember(change),
        MembershipOp::Remove => Entry::RemoveMember(change),
    }
    .encode()
}

#[test]
fn case_18_membership_change_needs_two_f_plus_one() {
    let log = Log::new(4);
    let mut client = log.client();
    let no_quorum = membership(MembershipOp::Add, 6, &[1, 2], 1);
    assert_eq!(
        client.apply_membership(&no_quorum),
        Err(LightError::Membership(
            crate::members::MembershipError::NoQuorum
        ))
    );
    // The same signer three times is still one signer.
    let repeated = membership(MembershipOp::Add, 6, &[1, 1, 1], 1);
    assert!(client.apply_membership(&repeated).is_err());
    // Signed for a remove, presented as an add: signatures do not carry over.
    let mut as_add = membership(MembershipOp::Remove, 4, &[1, 2, 3], 1);
    let Entry::RemoveMember(c) = Entry::decode(&as_add).unwrap() else {
        unreachable!()
    };
    as_add = Entry::AddMember(c).encode();
    assert!(client.apply_membership(&as_add).is_err());
    let wrong_epoch = membership(MembershipOp::Add, 6, &[1, 2, 3], 2);
    assert_eq!(
        client.apply_membership(&wrong_epoch),
        Err(LightError::Membership(
            crate::members::MembershipError::WrongEpoch
        ))
    );
    // Removing one of four leaves n = 3: f follows the size (0) and the quorum becomes 2.
    let mut smaller = log.client();
    smaller
        .apply_membership(&membership(MembershipOp::Remove, 4, &[1, 2, 3], 1))
        .unwrap();
    assert_eq!(
        (smaller.members().faults(), smaller.members().quorum()),
        (0, 2)
    );
    // The last member cannot be removed, even by itself.
    let mut alone = Log::new(1).client();
    assert_eq!(
        alone.apply_membership(&membership(MembershipOp::Remove, 1, &[1], 1)),
        Err(LightError::Membership(
            crate::members::MembershipError::TooFewMembers
        ))
    );
    client
        .apply_membership(&membership(MembershipOp::Add, 6, &[1, 2, 3], 1))
        .unwrap();
    assert_eq!(client.members().len(), 5);
    assert!(client.members().find(&key(6).public().key_id()).is_some());
}

#[test]
fn first_checkpoint_must_contain_this_genesis() {
    let (log, _, _) = log_with_commit();
    let size = log.tree.size();
    let client = log.client();
    let note = log.note(size, NOW, &[1, 2, 3]);
    let wrong = log.tree.inclusion_proof(1, size).unwrap();
    assert!(matches!(
        client.check_checkpoint(&note, &wrong, NOW, Connectivity::Online),
        Err(LightError::GenesisNotIncluded(_))
    ));
    // Another log's checkpoint, even with the right keys.
    let cp = Checkpoint::new("other.log", size, note.checkpoint.root, NOW).unwrap();
    let mut other = SignedCheckpoint::unsigned(cp.clone());
    for s in [1, 2, 3] {
        other.add(cp.sign(&key(s))).unwrap();
    }
    assert_eq!(
        client.check_checkpoint(&other, &log.genesis_proof(size), NOW, Connectivity::Online),
        Err(LightError::WrongOrigin)
    );
    // A genesis that is not one.
    assert_eq!(
        LightClient::new(&log.entries[1], Policy::default()).err(),
        Some(LightError::Entry(EntryError::Malformed))
    );
    assert!(client.members().contains(&key(1).public()));
    assert_eq!(client.members().keys().count(), 4);
}
