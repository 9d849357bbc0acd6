//! One build round: the attestations for one `BuildRequest`, collected until f+1 distinct
//! members of the epoch attest the same outputs (commit), or the deadlines pass (dispute, then
//! unverifiable).
//!
//! The round asks the top k = f+1+s members of the selection order. A mismatch asks the next
//! member at once; a deadline with only silence asks as many more as could still make f+1; a
//! deadline with disagreement records a `Dispute` and asks every member; the deadline after that
//! leaves the artifact `Unverifiable`. Every attestation is checked before it counts: a member
//! of the epoch, a valid signature, bound to this request's log index, epoch and selection
//! checkpoint (PROTOCOL cases 3–5, 12).

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::identity::{KeyId, PublicKey, Signature};
use crate::members::MemberSet;
use crate::time::{Duration, Instant};
use crate::tlog::Hash;
use crate::tlog::entry::{Coordinates, Signed, Statement};
use crate::tlog::rebuilt::Claim;

use super::selection::{DEFAULT_SLACK, builder_order, selection_seed};

/// What the runtime must do for a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildOutput {
    /// Ask this member to build and attest.
    Ask(KeyId),
    /// Append a `Commit` of `statement` (its postcard bytes) with these f+1 or more
    /// attestations; keep the contradicting attestations as evidence (case 3).
    Commit {
        /// The attested statement, postcard-encoded.
        statement: Vec<u8>,
        /// Distinct members' signatures over it.
        attestations: Vec<Signed>,
        /// Other statements attested in this round, with their signers.
        contradicting: Vec<(Vec<u8>, Vec<Signed>)>,
    },
    /// Append a `Dispute` with every statement seen and its signers, as evidence.
    Dispute(Vec<(Vec<u8>, Vec<Signed>)>),
    /// Append `Unverifiable` with the same evidence: no f+1 agreement among all members.
    Unverifiable(Vec<(Vec<u8>, Vec<Signed>)>),
    /// After the commit, a member's valid attestation of other outputs (its postcard
    /// statement and signature): evidence against it (PROTOCOL §2.6).
    Contradiction(Vec<u8>, Signed),
}

/// Where a round stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundState {
    /// Asking the selected builders (and the next ones on silence or mismatch).
    Collecting,
    /// Disagreement at the deadline: every member has been asked.
    Disputed,
    /// f+1 matching attestations: committed. Final.
    Committed,
    /// No f+1 agreement among all members. Final.
    Unverifiable,
}

/// Why an attestation was not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttestationError {
    /// The signer is not a member of the round's epoch.
    NotAMember,
    /// The signature does not verify.
    BadSignature,
    /// Bound to another request, epoch or selection checkpoint (a replay, case 12).
    WrongRequest,
    /// The signer already attested this round (a repeat is ignored; another statement is
    /// equivocation and is kept as evidence).
    Repeated,
    /// The round is over.
    Closed,
}

struct Group {
    digest: [u8; 32],
    statement: Vec<u8>,
    signers: Vec<Signed>,
}

/// The state of one request's verification.
pub struct BuildRound {
    request_index: u64,
    ecosystem: String,
    name: String,
    version: String,
    epoch: u64,
    selection_size: u64,
    selection_root: Hash,
    threshold: usize,
    order: Vec<(KeyId, PublicKey)>,
    asked: usize,
    groups: Vec<Group>,
    attested: Vec<(KeyId, [u8; 32])>,
    state: RoundState,
    deadline: Instant,
    timeout: Duration,
    retries: u32,
    outputs: VecDeque<BuildOutput>,
    /// The statement digest committed, once the round committed.
    committed: Option<[u8; 32]>,
    /// Members whose contradiction of the commit was reported (once each: with the commit,
    /// or after it), so a member sending many cannot grow this round.
    reported: Vec<KeyId>,
}

/// Deadlines of silence after every member was asked before the round disputes.
pub const MAX_RETRIES: u32 = 3;

