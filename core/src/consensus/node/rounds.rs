//! Build rounds on a member: every member follows the round of each open request (the same
//! selection order from the same log), asks its runtime to build when the round selects it,
//! broadcasts its signed attestation, and submits the `Commit`, `Dispute` or `Unverifiable`
//! the round produces. Attestations that contradict a commit become evidence.

use alloc::vec::Vec;

use crate::consensus::evidence::encode_evidence;
use crate::consensus::wire::MemberMessage;
use crate::consensus::{BuildOutput, BuildRound, RoundState};
use crate::digest::Digest;
use crate::identity::{KeyId, Signature};
use crate::tlog::Hash;
use crate::tlog::coordinates::fetch_build_type;
use crate::tlog::entry::{
    Commit, DigestList, Dispute, Entry, PieceRootList, SignatureList, Signed, Statement,
};
use crate::tlog::rebuilt::{Claim, RebuildCommit, RebuildStatement, rebuilt_ecosystem};
use crate::tlog::state::LogState;

use super::{MAX_EARLY_ATTESTATIONS, MemberNode, Misbehaviour, NodeOutput, Now};

/// What a build found: every output digest and the piece roots of large blobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildResult {
    /// Every output digest (manifests, indexes, blobs).
    pub outputs: Vec<Digest>,
    /// Blob digests and their piece roots.
    pub piece_roots: Vec<(Digest, Hash)>,
}

/// The bytes of a statement's output list and piece-root list: sorted and distinct, so that
/// every builder of the same image attests the same statement.
pub fn statement_lists(outputs: &[Digest], piece_roots: &[(Digest, Hash)]) -> (Vec<u8>, Vec<u8>) {
    let mut outputs = outputs.to_vec();
    outputs.sort();
    outputs.dedup();
    let mut roots = piece_roots.to_vec();
    roots.sort();
    roots.dedup();
    let outputs = outputs.iter().flat_map(|d| *d.as_bytes()).collect();
    let roots = roots
        .iter()
        .flat_map(|(d, r)| d.as_bytes().iter().chain(r).copied().collect::<Vec<u8>>())
        .collect();
    (outputs, roots)
}

/// The open request at `index`, decoded, with its selection checkpoint: what an attestation
/// of it is bound to. `None` when the log has either no longer or not yet.
pub(super) fn open_request_with_selection(
    log: &LogState,
    index: u64,
) -> Option<(crate::tlog::entry::BuildRequest<'_>, (u64, Hash))> {
    let selection = log.selection_checkpoint(index)?;
    match Entry::decode(log.index().open_request(index)?) {
        Ok(Entry::BuildRequest(request)) => Some((request, selection)),
        _ => None,
    }
}

/// The digest a member with [`Misbehaviour::WrongDigest`] attests in place of one real output.
fn wrong_digest() -> Digest {
    Digest::sha256(b"pyrsia test: a byzantine member's wrong digest")
}

impl MemberNode {
    /// Follows the log's open requests: a round for each new one, none for settled ones.
    pub(super) fn sync_rounds(&mut self, log: &LogState, now: Now) {
        let index = log.index();
        self.rounds.retain(|i, _| index.open_request(*i).is_some());
        self.own_attestations
            .retain(|i, _| index.open_request(*i).is_some());
        self.building.retain(|i| index.open_request(*i).is_some());
        self.build_queue
            .retain(|i, _| index.open_request(*i).is_some());
        let new: Vec<u64> = index
            .open_requests()
            .map(|(i, _)| i)
            .filter(|i| !self.rounds.contains_key(i))
            .collect();
        for request_index in new {
            let Some(bytes) = index.open_request(request_index) else {
                continue;
            };
            let Ok(Entry::BuildRequest(request)) = Entry::decode(bytes) else {
                continue;
            };
            if fetch_build_type(request.coordinates.ecosystem) != Some(request.build_type) {
                continue;
            }
            let Some((size, root)) = log.selection_checkpoint(request_index) else {
                continue;
            };
            let round = BuildRound::start(
                request_index,
                &request.coordinates,
                &self.members,
                size,
                root,
                now.mono,
                self.config.build_timeout,
            );
            self.rounds.insert(request_index, round);
            if self.volunteers_for(&request) {
                self.build(log, request_index);
            }
            self.drain_round(log, now, request_index);
        }
        for (signer, statement, signature) in core::mem::take(&mut self.early_attestations) {
            self.on_attestation(log, now, signer, statement, signature);
        }
    }

