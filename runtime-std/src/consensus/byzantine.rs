//! Test-only misbehaviour of a member (`--test-byzantine`), so that end-to-end tests can
//! attack real member processes: the vote-splitter equivocates in every round it proposes,
//! the flooder sends junk at full rate. Nothing here runs unless a test switches it on.

use pyrsia_core::consensus::ordering::{Message, ValueId};
use pyrsia_core::consensus::wire::{Batch, CheckpointHead, MemberMessage, Vote};
use pyrsia_core::digest::Digest;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::tlog::entry::{
    BuildRequest, Coordinates, DOCKER_FETCH_V1, ECOSYSTEM_DOCKER, Entry, MembershipChange,
    MembershipOp, SignatureList,
};

use super::Byzantine;
use super::driver::Driver;

/// Junk messages a flooder sends each time its thread wakes (every few milliseconds).
const FLOOD_BURST: u64 = 4;

impl Driver {
    /// The vote-splitter's second message for an own `message`: a twin proposal (the same
    /// entries under a checkpoint one second later, so another value), or the same vote for
    /// the twin of the value voted for. `None` when not splitting or there is no twin.
    pub(super) fn split_extra(&mut self, message: &Message) -> Option<Message> {
        if self.config.byzantine != Some(Byzantine::SplitVotes) {
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
                let head = self
                    .log
                    .batch_head(&batch.entries, batch.head.timestamp + 1)
                    .ok()?;
                let twin = Batch {
                    head,
                    entries: batch.entries.clone(),
                }
                .encode();
                self.twins.insert(batch.head.id(), head.id());
                self.values.insert(head.id(), twin.clone());
                tracing::warn!(
                    height,
                    round,
                    "TEST BYZANTINE MEMBER: proposing two batches"
                );
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
    pub(super) fn flood(&mut self) {
        let height = self.height().unwrap_or(0);
        for _ in 0..FLOOD_BURST {
            let n = self.next_nonce();
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
            let messages = [
                MemberMessage::Vote(Vote::Proposal {
                    height: u64::MAX - n,
                    round: 0,
                    value: &value,
                    valid_round: None,
                }),
                MemberMessage::Vote(Vote::Prevote {
                    height,
                    round: (n % 10_000) as u32,
                    id: Some(junk_id),
                }),
            ];
            for message in &messages {
                self.broadcast(message);
            }
            if let Some(checkpoint) = head.checkpoint(&self.origin()) {
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
                requester: self.my_id(),
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
            let signed = change.sign(&self.origin(), MembershipOp::Add, &self.key);
            self.broadcast(&MemberMessage::Endorse {
                op: MembershipOp::Add,
                epoch,
                key: key.to_bytes(),
                signature: signed.signature,
            });
        }
    }
}
