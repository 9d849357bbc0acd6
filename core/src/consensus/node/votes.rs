//! The height's Tendermint instance: messages counted at their height (later ones held
//! within the sender's share), the batch validity rule it votes by, and its outputs carried
//! out (persist before a vote leaves, a precommit's cosignature, the decision's certificate).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::consensus::limits::{FUTURE_MESSAGES_PER_MEMBER, batch_time_ok};
use crate::consensus::ordering::{Message, Ordering, OrderingOutput, ValueId};
use crate::consensus::wire::{Batch, MemberMessage, Vote};
use crate::identity::KeyId;
use crate::tlog::checkpoint::SignedCheckpoint;
use crate::tlog::state::LogState;

use super::{MemberNode, NodeOutput, Now};

/// Whether `value` may be decided at `height`: a batch extending the final log (which must be
/// at `height`), timed no later than the skew allows, every entry valid by the log's batch
/// rules ([`LogState::check_batch`]); an empty batch (a heartbeat) only once half of
/// `refresh_secs` has passed since the last final checkpoint.
pub(super) fn batch_is_valid(
    log: &LogState,
    height: u64,
    value: &[u8],
    now_secs: u64,
    refresh_secs: u64,
) -> bool {
    let Ok(batch) = Batch::decode(value) else {
        return false;
    };
    height == log.consensus_height()
        && batch_time_ok(
            height,
            batch.head.timestamp,
            batch.entries.is_empty(),
            now_secs,
            refresh_secs,
        )
        && log.check_batch(&batch).is_ok()
}

impl MemberNode {
    /// Starts the height's first round: when there is something to order, or another member
    /// started.
    pub(super) fn start(&mut self, log: &LogState, now: Now) {
        if self.started {
            return;
        }
        let Some(ordering) = &mut self.ordering else {
            return;
        };
        self.started = true;
        let refresh = self.config.checkpoint_refresh_secs;
        ordering.start(now.mono, &|h, v| {
            batch_is_valid(log, h, v, now.wall_secs, refresh)
        });
        self.drain(log, now);
    }

    /// A checked message of member `from`: held when for a later height, counted at this one.
    pub(super) fn on_vote(
        &mut self,
        log: &LogState,
        now: Now,
        sender: KeyId,
        from: usize,
        message: Message,
    ) {
        let Some(height) = self.height else {
            return;
        };
        let (at, _) = message.height_round();
        if at > height {
            if self.future_budget.take(sender, FUTURE_MESSAGES_PER_MEMBER) {
                self.future.push((sender, from, message));
            }
            return;
        }
        if at < height || self.ordering.is_none() {
            return;
        }
        self.start(log, now);
        let refresh = self.config.checkpoint_refresh_secs;
        if let Some(ordering) = &mut self.ordering {
            ordering.handle_message(now.mono, from, message, &|h, v| {
                batch_is_valid(log, h, v, now.wall_secs, refresh)
            });
        }
        self.drain(log, now);
    }

    /// Carries out the ordering's outputs: persist before the vote leaves, sign a precommit's
    /// checkpoint, relay a lock's proof, and turn a decision into the final checkpoint.
    pub(super) fn drain(&mut self, log: &LogState, _now: Now) {
        let mut decided = None;
        while let Some(output) = self.ordering.as_mut().and_then(Ordering::poll_output) {
            match output {
                OrderingOutput::Persist { ticket, state } => {
                    self.outputs
                        .push_back(NodeOutput::Persist { ticket, state });
                }
                OrderingOutput::Broadcast(message) => {
                    let extra = self.split_extra(log, &message);
                    self.send_vote(message);
                    if let Some(extra) = extra {
                        self.send_vote(extra);
                    }
                }
                // A member behind catches up through log replication.
                OrderingOutput::SendDecision { .. } => {}
                OrderingOutput::RelayProof {
                    height,
                    round,
                    id,
                    voters,
                } => self.relay_proof(height, round, id, &voters),
                // The votes queued with it still leave: others may need this precommit.
                OrderingOutput::Decided { value, .. } => decided = Some(value),
            }
        }
        if let Some(value) = decided {
            self.on_decided(&value);
        }
    }

    /// Publishes again the sealed prevotes of `voters` for `id` at `height`, `round` (their
    /// senders' own envelopes, checked by every receiver as any member message), inside one
    /// [`MemberMessage::Relay`] this member seals anew: gossip drops the envelopes themselves
    /// as messages it has seen.
    fn relay_proof(&mut self, height: u64, round: u32, id: ValueId, voters: &[usize]) {
        let sealed: Vec<Vec<u8>> = voters
            .iter()
            .filter_map(|voter| {
                let sender = self.member_ids.get(*voter)?;
                self.prevotes.get(&(height, round, id, *sender)).cloned()
            })
            .collect();
        if sealed.is_empty() {
            return;
        }
        let prevotes = sealed.iter().map(Vec::as_slice).collect();
        self.broadcast(&MemberMessage::Relay { prevotes });
    }

    fn send_vote(&mut self, message: Message) {
        let vote_value;
        let vote = match message {
            Message::Proposal {
                height,
                round,
                value,
                valid_round,
            } => {
                vote_value = value;
                Vote::Proposal {
                    height,
                    round,
                    value: &vote_value,
                    valid_round,
                }
            }
            Message::Prevote { height, round, id } => Vote::Prevote { height, round, id },
            Message::Precommit { height, round, id } => {
                let signed = id.and_then(|id| {
                    let value = self.values.get(&id)?;
                    let head = Batch::decode(value).ok()?.head;
                    let checkpoint = head.checkpoint(&self.origin)?;
                    let cosignature = checkpoint.sign(&self.key);
                    self.cosignatures
                        .entry(id)
                        .or_insert_with(|| (head, BTreeMap::new()))
                        .1
                        .insert(cosignature.key_id, cosignature);
                    Some((head, cosignature.signature))
                });
                if id.is_some() && signed.is_none() {
                    // A precommit for a value this member never saw: Tendermint only
                    // precommits a value it has, so this cannot leave.
                    return;
                }
                Vote::Precommit {
                    height,
                    round,
                    value: signed,
                }
            }
        };
        self.broadcast(&MemberMessage::Vote(vote));
    }

    /// A decided batch: its checkpoint with the precommits' cosignatures (this member's
    /// included) is final; the caller stores it (the log checks the quorum and the entries
    /// again) and the node starts the next height on its next call.
    fn on_decided(&mut self, value: &[u8]) {
        let Ok(batch) = Batch::decode(value) else {
            return;
        };
        let Some(checkpoint) = batch.head.checkpoint(&self.origin) else {
            return;
        };
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        let mine = checkpoint.sign(&self.key);
        let _ = note.add(mine);
        if let Some((_, cosignatures)) = self.cosignatures.get(&batch.head.id()) {
            for cosignature in cosignatures.values() {
                if cosignature.key_id != mine.key_id {
                    let _ = note.add(*cosignature);
                }
            }
        }
        let entries: Vec<Vec<u8>> = batch.entries.iter().map(|e| e.to_vec()).collect();
        self.outputs.push_back(NodeOutput::Decided {
            checkpoint: Box::new(note),
            entries,
        });
        self.height = None;
    }
}