    /// Deadlines of build rounds: escalation, dispute, unverifiable; this member's own
    /// attestation is sent again (it may have been lost).
    pub(super) fn on_round_timeouts(&mut self, log: &LogState, now: Now) {
        let due: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.deadline().is_some_and(|at| at <= now.mono))
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            if let Some(round) = self.rounds.get_mut(&index) {
                round.handle_timeout(now.mono);
            }
            if let Some((statement, signature)) = self.own_attestations.get(&index).cloned() {
                self.broadcast(&MemberMessage::Attestation {
                    statement: &statement,
                    signature,
                });
            }
            self.drain_round(log, now, index);
        }
    }

    /// A member's attestation: counted by the request's round; against a commit, kept as
    /// evidence when it contradicts it.
    pub(super) fn on_attestation(
        &mut self,
        log: &LogState,
        now: Now,
        signer: KeyId,
        statement: Vec<u8>,
        signature: Signature,
    ) {
        let Some(decoded) = Claim::decode(&statement) else {
            return;
        };
        let index = decoded.request_index;
        let coordinates = decoded.coordinates;
        let subject = coordinates.subject();
        if let Some((commit, outcome)) = log.index().commit_outputs(&subject, coordinates.version) {
            let signed_by_member = self
                .members
                .find(&signer)
                .is_some_and(|key| decoded.verify(&key, &signature));
            if signed_by_member && decoded.outcome != outcome {
                self.keep_evidence(commit, Signed { signer, signature }, statement.clone());
            }
            return;
        }
        let Some(round) = self.rounds.get_mut(&index) else {
            if log.index().request(&subject, coordinates.version) != Some(index)
                && self.early_attestations.len() < MAX_EARLY_ATTESTATIONS
            {
                self.early_attestations
                    .push((signer, statement.clone(), signature));
            }
            return;
        };
        let _ = round.handle_statement(signer, &statement, signature);
        self.drain_round(log, now, index);
    }

    fn keep_evidence(&mut self, index: u64, signed: Signed, statement: Vec<u8>) {
        let mut key = b"attestation/".to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key.extend_from_slice(&signed.signer.0);
        let mut bytes = statement;
        bytes.extend_from_slice(&signed.to_bytes());
        self.outputs.push_back(NodeOutput::Evidence {
            kind: super::EvidenceKind::ContradictingAttestation,
            key,
            bytes,
        });
    }

    fn drain_round(&mut self, log: &LogState, now: Now, index: u64) {
        let me = self.id();
        while let Some(output) = self
            .rounds
            .get_mut(&index)
            .and_then(BuildRound::poll_output)
        {
            match output {
                BuildOutput::Ask(member) if member == me => self.build(log, index),
                BuildOutput::Ask(_) => {}
                BuildOutput::Commit {
                    statement,
                    attestations,
                    contradicting,
                } => {
                    for (other, signers) in contradicting {
                        for signed in signers {
                            self.keep_evidence(index, signed, other.clone());
                        }
                    }
                    let signatures: Vec<u8> =
                        attestations.iter().flat_map(Signed::to_bytes).collect();
                    if let Ok(statement) = postcard::from_bytes::<RebuildStatement<'_>>(&statement)
                        && rebuilt_ecosystem(statement.coordinates.ecosystem).is_some()
                    {
                        let entry = Entry::Rebuilt(RebuildCommit {
                            statement,
                            attestations: SignatureList(&signatures),
                        });
                        self.submit(log, now, entry.encode());
                        continue;
                    }
                    let Ok(statement) = postcard::from_bytes::<Statement<'_>>(&statement) else {
                        continue;
                    };
                    let coordinates = statement.coordinates;
                    let entry = Entry::Commit(Commit {
                        statement,
                        attestations: SignatureList(&signatures),
                    })
                    .encode();
                    self.submit(log, now, entry);
                    // The image tags this member saw for it follow in the same batch.
                    let subject = coordinates.subject();
                    self.submit_committed_tags(log, now, Some((&subject, coordinates.version)));
                }
                BuildOutput::Contradiction(statement, signed) => {
                    self.keep_evidence(index, signed, statement);
                }
                BuildOutput::Dispute(evidence) | BuildOutput::Unverifiable(evidence) => {
                    let final_ = self
                        .rounds
                        .get(&index)
                        .is_some_and(|r| r.state() == RoundState::Unverifiable);
                    let Some(bytes) = log.index().open_request(index) else {
                        continue;
                    };
                    let Ok(Entry::BuildRequest(request)) = Entry::decode(bytes) else {
                        continue;
                    };
                    let evidence = encode_evidence(&evidence);
                    let dispute = Dispute {
                        request_index: index,
                        coordinates: request.coordinates,
                        evidence: &evidence,
                    };
                    let entry = if final_ {
                        Entry::Unverifiable(dispute)
                    } else {
                        Entry::Dispute(dispute)
                    };
                    self.submit(log, now, entry.encode());
                }
            }
        }
    }

    /// The round selected this member: the build waits its turn. Builds run at most
    /// `max_builds` at once (default [`crate::consensus::limits::MAX_CONCURRENT_BUILDS`]), and the next one is always from the requester with
    /// the fewest builds so far, so a member requesting junk at full rate delays an honest
    /// request by at most one build per slot.
    pub(super) fn build(&mut self, log: &LogState, index: u64) {
        if self.building.contains(&index) || self.own_attestations.contains_key(&index) {
            return;
        }
        let Some(Ok(Entry::BuildRequest(request))) =
            log.index().open_request(index).map(Entry::decode)
        else {
            return;
        };
        self.build_queue.insert(index, request.requester);
        self.start_builds(log);
    }

    /// Starts queued builds while there are free slots, fairly across requesters.
    pub(super) fn start_builds(&mut self, log: &LogState) {
        while self.building.len() < self.config.max_builds.max(1) {
            let next = self
                .build_queue
                .iter()
                .min_by_key(|(index, requester)| {
                    (
                        self.builds_served.get(*requester).copied().unwrap_or(0),
                        **index,
                    )
                })
                .map(|(index, requester)| (*index, *requester));
            let Some((index, requester)) = next else {
                return;
            };
            self.build_queue.remove(&index);
            let Some(request) = log.index().open_request(index) else {
                continue;
            };
            *self.builds_served.entry(requester).or_default() += 1;
            self.building.insert(index);
            let request = request.to_vec();
            self.keep_request_to_attest_late(log, index, &request);
            self.outputs.push_back(NodeOutput::Build { index, request });
        }
    }

    /// A fetch build of this member finished: attest its outputs (a failed build attests
    /// nothing; the round asks the next builders at its deadline). A rebuild reports through
    /// [`MemberNode::rebuilt`].
    pub fn built(&mut self, log: &LogState, now: Now, index: u64, result: Result<BuildResult, ()>) {
        self.follow_log(log, now);
        self.building.remove(&index);
        self.start_builds(log);
        let kept = self.late_attestations.remove(&index);
        let Ok(mut result) = result else {
            return;
        };
        if self.config.misbehaviour == Some(Misbehaviour::WrongDigest)
            && let Some(first) = result.outputs.first_mut()
        {
            *first = wrong_digest();
            self.misbehaved += 1;
        }
        let kept_request = || {
            let (bytes, selection) = kept.as_ref()?;
            match Entry::decode(bytes) {
                Ok(Entry::BuildRequest(request)) => Some((request, *selection)),
                _ => None,
            }
        };
        let Some((request, (size, root))) =
            open_request_with_selection(log, index).or_else(kept_request)
        else {
            return;
        };
        let (outputs, piece_roots) = statement_lists(&result.outputs, &result.piece_roots);
        let statement = Statement {
            request_index: index,
            coordinates: request.coordinates,
            build_type: request.build_type,
            outputs: DigestList(&outputs),
            epoch: self.members.epoch(),
            selection_size: size,
            selection_root: root,
            piece_roots: PieceRootList(&piece_roots),
        };
        let signed = statement.sign(&self.key);
        let encoded = postcard::to_allocvec(&statement).unwrap_or_default();
        self.attest(log, now, index, encoded, signed);
    }

    /// Keeps this member's attestation of the statement `encoded` (sent again at deadlines),
    /// sends it to every member and counts it.
    pub(super) fn attest(
        &mut self,
        log: &LogState,
        now: Now,
        index: u64,
        encoded: Vec<u8>,
        signed: Signed,
    ) {
        self.own_attestations
            .insert(index, (encoded.clone(), signed.signature));
        self.broadcast(&MemberMessage::Attestation {
            statement: &encoded,
            signature: signed.signature,
        });
        self.on_attestation(log, now, signed.signer, encoded, signed.signature);
    }
}
