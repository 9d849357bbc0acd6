//! Test-only misbehaviour of a member, so that end-to-end tests (`--test-byzantine`) and the
//! simulation attack real member nodes: a wrong digest in every attestation, the
//! vote-splitter equivocating in every round it proposes, the flooder sending junk at full
//! rate, the tag forger steering tags on its own word. Nothing here runs unless a test
//! switches it on.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::consensus::ordering::{Message, ValueId};
use crate::consensus::wire::{Batch, CheckpointHead, MemberMessage, Vote};
use crate::digest::Digest;
use crate::identity::SecretKey;
use crate::tlog::entry::{
    BuildRequest, Coordinates, DOCKER_FETCH_V1, ECOSYSTEM_DOCKER, Entry, MembershipChange,
    MembershipOp, SignatureList, TagObservation, TagStatement, UnattestedTag,
};
use crate::tlog::state::LogState;

use super::MemberNode;

/// Junk messages a flooder sends on every tick.
const FLOOD_BURST: u64 = 4;
/// Tags the tag forger steers per log size at most.
const FORGED_TAGS_PER_HEIGHT: usize = 16;

/// Misbehaviour a test switches on to check that the network tolerates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Attest a wrong digest for every build (PROTOCOL case 3), and `Reproduced` for every
    /// rebuild whatever it found, rebuilding unasked.
    WrongDigest,
    /// Equivocate in ordering (PROTOCOL case 8): as proposer, propose two different batches
    /// (the second with the entries reversed, or without the only one); prevote and precommit (with
    /// cosignatures) for both.
    SplitVotes,
    /// Flood the other members at full rate: proposals and votes for far-future heights,
    /// cosigned junk checkpoints, junk `BuildRequest`s and membership endorsements.
    Flood,
    /// Steer tags on its own word (PROTOCOL.md §2.1): whenever the log grows, submit for every
    /// observed tag an observation pointing it elsewhere (another committed version of the
    /// name, and a digest nobody attested) and one of a tag the upstream does not have, each
    /// with its one vouch and in the old unattested form; and vouch for every other member's
    /// tag query without looking.
    ForgeTags,
}

impl MemberNode {
    /// Keeps the request a wrong-digest member starts building, with its selection, so that
    /// [`MemberNode::built`] attests even when the request settled meanwhile: a slow liar
    /// still sends its contradiction, and honest members keep it as evidence (an honest member
    /// attests nothing for a settled request).
    pub(super) fn keep_request_to_attest_late(
        &mut self,
        log: &LogState,
        index: u64,
        request: &[u8],
    ) {
        if self.config.misbehaviour != Some(Misbehaviour::WrongDigest) {
            return;
        }
        if let Some(selection) = log.selection_checkpoint(index) {
            self.late_attestations
                .insert(index, (request.to_vec(), selection));
        }
    }

    /// Whether this member rebuilds `request` unasked: a byzantine rebuilder
    /// ([`Misbehaviour::WrongDigest`]) attests every rebuild round, selected or not, so that
    /// its false `Reproduced` is always in the round (the round counts any member's
    /// attestation; f of them never make f+1).
    pub(super) fn volunteers_for(&self, request: &crate::tlog::entry::BuildRequest<'_>) -> bool {
        self.config.misbehaviour == Some(Misbehaviour::WrongDigest)
            && crate::tlog::rebuilt::rebuilt_ecosystem(request.coordinates.ecosystem).is_some()
    }

    /// The vote-splitter's second message for an own `message`: a twin proposal (another
    /// batch: without the last entry, under a checkpoint one second later), or the same vote
    /// for the twin of the value voted for. `None` when not splitting or there is no twin.
    pub(super) fn split_extra(&mut self, log: &LogState, message: &Message) -> Option<Message> {
        if self.config.misbehaviour != Some(Misbehaviour::SplitVotes) {
            return None;
        }
        match message {
            Message::Proposal {
                height,
                round,
                value,
                valid_round,
            } => {
                let batch = Batch::decode(value).ok()?;
                // Another log where it can: the entries in reverse order (the same size, another
                // root), a single entry left out, or an empty batch under a later time.
                let mut entries = batch.entries.clone();
                if entries.len() >= 2 {
                    entries.reverse();
                } else {
                    entries.pop();
                }
                let head = log.batch_head(&entries, batch.head.timestamp + 1).ok()?;
                let twin = Batch { head, entries }.encode();
                self.twins.insert(batch.head.id(), head.id());
                self.values.insert(head.id(), twin.clone());
                self.misbehaved += 1;
                Some(Message::Proposal {
                    height: *height,
                    round: *round,
                    value: twin,
                    valid_round: *valid_round,
                })
            }
            Message::Prevote {
                height,
                round,
                id: Some(id),
            } => Some(Message::Prevote {
                height: *height,
                round: *round,
                id: Some(*self.twins.get(id)?),
            }),
            Message::Precommit {
                height,
                round,
                id: Some(id),
            } => Some(Message::Precommit {
                height: *height,
                round: *round,
                id: Some(*self.twins.get(id)?),
            }),
            _ => None,
        }
    }

