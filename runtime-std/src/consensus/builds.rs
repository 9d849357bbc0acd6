//! Build rounds on a member: every member follows the round of each open request (the same
//! selection order from the same log), builds when the round asks it, broadcasts its signed
//! attestation, and submits the `Commit`, `Dispute` or `Unverifiable` the round produces.
//! Attestations that contradict a commit are kept as evidence.

use pyrsia_core::consensus::limits::MAX_CONCURRENT_BUILDS;
use pyrsia_core::consensus::wire::MemberMessage;
use pyrsia_core::consensus::{BuildOutput, BuildRound};
use pyrsia_core::digest::Digest;
use pyrsia_core::identity::{KeyId, Signature};
use pyrsia_core::reference::Host;
use pyrsia_core::time::Instant;
use pyrsia_core::tlog::entry::{
    BuildRequest, Commit, Coordinates, DOCKER_FETCH_V1, DigestList, Dispute, ECOSYSTEM_DOCKER,
    Entry, PieceRootList, SignatureList, Signed, Statement, TagObservation,
};

use super::driver::Driver;
use super::{Byzantine, Input};
use crate::clock::unix_seconds;
use crate::log::{BuildSource, Verified, VerifyJob, statement_lists, verify};

/// Attestations for requests this member does not know yet, kept until it does.
const MAX_EARLY_ATTESTATIONS: usize = 256;

/// The digest a member started with `--test-byzantine wrong-digest` attests in place of one
/// real output.
fn wrong_digest() -> Digest {
    Digest::sha256(b"pyrsia test: a byzantine member's wrong digest")
}

impl Driver {
    /// The mirror served an image: submit a `BuildRequest` (and the tag it was pulled by)
    /// unless it is committed or requested already.
    pub(super) fn on_request(&mut self, job: VerifyJob) {
        let Some(name) = job.canonical_name() else {
            return;
        };
        let version = job.manifest.to_string();
        let me = self.my_id();
        if let Some(tag) = job.tag.as_deref() {
            let moved = self
                .log
                .find_tag(&name, tag)
                .is_none_or(|(_, digest)| digest != job.manifest);
            let waiting = self.waiting(|e| {
                matches!(e, Entry::TagObservation(t)
                    if t.tag.name == name && t.tag.version == tag && t.digest == job.manifest)
            });
            if moved && !waiting {
                let entry = Entry::TagObservation(TagObservation {
                    tag: Coordinates {
                        ecosystem: ECOSYSTEM_DOCKER,
                        name: &name,
                        version: tag,
                    },
                    digest: job.manifest,
                    checkpoint_size: self.log.size(),
                    observer: me,
                    observed_at: unix_seconds(),
                })
                .encode();
                self.submit(entry);
            }
        }
        if self.log.find_commit(&name, &version).is_some()
            || (job.tag.is_none() && self.log.is_committed(&job.manifest))
        {
            return;
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((name.clone(), version.clone()));
        if self.log.find_request(&name, &version).is_some() {
            return;
        }
        let source = self.mirror.upstream_url(&job.host);
        let entry = Entry::BuildRequest(BuildRequest {
            coordinates: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name: &name,
                version: &version,
            },
            build_type: DOCKER_FETCH_V1,
            source: &source,
            requester: me,
        })
        .encode();
        tracing::info!(%name, %version, "requesting verification by the members");
        self.submit(entry);
    }

