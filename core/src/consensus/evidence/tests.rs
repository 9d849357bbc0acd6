//! The evidence rules for `Dispute` and `Unverifiable` with real keys and signatures: honest
//! disagreement passes; forged, replayed, committable or too-thin evidence is refused.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::digest::Digest;
use crate::identity::SecretKey;
use crate::tlog::entry::{
    DOCKER_FETCH_V1, DigestList, ECOSYSTEM_DOCKER, Genesis, KeyList, PieceRootList, Statement,
};

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

/// n = 4 (f = 1): a statement commits with 2 signers, Unverifiable needs 3 attesters.
fn members() -> MemberSet {
    let keys: Vec<u8> = (1..=4).flat_map(|s| key(s).public().to_bytes()).collect();
    MemberSet::from_genesis(&Genesis {
        origin: "pyrsia.test/evidence",
        faults: 1,
        members: KeyList(&keys),
        created: 0,
    })
    .unwrap()
}

const REQUEST: RequestBinding<'static> = RequestBinding {
    request_index: 5,
    coordinates: Coordinates {
        ecosystem: ECOSYSTEM_DOCKER,
        name: "docker.io/library/alpine",
        version: "sha256:aa",
    },
    selection_size: 6,
    selection_root: [7; 32],
};

fn statement(outputs: &[u8], request_index: u64) -> Statement<'_> {
    Statement {
        request_index,
        coordinates: REQUEST.coordinates,
        build_type: DOCKER_FETCH_V1,
        outputs: DigestList(outputs),
        epoch: 0,
        selection_size: 6,
        selection_root: [7; 32],
        piece_roots: PieceRootList(&[]),
    }
}

fn output(text: &str) -> [u8; 32] {
    *Digest::sha256(text.as_bytes()).as_bytes()
}

/// Evidence of `groups`: each a statement's outputs and the seeds that signed it.
fn evidence(groups: &[(&[u8], &[u8])], request_index: u64) -> Vec<u8> {
    let groups: Vec<(Vec<u8>, Vec<Signed>)> = groups
        .iter()
        .map(|(outputs, seeds)| {
            let statement = statement(outputs, request_index);
            let bytes = postcard::to_allocvec(&statement).unwrap();
            (
                bytes,
                seeds.iter().map(|s| statement.sign(&key(*s))).collect(),
            )
        })
        .collect();
    encode_evidence(&groups)
}

#[test]
fn honest_disagreement_is_a_dispute_and_with_2f_plus_1_attesters_unverifiable() {
    let (a, b, c) = (output("a"), output("b"), output("c"));
    let two = evidence(&[(&a, &[1]), (&b, &[2])], 5);
    assert_eq!(check_dispute(&members(), &REQUEST, &two, false), Ok(()));
    assert_eq!(
        check_dispute(&members(), &REQUEST, &two, true),
        Err(EvidenceError::TooFewAttesters),
        "two attesters may be one honest and one liar"
    );
    let three = evidence(&[(&a, &[1]), (&b, &[2]), (&c, &[3])], 5);
    assert_eq!(check_dispute(&members(), &REQUEST, &three, true), Ok(()));
}

#[test]
fn silence_or_a_committable_statement_is_no_dispute() {
    let (a, b) = (output("a"), output("b"));
    assert_eq!(
        check_dispute(&members(), &REQUEST, &evidence(&[], 5), false),
        Err(EvidenceError::NoDisagreement)
    );
    assert_eq!(
        check_dispute(&members(), &REQUEST, &evidence(&[(&a, &[1])], 5), false),
        Err(EvidenceError::NoDisagreement)
    );
    assert_eq!(
        check_dispute(&members(), &REQUEST, &evidence(&[], 5), true),
        Err(EvidenceError::TooFewAttesters),
        "a forged Unverifiable with no evidence closes nothing"
    );
    let committable = evidence(&[(&a, &[1, 2]), (&b, &[3])], 5);
    assert_eq!(
        check_dispute(&members(), &REQUEST, &committable, true),
        Err(EvidenceError::Committable)
    );
}

#[test]
fn forged_or_replayed_attestations_are_refused() {
    let (a, b, c) = (output("a"), output("b"), output("c"));
    // Attestations of another request (a replay, case 12).
    let replayed = evidence(&[(&a, &[1]), (&b, &[2]), (&c, &[3])], 4);
    assert_eq!(
        check_dispute(&members(), &REQUEST, &replayed, true),
        Err(EvidenceError::WrongRequest)
    );
    // A key that is not a member (seed 9) signs.
    let stranger = evidence(&[(&a, &[1]), (&b, &[2]), (&c, &[9])], 5);
    assert_eq!(
        check_dispute(&members(), &REQUEST, &stranger, true),
        Err(EvidenceError::BadAttestation)
    );
    // One member listed twice to look like two attesters.
    let twice = evidence(&[(&a, &[1, 1]), (&b, &[2])], 5);
    assert_eq!(
        check_dispute(&members(), &REQUEST, &twice, false),
        Err(EvidenceError::BadAttestation)
    );
    // A signature over other outputs moved under this statement.
    let statement_a = statement(&a, 5);
    let statement_b = statement(&b, 5);
    let moved = encode_evidence(&[
        (
            postcard::to_allocvec(&statement_a).unwrap(),
            vec![statement_b.sign(&key(1))],
        ),
        (
            postcard::to_allocvec(&statement_b).unwrap(),
            vec![statement_b.sign(&key(2))],
        ),
    ]);
    assert_eq!(
        check_dispute(&members(), &REQUEST, &moved, false),
        Err(EvidenceError::BadAttestation)
    );
    assert_eq!(
        check_dispute(&members(), &REQUEST, b"\xff\xff garbage", false),
        Err(EvidenceError::Malformed)
    );
}