impl BuildRound {
    /// Starts the round for the `BuildRequest` at `request_index`, whose first final checkpoint
    /// is (`selection_size`, `selection_root`), among `members`; each deadline is `timeout`
    /// after the previous one (the build type's timeout). Asks the top f+1+s members.
    pub fn start(
        request_index: u64,
        coordinates: &Coordinates<'_>,
        members: &MemberSet,
        selection_size: u64,
        selection_root: Hash,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        let seed = selection_seed(selection_size, &selection_root, coordinates);
        let mut round = BuildRound {
            request_index,
            ecosystem: coordinates.ecosystem.to_string(),
            name: coordinates.name.to_string(),
            version: coordinates.version.to_string(),
            epoch: members.epoch(),
            selection_size,
            selection_root,
            threshold: members.commit_threshold(),
            order: builder_order(&seed, members),
            asked: 0,
            groups: Vec::new(),
            attested: Vec::new(),
            state: RoundState::Collecting,
            deadline: now + timeout,
            timeout,
            retries: 0,
            outputs: VecDeque::new(),
            committed: None,
            reported: Vec::new(),
        };
        round.ask_more(members.commit_threshold() + DEFAULT_SLACK);
        round
    }

    /// Where the round stands.
    pub fn state(&self) -> RoundState {
        self.state
    }

    /// The next deadline, while the round is open.
    pub fn deadline(&self) -> Option<Instant> {
        matches!(self.state, RoundState::Collecting | RoundState::Disputed).then_some(self.deadline)
    }

