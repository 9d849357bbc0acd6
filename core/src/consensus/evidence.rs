//! What a `Dispute` or `Unverifiable` entry must prove before it is ordered or replicated
//! (docs/PROTOCOL.md §3.3). Without these checks one member could close any request with a
//! forged `Unverifiable` (censorship) or mark any artifact disputed.
//!
//! The evidence is every attestation the round saw, grouped by statement (postcard: a list
//! of `(statement bytes, signer records)`, as [`encode_evidence`] writes it). It counts only
//! when every signature in it is a valid attestation by a member of the epoch, bound to this
//! request (log index, coordinates, epoch, selection checkpoint: the same binding a `Commit`
//! has), and no statement in it reached f+1 signers (that would be a commit, not a dispute).
//!
//! - A `Dispute` also needs two different statements: disagreement, not silence. Silence
//!   proves nothing (a slow upstream looks the same); the request stays open.
//! - An `Unverifiable` also needs attestations from a quorum of 2f+1 distinct members. At
//!   least f+1 of them are honest, and since no statement has f+1 signers, honest builders
//!   produced different outputs: the artifact really is not reproducible (PROTOCOL case 7).
//!   f byzantine members cannot fake that, whatever they sign.

use alloc::vec::Vec;

use crate::identity::KeyId;
use crate::members::{MAX_MEMBERS, MemberSet};
use crate::tlog::Hash;
use crate::tlog::entry::{Coordinates, SignatureList, Signed};
use crate::tlog::rebuilt::Claim;

/// The request a dispute is about, as the log knows it: what the evidence must be bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestBinding<'a> {
    /// Log index of the `BuildRequest`.
    pub request_index: u64,
    /// Its coordinates.
    pub coordinates: Coordinates<'a>,
    /// The selection checkpoint: the tree that ends with the request.
    pub selection_size: u64,
    /// Its root.
    pub selection_root: Hash,
}

/// Why a `Dispute` or `Unverifiable` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The evidence does not decode as statement groups.
    Malformed,
    /// A statement is bound to another request, epoch or selection checkpoint.
    WrongRequest,
    /// A signer is not a member, signs twice in one group, or its signature does not verify.
    BadAttestation,
    /// A statement has f+1 signers: the request can be committed, not disputed.
    Committable,
    /// A `Dispute` shows fewer than two different statements.
    NoDisagreement,
    /// An `Unverifiable` shows fewer than 2f+1 distinct attesting members.
    TooFewAttesters,
}

impl core::fmt::Display for EvidenceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            EvidenceError::Malformed => "dispute evidence does not decode",
            EvidenceError::WrongRequest => "dispute evidence is bound to another request",
            EvidenceError::BadAttestation => "dispute evidence holds an invalid attestation",
            EvidenceError::Committable => "dispute evidence has f+1 matching attestations",
            EvidenceError::NoDisagreement => "a dispute needs two different attested statements",
            EvidenceError::TooFewAttesters => {
                "unverifiable needs attestations of 2f+1 distinct members"
            }
        })
    }
}

impl core::error::Error for EvidenceError {}

/// Encodes a round's evidence (each statement's postcard bytes with its signers) as
/// `Dispute` and `Unverifiable` entries carry it.
pub fn encode_evidence(groups: &[(Vec<u8>, Vec<Signed>)]) -> Vec<u8> {
    let groups: Vec<(&[u8], Vec<u8>)> = groups
        .iter()
        .map(|(statement, signers)| {
            (
                statement.as_slice(),
                signers.iter().flat_map(Signed::to_bytes).collect(),
            )
        })
        .collect();
    postcard::to_allocvec(&groups).unwrap_or_default()
}

/// Checks the evidence of a `Dispute` (`unverifiable` false) or `Unverifiable` (true) about
/// `request` against the epoch's `members`; see the module documentation for the rules.
pub fn check_dispute(
    members: &MemberSet,
    request: &RequestBinding<'_>,
    evidence: &[u8],
    unverifiable: bool,
) -> Result<(), EvidenceError> {
    let groups: Vec<(&[u8], &[u8])> =
        postcard::from_bytes(evidence).map_err(|_| EvidenceError::Malformed)?;
    let mut attesters: Vec<KeyId> = Vec::new();
    let mut statements = 0usize;
    for (statement_bytes, signer_bytes) in &groups {
        let claim = Claim::decode(statement_bytes).ok_or(EvidenceError::Malformed)?;
        if !binds(&claim, members.epoch(), request) {
            return Err(EvidenceError::WrongRequest);
        }
        if signer_bytes.len() % 96 != 0 || signer_bytes.len() / 96 > MAX_MEMBERS {
            return Err(EvidenceError::Malformed);
        }
        let list = SignatureList(signer_bytes);
        let listed = list.iter().count();
        let valid = members.count_signers(crate::members::pairs(&list), |key, signature| {
            claim.verify(key, signature)
        });
        if valid != listed || listed == 0 {
            return Err(EvidenceError::BadAttestation);
        }
        if listed >= members.commit_threshold() {
            return Err(EvidenceError::Committable);
        }
        statements += 1;
        for signed in list.iter() {
            if !attesters.contains(&signed.signer) {
                attesters.push(signed.signer);
            }
        }
    }
    if !unverifiable && statements < 2 {
        return Err(EvidenceError::NoDisagreement);
    }
    if unverifiable && attesters.len() < 2 * members.faults() as usize + 1 {
        return Err(EvidenceError::TooFewAttesters);
    }
    Ok(())
}

fn binds(statement: &Claim<'_>, epoch: u64, request: &RequestBinding<'_>) -> bool {
    statement.request_index == request.request_index
        && statement.coordinates == request.coordinates
        && statement.epoch == epoch
        && statement.selection_size == request.selection_size
        && statement.selection_root == request.selection_root
}

#[cfg(test)]
mod tests;