    /// One burst of the flooder's junk: proposals and prevotes for far-future or absurd
    /// heights and rounds, precommits with valid cosignatures of junk checkpoints, junk
    /// build requests, and endorsements of random keys.
    pub(super) fn flood(&mut self, log: &LogState) {
        let height = self.height.unwrap_or(0);
        self.misbehaved += 1;
        for _ in 0..FLOOD_BURST {
            let n = self.nonce.wrapping_add(1);
            let junk_id: ValueId = *Digest::sha256(&n.to_be_bytes()).as_bytes();
            let head = CheckpointHead {
                size: n,
                root: junk_id,
                timestamp: u64::MAX - n,
            };
            let value = Batch {
                head,
                entries: Vec::new(),
            }
            .encode();
            self.broadcast(&MemberMessage::Vote(Vote::Proposal {
                height: u64::MAX - n,
                round: 0,
                value: &value,
                valid_round: None,
            }));
            self.broadcast(&MemberMessage::Vote(Vote::Prevote {
                height,
                round: (n % 10_000) as u32,
                id: Some(junk_id),
            }));
            if let Some(checkpoint) = head.checkpoint(log.origin()) {
                let cosignature = checkpoint.sign(&self.key);
                self.broadcast(&MemberMessage::Vote(Vote::Precommit {
                    height: height + 1 + n % 600,
                    round: 0,
                    value: Some((head, cosignature.signature)),
                }));
            }
            let name = format!("docker.io/flood/junk{n}");
            let version = Digest::sha256(name.as_bytes()).to_string();
            let request = Entry::BuildRequest(BuildRequest {
                coordinates: Coordinates {
                    ecosystem: ECOSYSTEM_DOCKER,
                    name: &name,
                    version: &version,
                },
                build_type: DOCKER_FETCH_V1,
                source: "https://127.0.0.1:1",
                requester: self.id(),
            })
            .encode();
            self.broadcast(&MemberMessage::Submit { entry: &request });
            let key = SecretKey::from_seed(junk_id).public();
            let epoch = self.members.epoch() + 1;
            let change = MembershipChange {
                epoch,
                key,
                signatures: SignatureList(&[]),
            };
            let signed = change.sign(log.origin(), MembershipOp::Add, &self.key);
            self.broadcast(&MemberMessage::Endorse {
                op: MembershipOp::Add,
                epoch,
                key: key.to_bytes(),
                signature: signed.signature,
            });
        }
    }

    /// The tag forger's entries for the log as it is now (once per log size), sent as
    /// submissions to every member.
    pub(super) fn forge_tags(&mut self, log: &LogState) {
        if self.forged_at == Some(log.final_size()) || self.ordering.is_none() {
            return;
        }
        self.forged_at = Some(log.final_size());
        let index = log.index();
        let mut targets: Vec<(String, String, Digest)> = Vec::new();
        for (name, tag, digest) in index.tags() {
            let elsewhere = index
                .committed_versions(name)
                .filter_map(|v| Digest::parse(v).ok())
                .find(|d| *d != digest);
            targets.extend(elsewhere.map(|d| (name.to_string(), tag.to_string(), d)));
            let forged = Digest::sha256(b"a forged tag target");
            targets.push((name.to_string(), tag.to_string(), forged));
            targets.push((name.to_string(), "forged".to_string(), digest));
        }
        let me = self.id();
        let epoch = self.members.epoch();
        for (name, tag, digest) in targets.into_iter().take(FORGED_TAGS_PER_HEIGHT) {
            let statement = TagStatement {
                tag: Coordinates {
                    ecosystem: ECOSYSTEM_DOCKER,
                    name: &name,
                    version: &tag,
                },
                digest,
                epoch,
                checkpoint_size: log.final_size(),
                observer: me,
                observed_at: 0,
            };
            let vouch = statement.sign(&self.key).to_bytes();
            let attested = Entry::TagObservation(TagObservation {
                statement,
                attestations: SignatureList(&vouch),
            })
            .encode();
            let unattested = Entry::UnattestedTag(UnattestedTag {
                tag: statement.tag,
                digest,
                checkpoint_size: statement.checkpoint_size,
                observer: me,
                observed_at: 0,
            })
            .encode();
            self.misbehaved += 1;
            for entry in [attested, unattested] {
                self.broadcast(&MemberMessage::Submit { entry: &entry });
            }
        }
    }
}
