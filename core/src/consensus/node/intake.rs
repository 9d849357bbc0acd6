//! What a member does with a sealed message from another member: open it (a member of the
//! epoch signed it), then hand it to the part it is for. A message that is refused says why
//! ([`Rejection`]); the network layer decides what a peer's invalid data costs it.

use alloc::collections::BTreeMap;

use crate::consensus::limits::{VALUES_PER_MEMBER, height_plausible};
use crate::consensus::ordering::ValueId;
use crate::consensus::wire::{Batch, Envelope, MemberMessage, Vote, WireError};
use crate::identity::KeyId;
use crate::tlog::state::LogState;

use super::{MemberNode, Now, pool};

/// Why a member message changed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The envelope does not decode, is not signed by a member, or its body is malformed.
    Wire(WireError),
    /// A vote for a height no honest clock can be at yet.
    ImplausibleHeight,
    /// A precommit whose cosignature does not verify.
    BadCosignature,
    /// An entry that is not valid on the log, or is ordered already.
    UnwantedEntry,
    /// The sender used up its share of this member's tables (or mempool).
    OverBudget,
    /// An endorsement that does not verify or is not for the next epoch.
    BadEndorsement,
    /// A tag vouch whose statement is malformed, of another epoch or ecosystem, or not signed
    /// by its sender.
    BadTagVouch,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejection::Wire(e) => write!(f, "{e}"),
            Rejection::ImplausibleHeight => f.write_str("vote for an implausible height"),
            Rejection::BadCosignature => f.write_str("precommit with a bad cosignature"),
            Rejection::UnwantedEntry => f.write_str("entry invalid or ordered already"),
            Rejection::OverBudget => f.write_str("sender over its share"),
            Rejection::BadEndorsement => {
                f.write_str("endorsement invalid or not for the next epoch")
            }
            Rejection::BadTagVouch => {
                f.write_str("tag vouch malformed, of another epoch, or badly signed")
            }
        }
    }
}

impl MemberNode {
    /// A sealed member message from the network (any member's, relayed or not).
    pub fn handle_message(
        &mut self,
        log: &LogState,
        now: Now,
        bytes: &[u8],
    ) -> Result<(), Rejection> {
        self.follow_log(log, now);
        let envelope = Envelope::decode(bytes).map_err(Rejection::Wire)?;
        let sender = envelope.sender;
        let message = envelope.open(&self.members).map_err(Rejection::Wire)?;
        match message {
            MemberMessage::Submit { entry } => {
                if !pool::still_wanted(log, entry) {
                    return Err(Rejection::UnwantedEntry);
                }
                if !self.mempool.add(sender, entry.to_vec()) {
                    return Err(Rejection::OverBudget);
                }
                self.mempool_grew(log, now);
                Ok(())
            }
            MemberMessage::Attestation {
                statement,
                signature,
            } => {
                self.on_attestation(log, now, sender, statement.to_vec(), signature);
                Ok(())
            }
            MemberMessage::Vote(vote) => self.on_sealed_vote(log, now, sender, &vote, bytes),
            MemberMessage::Relay { prevotes } => self.on_relay(log, now, &prevotes),
            MemberMessage::Endorse {
                op,
                epoch,
                key,
                signature,
            } => self.on_endorsement(log, now, sender, op, epoch, key, signature),
            MemberMessage::TagVouch {
                statement,
                signature,
            } => self.on_tag_vouch(log, now, sender, statement, signature),
        }
    }

    /// A vote `sender` sealed as `bytes`: a prevote for a value is kept for relaying, the vote
    /// is counted, and one that counted is watched for equivocation.
    fn on_sealed_vote(
        &mut self,
        log: &LogState,
        now: Now,
        sender: KeyId,
        vote: &Vote<'_>,
        bytes: &[u8],
    ) -> Result<(), Rejection> {
        if let Vote::Prevote {
            height,
            round,
            id: Some(id),
        } = *vote
        {
            self.keep_prevote(now, sender, (height, round, id), bytes);
        }
        let counted = self.on_vote_message(log, now, sender, vote);
        if counted.is_ok() {
            self.watch_equivocation(sender, vote, bytes);
        }
        counted
    }