    /// Follows the log's open requests: a round for each new one, none for settled ones.
    pub(super) fn sync_rounds(&mut self) {
        let open = self.log.open_requests();
        self.rounds
            .retain(|index, _| open.iter().any(|(i, _)| i == index));
        self.own_attestations
            .retain(|index, _| open.iter().any(|(i, _)| i == index));
        let now = self.now();
        for (index, bytes) in open {
            if self.rounds.contains_key(&index) {
                continue;
            }
            let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
                continue;
            };
            if request.build_type != DOCKER_FETCH_V1 {
                continue;
            }
            let Some((size, root)) = self.log.selection_checkpoint(index) else {
                continue;
            };
            let round = BuildRound::start(
                index,
                &request.coordinates,
                &self.members,
                size,
                root,
                now,
                super::driver::core_duration(self.config.build_timeout),
            );
            self.rounds.insert(index, round);
            self.drain_round(index);
        }
        for (signer, statement, signature) in std::mem::take(&mut self.early_attestations) {
            self.on_attestation(signer, statement, signature);
        }
    }

    /// Deadlines of build rounds: escalation, dispute, unverifiable; this member's own
    /// attestation is sent again (it may have been lost).
    pub(super) fn on_round_timeouts(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.deadline().is_some_and(|at| at <= now))
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            if let Some(round) = self.rounds.get_mut(&index) {
                round.handle_timeout(now);
            }
            if let Some((statement, signature)) = self.own_attestations.get(&index).cloned() {
                self.broadcast(&MemberMessage::Attestation {
                    statement: &statement,
                    signature,
                });
            }
            self.drain_round(index);
        }
    }

    /// A member's attestation: counted by the request's round.
    pub(super) fn on_attestation(
        &mut self,
        signer: KeyId,
        statement: Vec<u8>,
        signature: Signature,
    ) {
        let Ok(decoded) = postcard::from_bytes::<Statement<'_>>(&statement) else {
            tracing::warn!(member = %signer, "malformed attestation");
            return;
        };
        let index = decoded.request_index;
        let coordinates = decoded.coordinates;
        if let Some(commit) = self.log.find_commit(coordinates.name, coordinates.version) {
            self.check_against_commit(commit, signer, &decoded, signature);
            return;
        }
        let Some(round) = self.rounds.get_mut(&index) else {
            if self
                .log
                .find_request(decoded.coordinates.name, decoded.coordinates.version)
                != Some(index)
                && self.early_attestations.len() < MAX_EARLY_ATTESTATIONS
            {
                self.early_attestations
                    .push((signer, statement.clone(), signature));
            }
            return;
        };
        match round.handle_attestation(signer, &decoded, signature) {
            Ok(()) => tracing::info!(member = %signer, index, "attestation counted"),
            Err(e) => {
                tracing::debug!(member = %signer, index, error = ?e, "attestation not counted")
            }
        }
        self.drain_round(index);
    }

    /// An attestation for coordinates already committed: if a member signed other outputs
    /// than the commit's, the signature is evidence against it (PROTOCOL §2.6).
    fn check_against_commit(
        &mut self,
        commit: u64,
        signer: KeyId,
        statement: &Statement<'_>,
        signature: Signature,
    ) {
        let Some(bytes) = self.log.entry(commit) else {
            return;
        };
        let Ok(Entry::Commit(committed)) = Entry::decode(&bytes) else {
            return;
        };
        let signed_by_member = self
            .members
            .find(&signer)
            .is_some_and(|key| statement.verify(&key, &signature));
        if signed_by_member && committed.statement.outputs != statement.outputs {
            let encoded = postcard::to_allocvec(statement).unwrap_or_default();
            self.keep_evidence(commit, Signed { signer, signature }, encoded);
        }
    }

    fn keep_evidence(&mut self, index: u64, signed: Signed, statement: Vec<u8>) {
        tracing::warn!(
            member = %signed.signer,
            index,
            "EVIDENCE: a member attested outputs that contradict the commit; kept"
        );
        let mut key = b"attestation/".to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key.extend_from_slice(&signed.signer.0);
        let mut value = statement;
        value.extend_from_slice(&signed.to_bytes());
        if let Err(e) = self.log.keep_evidence(&key, &value) {
            tracing::error!(error = %e, "cannot keep evidence");
        }
    }

    fn drain_round(&mut self, index: u64) {
        let me = self.my_id();
        while let Some(output) = self
            .rounds
            .get_mut(&index)
            .and_then(BuildRound::poll_output)
        {
            match output {
                BuildOutput::Ask(member) if member == me => self.build(index),
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
                    let Ok(statement) = postcard::from_bytes::<Statement<'_>>(&statement) else {
                        continue;
                    };
                    let signatures: Vec<u8> =
                        attestations.iter().flat_map(Signed::to_bytes).collect();
                    let entry = Entry::Commit(Commit {
                        statement,
                        attestations: SignatureList(&signatures),
                    })
                    .encode();
                    tracing::info!(
                        index,
                        attestations = attestations.len(),
                        "f+1 attestations agree: submitting the commit"
                    );
                    self.submit(entry);
                }
                BuildOutput::Contradiction(statement, signed) => {
                    self.keep_evidence(index, signed, statement);
                }
                BuildOutput::Dispute(evidence) | BuildOutput::Unverifiable(evidence) => {
                    let final_ = self.rounds.get(&index).is_some_and(|r| {
                        r.state() == pyrsia_core::consensus::RoundState::Unverifiable
                    });
                    let Some(bytes) = self.log.entry(index) else {
                        continue;
                    };
                    let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
                        continue;
                    };
                    let evidence = pyrsia_core::consensus::evidence::encode_evidence(&evidence);
                    let dispute = Dispute {
                        request_index: index,
                        coordinates: request.coordinates,
                        evidence: &evidence,
                    };
                    tracing::warn!(
                        index,
                        unverifiable = final_,
                        "builders disagree: submitting the dispute"
                    );
                    let entry = if final_ {
                        Entry::Unverifiable(dispute)
                    } else {
                        Entry::Dispute(dispute)
                    };
                    self.submit(entry.encode());
                }
            }
        }
    }

    /// Builds request `index` on a thread of its own: the image is fetched and every digest
    /// checked, as `docker-fetch/v1` says.
    fn build(&mut self, index: u64) {
        if self.building.contains(&index) || self.own_attestations.contains_key(&index) {
            return;
        }
        if self.building.len() >= MAX_CONCURRENT_BUILDS {
            // The round asks again at its next deadline.
            tracing::debug!(index, "builds at their limit: this one waits");
            return;
        }
        self.building.insert(index);
        let Some(bytes) = self.log.entry(index) else {
            return;
        };
        let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
            return;
        };
        let job = (|| {
            let (host, name) = request.coordinates.name.split_once('/')?;
            Some(VerifyJob {
                host: Host::parse(host).ok()?,
                name: name.to_string(),
                manifest: Digest::parse(request.coordinates.version).ok()?,
                tag: None,
            })
        })();
        let Some(job) = job else {
            tracing::warn!(
                index,
                "cannot build: the request's coordinates are not a docker image"
            );
            return;
        };
        tracing::info!(index, name = %request.coordinates.name, "selected to build: fetching from the upstream");
        let mirror = self.mirror.clone();
        let inputs = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                let result = verify(&mirror, &job, BuildSource::Upstream);
                let _ = inputs.send(Input::Built(index, result));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a builder");
            self.building.remove(&index);
        }
    }

    /// A build of this member finished: attest its outputs.
    pub(super) fn on_built(&mut self, index: u64, result: Result<Verified, String>) {
        self.building.remove(&index);
        let mut verified = match result {
            Ok(verified) => verified,
            Err(why) => {
                tracing::warn!(index, %why, "build failed; not attesting");
                return;
            }
        };
        if self.config.byzantine == Some(Byzantine::WrongDigest)
            && let Some(first) = verified.outputs.first_mut()
        {
            tracing::warn!(index, "TEST BYZANTINE MEMBER: attesting a wrong digest");
            *first = wrong_digest();
        }
        let (Some(bytes), Some((size, root))) =
            (self.log.entry(index), self.log.selection_checkpoint(index))
        else {
            return;
        };
        let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
            return;
        };
        let (outputs, piece_roots) = statement_lists(&verified.outputs, &verified.piece_roots);
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
        tracing::info!(index, outputs = verified.outputs.len(), "built: attesting");
        self.own_attestations
            .insert(index, (encoded.clone(), signed.signature));
        self.broadcast(&MemberMessage::Attestation {
            statement: &encoded,
            signature: signed.signature,
        });
        self.on_attestation(signed.signer, encoded, signed.signature);
    }
}
