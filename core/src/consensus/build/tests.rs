//! Build rounds against PROTOCOL cases 3, 4, 5 and 12, with real keys and signatures.

use alloc::vec::Vec;

use super::*;
use crate::digest::Digest;
use crate::identity::SecretKey;
use crate::tlog::entry::{
    DOCKER_FETCH_V1, DigestList, ECOSYSTEM_DOCKER, Genesis, KeyList, PieceRootList,
};

const T0: Instant = Instant::ZERO;
const TIMEOUT: Duration = Duration::from_secs(60);

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn members(n: u8, faults: u32) -> MemberSet {
    let keys: Vec<u8> = (1..=n).flat_map(|s| key(s).public().to_bytes()).collect();
    MemberSet::from_genesis(&Genesis {
        origin: "pyrsia.test/builds",
        faults,
        members: KeyList(&keys),
        created: 0,
    })
    .unwrap()
}

const COORDINATES: Coordinates<'static> = Coordinates {
    ecosystem: ECOSYSTEM_DOCKER,
    name: "docker.io/library/alpine",
    version: "sha256:aa",
};

fn statement<'a>(outputs: &'a [u8], request_index: u64, epoch: u64) -> Statement<'a> {
    Statement {
        request_index,
        coordinates: COORDINATES,
        build_type: DOCKER_FETCH_V1,
        outputs: DigestList(outputs),
        epoch,
        selection_size: 10,
        selection_root: [7; 32],
        piece_roots: PieceRootList(&[]),
    }
}

fn round(members: &MemberSet) -> BuildRound {
    BuildRound::start(5, &COORDINATES, members, 10, [7; 32], T0, TIMEOUT)
}

/// The member seeds in the order the round asks them.
fn asked(round: &mut BuildRound, n: u8) -> Vec<u8> {
    let mut seeds = Vec::new();
    while let Some(output) = round.poll_output() {
        if let BuildOutput::Ask(id) = output {
            seeds.push((1..=n).find(|&s| key(s).public().key_id() == id).unwrap());
        }
    }
    seeds
}

fn attest(
    round: &mut BuildRound,
    seed: u8,
    statement: &Statement<'_>,
) -> Result<(), AttestationError> {
    let signed = statement.sign(&key(seed));
    round.handle_attestation(signed.signer, statement, signed.signature)
}

fn good() -> [u8; 32] {
    *Digest::sha256(b"the image").as_bytes()
}

fn bad() -> [u8; 32] {
    *Digest::sha256(b"a trojan").as_bytes()
}

#[test]
fn f_plus_one_matching_attestations_commit() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    assert_eq!(order.len(), 4, "k = f+1+2 = 4");
    let outputs = good();
    let s = statement(&outputs, 5, 0);
    attest(&mut r, order[0], &s).unwrap();
    assert_eq!(r.state(), RoundState::Collecting);
    attest(&mut r, order[1], &s).unwrap();
    assert_eq!(r.state(), RoundState::Committed);
    let Some(BuildOutput::Commit {
        attestations,
        contradicting,
        statement,
    }) = r.poll_output()
    else {
        panic!("commit expected")
    };
    assert_eq!(attestations.len(), 2);
    assert!(contradicting.is_empty());
    assert_eq!(
        Statement::digest(&postcard::from_bytes(&statement).unwrap()),
        s.digest()
    );
    assert_eq!(attest(&mut r, order[2], &s), Err(AttestationError::Closed));
}

#[test]
fn case_3_one_wrong_builder_loses_and_is_kept_as_evidence() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    let (g, b) = (good(), bad());
    attest(&mut r, order[0], &statement(&b, 5, 0)).unwrap();
    attest(&mut r, order[1], &statement(&g, 5, 0)).unwrap();
    attest(&mut r, order[2], &statement(&g, 5, 0)).unwrap();
    let Some(BuildOutput::Commit {
        contradicting,
        attestations,
        ..
    }) = r.poll_output()
    else {
        panic!("commit expected")
    };
    assert_eq!(attestations.len(), 2);
    assert_eq!(contradicting.len(), 1);
    assert_eq!(
        contradicting[0].1[0].signer,
        key(order[0]).public().key_id()
    );
}

#[test]
fn case_4_f_colluders_never_reach_f_plus_one() {
    let set = members(7, 2);
    let mut r = round(&set);
    let order = asked(&mut r, 7);
    assert_eq!(order.len(), 5);
    let (g, b) = (good(), bad());
    attest(&mut r, order[0], &statement(&b, 5, 0)).unwrap();
    attest(&mut r, order[1], &statement(&b, 5, 0)).unwrap();
    assert_eq!(
        r.state(),
        RoundState::Collecting,
        "f = 2 wrong attestations commit nothing"
    );
    attest(&mut r, order[2], &statement(&g, 5, 0)).unwrap();
    // The mismatch asked one more member at once.
    let more = asked(&mut r, 7);
    assert_eq!(more.len(), 1);
    attest(&mut r, order[3], &statement(&g, 5, 0)).unwrap();
    attest(&mut r, more[0], &statement(&g, 5, 0)).unwrap();
    assert_eq!(r.state(), RoundState::Committed);
}

#[test]
fn case_5_silent_builders_escalate_past_the_top_k() {
    let set = members(7, 2);
    let mut r = round(&set);
    let order = asked(&mut r, 7);
    let g = good();
    // Three of the five asked stay silent: two answers, f+1 = 3 needed.
    attest(&mut r, order[0], &statement(&g, 5, 0)).unwrap();
    attest(&mut r, order[1], &statement(&g, 5, 0)).unwrap();
    r.handle_timeout(T0 + Duration::from_secs(59));
    assert!(asked(&mut r, 7).is_empty(), "nothing before the deadline");
    r.handle_timeout(T0 + TIMEOUT);
    let again = asked(&mut r, 7);
    assert_eq!(again.len(), 4, "the three silent ones again, and one more");
    let next = *again.last().unwrap();
    assert!(!order.contains(&next));
    let next = [next];
    attest(&mut r, next[0], &statement(&g, 5, 0)).unwrap();
    assert_eq!(r.state(), RoundState::Committed);
}