    /// How many members have been asked so far.
    pub fn asked(&self) -> usize {
        self.asked
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<BuildOutput> {
        self.outputs.pop_front()
    }

    fn ask_more(&mut self, count: usize) {
        let end = (self.asked + count).min(self.order.len());
        for i in self.asked..end {
            self.outputs.push_back(BuildOutput::Ask(self.order[i].0));
        }
        self.asked = end;
    }

    fn binds_this_request(&self, statement: &Claim<'_>) -> bool {
        statement.request_index == self.request_index
            && statement.epoch == self.epoch
            && statement.selection_size == self.selection_size
            && statement.selection_root == self.selection_root
            && statement.coordinates.ecosystem == self.ecosystem
            && statement.coordinates.name == self.name
            && statement.coordinates.version == self.version
    }

    /// Counts `signer`'s attestation of a fetch `statement` if it is valid for this round;
    /// commits on the f+1th matching one.
    pub fn handle_attestation(
        &mut self,
        signer: KeyId,
        statement: &Statement<'_>,
        signature: Signature,
    ) -> Result<(), AttestationError> {
        let bytes = postcard::to_allocvec(statement).unwrap_or_default();
        self.handle_statement(signer, &bytes, signature)
    }

    /// Counts `signer`'s attestation of the statement `bytes` (a fetch's or a rebuild's,
    /// read as a [`Claim`]) if it is valid for this round; commits on the f+1th matching one.
    /// Bytes that are neither statement are bound to no request.
    pub fn handle_statement(
        &mut self,
        signer: KeyId,
        bytes: &[u8],
        signature: Signature,
    ) -> Result<(), AttestationError> {
        if self.state == RoundState::Unverifiable {
            return Err(AttestationError::Closed);
        }
        let key = self
            .order
            .iter()
            .find(|(id, _)| *id == signer)
            .map(|(_, key)| *key)
            .ok_or(AttestationError::NotAMember)?;
        let statement = Claim::decode(bytes).ok_or(AttestationError::WrongRequest)?;
        if !self.binds_this_request(&statement) {
            return Err(AttestationError::WrongRequest);
        }
        if !statement.verify(&key, &signature) {
            return Err(AttestationError::BadSignature);
        }
        let digest = statement.digest;
        let signed = Signed { signer, signature };
        if self.state == RoundState::Committed {
            // Late: not counted, but a contradiction of the commit is evidence.
            if self.committed != Some(digest) && !self.reported.contains(&signer) {
                self.reported.push(signer);
                self.outputs
                    .push_back(BuildOutput::Contradiction(bytes.to_vec(), signed));
            }
            return Err(AttestationError::Closed);
        }
        if let Some(&(_, first)) = self.attested.iter().find(|(id, _)| *id == signer) {
            if first != digest {
                // Equivocation: the other statement is kept as evidence, never counted.
                self.add_to_group(digest, bytes, signed);
            }
            return Err(AttestationError::Repeated);
        }
        self.attested.push((signer, digest));
        let index = self.add_to_group(digest, bytes, signed);
        let matching: Vec<Signed> = self.groups[index]
            .signers
            .iter()
            .filter(|s| self.counts(s.signer, digest))
            .copied()
            .collect();
        if matching.len() >= self.threshold {
            let statement = self.groups[index].statement.clone();
            let contradicting = self
                .groups
                .iter()
                .filter(|g| g.digest != digest)
                .map(|g| (g.statement.clone(), g.signers.clone()))
                .collect();
            self.outputs.push_back(BuildOutput::Commit {
                statement,
                attestations: matching,
                contradicting,
            });
            self.state = RoundState::Committed;
            self.committed = Some(digest);
            for g in self.groups.iter().filter(|g| g.digest != digest) {
                self.reported.extend(g.signers.iter().map(|s| s.signer));
            }
        } else if self.groups.len() > 1 && self.state == RoundState::Collecting {
            // A mismatch: ask the next member now rather than at the deadline.
            self.ask_more(1);
        }
        Ok(())
    }

    /// Adds `signed` to the group of `digest` (created with the statement's bytes).
    fn add_to_group(&mut self, digest: [u8; 32], statement: &[u8], signed: Signed) -> usize {
        let index = match self.groups.iter().position(|g| g.digest == digest) {
            Some(i) => i,
            None => {
                self.groups.push(Group {
                    digest,
                    statement: statement.to_vec(),
                    signers: Vec::new(),
                });
                self.groups.len() - 1
            }
        };
        self.groups[index].signers.push(signed);
        index
    }

    /// Whether `signer`'s attestation of `digest` counts: it was the signer's first statement
    /// (an equivocator's later statements are evidence only).
    fn counts(&self, signer: KeyId, digest: [u8; 32]) -> bool {
        self.attested
            .iter()
            .any(|(id, first)| *id == signer && *first == digest)
    }

    fn evidence(&self) -> Vec<(Vec<u8>, Vec<Signed>)> {
        self.groups
            .iter()
            .map(|g| (g.statement.clone(), g.signers.clone()))
            .collect()
    }

    /// Asks again the asked members that have not attested (the transport may have lost the
    /// ask or the answer).
    fn ask_silent_again(&mut self) {
        for i in 0..self.asked {
            let id = self.order[i].0;
            if !self.attested.iter().any(|(signer, _)| *signer == id) {
                self.outputs.push_back(BuildOutput::Ask(id));
            }
        }
    }

    /// Advances past a deadline. With only silence: more builders, or once every member was
    /// asked, the silent ones again (up to [`MAX_RETRIES`] deadlines). With disagreement, or
    /// when retries run out: a dispute, asking every member. After the dispute's deadline:
    /// unverifiable.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        match self.state {
            RoundState::Collecting if self.groups.len() <= 1 && self.asked < self.order.len() => {
                let best = self.groups.first().map_or(0, |g| g.signers.len());
                self.ask_silent_again();
                self.ask_more(self.threshold.saturating_sub(best).max(1));
                self.deadline = now + self.timeout;
            }
            RoundState::Collecting if self.groups.len() <= 1 && self.retries < MAX_RETRIES => {
                self.retries += 1;
                self.ask_silent_again();
                self.deadline = now + self.timeout;
            }
            RoundState::Collecting => {
                self.outputs
                    .push_back(BuildOutput::Dispute(self.evidence()));
                self.ask_silent_again();
                self.ask_more(self.order.len());
                self.state = RoundState::Disputed;
                self.deadline = now + self.timeout;
            }
            RoundState::Disputed => {
                self.outputs
                    .push_back(BuildOutput::Unverifiable(self.evidence()));
                self.state = RoundState::Unverifiable;
            }
            RoundState::Committed | RoundState::Unverifiable => {}
        }
    }
}

#[cfg(test)]
mod tests;