    /// Prevotes another member relayed ([`MemberMessage::Relay`]): each is opened as its
    /// voter's message and counted as if the voter had sent it. More prevotes than there are
    /// other members, or anything but a signed prevote of a member inside, is the relayer's
    /// fault (an honest one relays only prevotes it opened); the valid ones still count.
    fn on_relay(&mut self, log: &LogState, now: Now, prevotes: &[&[u8]]) -> Result<(), Rejection> {
        if prevotes.len() >= self.members.len().max(1) {
            return Err(Rejection::Wire(WireError::Malformed));
        }
        let mut result = Ok(());
        for &sealed in prevotes {
            let opened = Envelope::decode(sealed).and_then(|envelope| {
                let message = envelope.open(&self.members)?;
                Ok((envelope.sender, message))
            });
            let counted = match opened {
                Ok((voter, MemberMessage::Vote(vote @ Vote::Prevote { .. }))) => {
                    self.on_sealed_vote(log, now, voter, &vote, sealed)
                }
                Ok(_) => Err(Rejection::Wire(WireError::Malformed)),
                Err(e) => Err(Rejection::Wire(e)),
            };
            if result.is_ok() {
                result = counted;
            }
        }
        result
    }

    /// Keeps the sealed prevote of `sender` for `(height, round, id)`, within the sender's
    /// budget, so that it can be relayed as part of a lock's proof.
    fn keep_prevote(&mut self, now: Now, sender: KeyId, at: (u64, u32, ValueId), bytes: &[u8]) {
        let key = (at.0, at.1, at.2, sender);
        if at.0 >= self.height.unwrap_or(0)
            && height_plausible(at.0, now.wall_secs)
            && !self.prevotes.contains_key(&key)
            && self.prevote_budget.take(sender, VALUES_PER_MEMBER)
        {
            self.prevotes.insert(key, bytes.to_vec());
        }
    }

    /// A vote: its height is plausible, a precommit's cosignature verifies (kept for the
    /// certificate), a proposal's value is kept (both within the sender's share); then the
    /// height's Tendermint instance counts it.
    fn on_vote_message(
        &mut self,
        log: &LogState,
        now: Now,
        sender: KeyId,
        vote: &Vote<'_>,
    ) -> Result<(), Rejection> {
        let Some(from) = self.member_ids.iter().position(|id| *id == sender) else {
            return Err(Rejection::Wire(WireError::NotAMember));
        };
        let (height, _) = vote.to_message().height_round();
        if !height_plausible(height, now.wall_secs) {
            return Err(Rejection::ImplausibleHeight);
        }
        match vote.check_cosignature(&self.origin, &sender, &self.members) {
            Ok(Some((head, cosignature))) => {
                let known = self.cosignatures.contains_key(&head.id());
                if height_plausible(head.timestamp, now.wall_secs)
                    && (known || self.value_budget.take(sender, VALUES_PER_MEMBER))
                {
                    self.cosignatures
                        .entry(head.id())
                        .or_insert_with(|| (head, BTreeMap::new()))
                        .1
                        .insert(sender, cosignature);
                }
            }
            Ok(None) => {}
            Err(_) => return Err(Rejection::BadCosignature),
        }
        if let Vote::Proposal { value, .. } = vote {
            let id = Batch::id(value);
            let plausible = Batch::decode(value)
                .is_ok_and(|b| height_plausible(b.head.timestamp, now.wall_secs));
            if plausible
                && !self.values.contains_key(&id)
                && self.value_budget.take(sender, VALUES_PER_MEMBER)
            {
                self.values.insert(id, value.to_vec());
            }
        }
        self.on_vote(log, now, sender, from, vote.to_message());
        Ok(())
    }
}