#[test]
fn case_12_replayed_and_foreign_attestations_do_not_count() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    let g = good();
    assert_eq!(
        attest(&mut r, order[0], &statement(&g, 4, 0)),
        Err(AttestationError::WrongRequest)
    );
    assert_eq!(
        attest(&mut r, order[0], &statement(&g, 5, 1)),
        Err(AttestationError::WrongRequest)
    );
    assert_eq!(
        attest(&mut r, 9, &statement(&g, 5, 0)),
        Err(AttestationError::NotAMember)
    );
    let s = statement(&g, 5, 0);
    let forged = s.sign(&key(9));
    assert_eq!(
        r.handle_attestation(key(order[0]).public().key_id(), &s, forged.signature),
        Err(AttestationError::BadSignature)
    );
    attest(&mut r, order[0], &s).unwrap();
    assert_eq!(
        attest(&mut r, order[0], &s),
        Err(AttestationError::Repeated)
    );
    assert_eq!(r.state(), RoundState::Collecting, "one member counts once");
}

#[test]
fn an_equivocator_counts_once_and_its_second_statement_is_evidence() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    let (g, b) = (good(), bad());
    attest(&mut r, order[0], &statement(&b, 5, 0)).unwrap();
    assert_eq!(
        attest(&mut r, order[0], &statement(&g, 5, 0)),
        Err(AttestationError::Repeated)
    );
    attest(&mut r, order[1], &statement(&g, 5, 0)).unwrap();
    assert_eq!(
        r.state(),
        RoundState::Collecting,
        "the equivocator's second statement does not count"
    );
    attest(&mut r, order[2], &statement(&g, 5, 0)).unwrap();
    let Some(BuildOutput::Commit { attestations, .. }) = r.poll_output() else {
        panic!("commit expected")
    };
    assert!(
        !attestations
            .iter()
            .any(|a| a.signer == key(order[0]).public().key_id())
    );
}

#[test]
fn disagreement_disputes_then_leaves_it_unverifiable() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    let (g, b) = (good(), bad());
    attest(&mut r, order[0], &statement(&g, 5, 0)).unwrap();
    attest(&mut r, order[1], &statement(&b, 5, 0)).unwrap();
    r.handle_timeout(T0 + TIMEOUT);
    assert_eq!(r.state(), RoundState::Disputed);
    let Some(BuildOutput::Dispute(evidence)) = r.poll_output() else {
        panic!("dispute expected")
    };
    assert_eq!(evidence.len(), 2);
    let reasked = asked(&mut r, 4);
    assert_eq!(reasked.len(), 2, "the two silent members are asked again");
    r.handle_timeout(T0 + TIMEOUT + TIMEOUT);
    assert_eq!(r.state(), RoundState::Unverifiable);
    assert!(matches!(r.poll_output(), Some(BuildOutput::Unverifiable(e)) if e.len() == 2));
    assert_eq!(r.deadline(), None);
}

#[test]
fn the_order_is_the_same_for_everyone_and_depends_on_the_checkpoint() {
    let set = members(7, 2);
    let mut a = round(&set);
    let mut b = round(&set);
    assert_eq!(asked(&mut a, 7), asked(&mut b, 7));
    // Another selection checkpoint (a ground seed) reorders the same members, nothing else.
    let base = builder_order(&selection_seed(10, &[7; 32], &COORDINATES), &set);
    let mut reordered = 0;
    for root in 0u8..16 {
        let order = builder_order(&selection_seed(11, &[root; 32], &COORDINATES), &set);
        let mut ids: Vec<KeyId> = order.iter().map(|(id, _)| *id).collect();
        let mut base_ids: Vec<KeyId> = base.iter().map(|(id, _)| *id).collect();
        if ids != base_ids {
            reordered += 1;
        }
        ids.sort();
        base_ids.sort();
        assert_eq!(ids, base_ids, "always every member once");
    }
    assert!(
        reordered >= 14,
        "{reordered} of 16 seeds reorder the members"
    );
}

#[test]
fn a_contradiction_after_the_commit_is_still_evidence_once() {
    let set = members(4, 1);
    let mut r = round(&set);
    let order = asked(&mut r, 4);
    let (outputs, wrong) = (good(), bad());
    let honest = statement(&outputs, 5, 0);
    let lie = statement(&wrong, 5, 0);
    attest(&mut r, order[0], &honest).unwrap();
    attest(&mut r, order[1], &honest).unwrap();
    assert!(matches!(r.poll_output(), Some(BuildOutput::Commit { .. })));
    // A late attestation of other outputs: not counted, reported as evidence.
    assert_eq!(
        attest(&mut r, order[2], &lie),
        Err(AttestationError::Closed)
    );
    let Some(BuildOutput::Contradiction(bytes, signed)) = r.poll_output() else {
        panic!("a late contradiction is evidence");
    };
    assert_eq!(signed.signer, key(order[2]).public().key_id());
    assert_eq!(bytes, postcard::to_allocvec(&lie).unwrap());
    // The same liar again, or a late matching attestation: nothing more.
    assert_eq!(
        attest(&mut r, order[2], &lie),
        Err(AttestationError::Closed)
    );
    assert_eq!(
        attest(&mut r, order[3], &honest),
        Err(AttestationError::Closed)
    );
    assert_eq!(r.poll_output(), None);
}
