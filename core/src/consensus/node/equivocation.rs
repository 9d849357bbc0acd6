//! Evidence of equivocation (PROTOCOL case 8): a member that sends two different prevotes,
//! or two different precommits, for one height and round. Honest members vote once per step;
//! two precommits for different values also cosign two checkpoints of one height. Votes for
//! several values still count (ordering's liveness needs them, §3.1); this keeps the proof.
//! The first vote of each member, height, round and step is remembered for the current
//! height only, within each member's share; a second one that differs makes one `Evidence`
//! output holding both sealed messages, which anyone can check against the member's key.

use alloc::vec::Vec;

use crate::consensus::limits::VALUES_PER_MEMBER;
use crate::consensus::ordering::ValueId;
use crate::consensus::wire::Vote;
use crate::identity::KeyId;

use super::{EvidenceKind, MemberNode, NodeOutput};

/// A vote's step: what a member sends once per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Prevote,
    Precommit,
}

/// What a step voted for: a value, or nil.
type Choice = Option<ValueId>;

/// Whose vote, in which round and step.
pub(super) type VoteSlot = (KeyId, u32, Step);

/// The first vote seen in a slot: what it chose, and the sealed message.
pub(super) type FirstVotes = alloc::collections::BTreeMap<VoteSlot, (Choice, Vec<u8>)>;

/// The key a proof is kept under: `equivocation/` then the member, height, round and step.
fn evidence_key(sender: &KeyId, height: u64, round: u32, step: Step) -> Vec<u8> {
    let mut key = b"equivocation/".to_vec();
    key.extend_from_slice(&sender.0);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&round.to_be_bytes());
    key.push(step as u8);
    key
}

impl MemberNode {
    /// Looks at a sealed vote (`bytes`) of `sender` for the current height: the first of its
    /// step and round is remembered; a later one for something else is evidence.
    pub(super) fn watch_equivocation(&mut self, sender: KeyId, vote: &Vote<'_>, bytes: &[u8]) {
        let (height, round, step, choice): (u64, u32, Step, Choice) = match vote {
            Vote::Prevote { height, round, id } => (*height, *round, Step::Prevote, *id),
            Vote::Precommit {
                height,
                round,
                value,
            } => (
                *height,
                *round,
                Step::Precommit,
                value.map(|(head, _)| head.id()),
            ),
            Vote::Proposal { .. } => return,
        };
        if Some(height) != self.height {
            return;
        }
        let key = (sender, round, step);
        match self.first_votes.get(&key) {
            Some((first, _)) if *first == choice => {}
            Some((_, first_bytes)) => {
                if self.equivocated.insert(key) {
                    // Both sealed messages, a postcard pair of byte strings.
                    let sealed = [first_bytes.as_slice(), bytes];
                    let proof = postcard::to_allocvec(&sealed).unwrap_or_default();
                    self.outputs.push_back(NodeOutput::Evidence {
                        kind: EvidenceKind::Equivocation,
                        key: evidence_key(&sender, height, round, step),
                        bytes: proof,
                    });
                }
            }
            None => {
                if self.vote_budget.take(sender, 2 * VALUES_PER_MEMBER) {
                    self.first_votes.insert(key, (choice, bytes.to_vec()));
                }
            }
        }
    }
}
