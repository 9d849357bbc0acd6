//! What members send each other, and the batches they order: postcard messages in a signed
//! [`Envelope`] (so that a relay cannot forge a member's vote or attestation), and the
//! [`Batch`] a proposer proposes, identified by the checkpoint it produces so that a precommit
//! for a batch carries the member's cosignature of that checkpoint (PROTOCOL.md §3: the quorum of
//! precommit signatures are the checkpoint's cosignatures).
//!
//! Decoding never panics and never allocates more than the message's length; every size is
//! bounded by [`MAX_MESSAGE_LEN`].

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::digest::Hasher;
use crate::identity::{KeyId, Purpose, SecretKey, Signature};
use crate::members::MemberSet;
use crate::tlog::Hash;
use crate::tlog::checkpoint::{Checkpoint, Cosignature};
use crate::tlog::entry::MembershipOp;

use super::ordering::{Message, ValueId};

/// The largest member message: a proposal of a batch of entries, with room to spare.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// The most entries one batch may order.
pub const MAX_BATCH_ENTRIES: usize = 256;

/// The most entry bytes a proposer puts in one batch (the gossip layer carries proposals of
/// up to 256 KiB).
pub const MAX_BATCH_BYTES: usize = 192 * 1024;

/// Why a member message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_LEN`].
    TooLarge,
    /// Not a valid postcard encoding of the message.
    Malformed,
    /// The sender is not a member of the epoch.
    NotAMember,
    /// The envelope's signature does not verify.
    BadSignature,
    /// A precommit's checkpoint does not match its value id, or its cosignature is invalid.
    BadCosignature,
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            WireError::TooLarge => "member message too large",
            WireError::Malformed => "malformed member message",
            WireError::NotAMember => "sender is not a member of the epoch",
            WireError::BadSignature => "member message signature does not verify",
            WireError::BadCosignature => "precommit cosignature does not match its value",
        })
    }
}

impl core::error::Error for WireError {}

/// A signed member message as it travels (gossip relays it unchanged).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// The sender's key id.
    pub sender: KeyId,
    /// Distinguishes resends of the same message (the gossip layer drops exact duplicates).
    pub nonce: u64,
    /// The postcard encoding of a [`MemberMessage`].
    #[serde(borrow)]
    pub body: &'a [u8],
    /// The sender's signature over the nonce and body.
    pub signature: Signature,
}

fn envelope_digest(nonce: u64, body: &[u8]) -> [u8; 32] {
    let mut hasher = Hasher::new();
    hasher.update(&nonce.to_be_bytes());
    hasher.update(body);
    *hasher.finish().as_bytes()
}

impl<'a> Envelope<'a> {
    /// Signs `message` as `key` and encodes the envelope.
    pub fn seal(key: &SecretKey, nonce: u64, message: &MemberMessage<'_>) -> Vec<u8> {
        let body = postcard::to_allocvec(message).unwrap_or_default();
        let signature = key.sign(Purpose::PeerMessage, &envelope_digest(nonce, &body));
        postcard::to_allocvec(&Envelope {
            sender: key.public().key_id(),
            nonce,
            body: &body,
            signature,
        })
        .unwrap_or_default()
    }

    /// Decodes an envelope without checking it.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(WireError::TooLarge);
        }
        postcard::from_bytes(bytes).map_err(|_| WireError::Malformed)
    }

    /// Checks the signature against the sender's key among `members` and decodes the message.
    pub fn open(&self, members: &MemberSet) -> Result<MemberMessage<'a>, WireError> {
        let key = members.find(&self.sender).ok_or(WireError::NotAMember)?;
        key.verify(
            Purpose::PeerMessage,
            &envelope_digest(self.nonce, self.body),
            &self.signature,
        )
        .map_err(|_| WireError::BadSignature)?;
        postcard::from_bytes(self.body).map_err(|_| WireError::Malformed)
    }
}

impl MemberMessage<'_> {
    /// The rate budget this message is charged to.
    pub fn class(&self) -> crate::consensus::limits::MessageClass {
        match self {
            MemberMessage::Vote(_) | MemberMessage::Relay { .. } => {
                crate::consensus::limits::MessageClass::Vote
            }
            _ => crate::consensus::limits::MessageClass::Other,
        }
    }
}

/// A message between members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberMessage<'a> {
    /// An entry to order (a `BuildRequest`, `TagObservation`, `Commit`, `Dispute`,
    /// `Unverifiable` or membership change); every member keeps it until a batch orders it.
    Submit {
        /// The entry's bytes.
        #[serde(borrow)]
        entry: &'a [u8],
    },
    /// The sender's attestation: its signature over `statement` (a postcard `Statement`).
    Attestation {
        /// The attested statement.
        #[serde(borrow)]
        statement: &'a [u8],
        /// The sender's signature (purpose `Attestation`).
        signature: Signature,
    },
    /// A proposal, prevote or precommit.
    Vote(#[serde(borrow)] Vote<'a>),
    /// The sender's signature of a membership change (an operator ran `pyrsia authorize`).
    Endorse {
        /// Add or remove.
        op: MembershipOp,
        /// The epoch the change starts.
        epoch: u64,
        /// The key added or removed.
        key: [u8; 32],
        /// The sender's signature over the change's message.
        signature: Signature,
    },
    /// The sender's signature over a tag statement (a postcard `TagStatement`): a query when
    /// the sender is the statement's observer, else its word that the tag resolved to the
    /// statement's digest at its own upstream (PROTOCOL.md §2.1).
    TagVouch {
        /// The statement.
        #[serde(borrow)]
        statement: &'a [u8],
        /// The sender's signature (purpose `TagObservation`).
        signature: Signature,
    },
    /// Other members' sealed prevotes, relayed by the sender: the quorum of prevotes that made
    /// a value its valid value ([`OrderingOutput::RelayProof`]). Each is the voter's own
    /// envelope, opened and counted by every receiver as if it came from the voter. They
    /// travel inside a message the relayer seals anew (its own nonce) because the gossip layer
    /// drops a message it has seen: the voters' envelopes published again unchanged never
    /// leave the relayer, and a member that missed one of them would never learn of the lock.
    /// At most one prevote per member other than the relayer.
    ///
    /// [`OrderingOutput::RelayProof`]: super::ordering::OrderingOutput::RelayProof
    Relay {
        /// The voters' sealed prevotes.
        #[serde(borrow)]
        prevotes: Vec<&'a [u8]>,
    },
}

/// A Tendermint message, with a precommit's cosignature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote<'a> {
    /// See [`Message::Proposal`].
    Proposal {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The encoded [`Batch`].
        #[serde(borrow)]
        value: &'a [u8],
        /// The round the value got a quorum of prevotes in.
        valid_round: Option<u32>,
    },
    /// See [`Message::Prevote`].
    Prevote {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The value id, or nil.
        id: Option<ValueId>,
    },
    /// See [`Message::Precommit`]: for a value, the checkpoint it produces and the sender's
    /// cosignature of it.
    Precommit {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The value's checkpoint and the cosignature, or nil.
        value: Option<(CheckpointHead, Signature)>,
    },
}

impl Vote<'_> {
    /// The state machine's message, after [`Vote::check_cosignature`].
    pub fn to_message(&self) -> Message {
        match *self {
            Vote::Proposal {
                height,
                round,
                value,
                valid_round,
            } => Message::Proposal {
                height,
                round,
                value: value.to_vec(),
                valid_round,
            },
            Vote::Prevote { height, round, id } => Message::Prevote { height, round, id },
            Vote::Precommit {
                height,
                round,
                value,
            } => Message::Precommit {
                height,
                round,
                id: value.map(|(head, _)| head.id()),
            },
        }
    }

    /// For a precommit of a value: the sender's cosignature of the value's checkpoint of
    /// `origin`, checked against the sender's key among `members`.
    pub fn check_cosignature(
        &self,
        origin: &str,
        sender: &KeyId,
        members: &MemberSet,
    ) -> Result<Option<(CheckpointHead, Cosignature)>, WireError> {
        let Vote::Precommit {
            value: Some((head, signature)),
            ..
        } = self
        else {
            return Ok(None);
        };
        let key = members.find(sender).ok_or(WireError::NotAMember)?;
        let checkpoint = head.checkpoint(origin).ok_or(WireError::BadCosignature)?;
        let cosignature = Cosignature {
            key_id: *sender,
            signature: *signature,
        };
        if checkpoint.verify(&key, &cosignature) {
            Ok(Some((*head, cosignature)))
        } else {
            Err(WireError::BadCosignature)
        }
    }
}

/// The checkpoint a batch produces, without the log's name: what a batch is identified by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointHead {
    /// Tree size after the batch.
    pub size: u64,
    /// Root after the batch.
    pub root: Hash,
    /// The proposer's signing time (Unix seconds).
    pub timestamp: u64,
}

impl CheckpointHead {
    /// The value id of every batch producing this checkpoint.
    pub fn id(&self) -> ValueId {
        let mut hasher = Hasher::new();
        hasher.update(b"pyrsia/batch/v1\0");
        hasher.update(&self.size.to_be_bytes());
        hasher.update(&self.root);
        hasher.update(&self.timestamp.to_be_bytes());
        *hasher.finish().as_bytes()
    }

    /// The checkpoint of the log `origin` (`None` for an invalid origin).
    pub fn checkpoint(&self, origin: &str) -> Option<Checkpoint> {
        Checkpoint::new(origin, self.size, self.root, self.timestamp).ok()
    }
}

/// A batch of entries extending the last final checkpoint, and the checkpoint it produces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch<'a> {
    /// The checkpoint after the batch.
    pub head: CheckpointHead,
    /// The entries, in order.
    #[serde(borrow)]
    pub entries: Vec<&'a [u8]>,
}

impl<'a> Batch<'a> {
    /// The batch's bytes (the ordering's value).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a batch of at most [`MAX_BATCH_ENTRIES`] entries.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(WireError::TooLarge);
        }
        let batch: Batch<'a> = postcard::from_bytes(bytes).map_err(|_| WireError::Malformed)?;
        if batch.entries.len() > MAX_BATCH_ENTRIES {
            return Err(WireError::TooLarge);
        }
        Ok(batch)
    }

    /// The value id of an encoded batch: its checkpoint's id (a value that does not decode
    /// gets an id no checkpoint has, and is never valid).
    pub fn id(bytes: &[u8]) -> ValueId {
        match Batch::decode(bytes) {
            Ok(batch) => batch.head.id(),
            Err(_) => super::ordering::sha256_id(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::entry::{Entry, Genesis, KeyList};

    fn members(keys: &[SecretKey]) -> MemberSet {
        let list: Vec<u8> = keys.iter().flat_map(|k| k.public().to_bytes()).collect();
        let genesis = Entry::Genesis(Genesis {
            origin: "test/log",
            faults: 1,
            members: KeyList(&list),
            created: 0,
        })
        .encode();
        let Ok(Entry::Genesis(genesis)) = Entry::decode(&genesis) else {
            panic!("genesis");
        };
        MemberSet::from_genesis(&genesis).unwrap()
    }

    #[test]
    fn envelopes_verify_only_for_members_and_untampered_bodies() {
        let keys: Vec<SecretKey> = (1..=4).map(|i| SecretKey::from_seed([i; 32])).collect();
        let set = members(&keys);
        let message = MemberMessage::Submit { entry: b"entry" };
        let sealed = Envelope::seal(&keys[0], 7, &message);
        let envelope = Envelope::decode(&sealed).unwrap();
        assert_eq!(envelope.open(&set).unwrap(), message);

        let outsider = Envelope::seal(&SecretKey::from_seed([9; 32]), 7, &message);
        assert_eq!(
            Envelope::decode(&outsider).unwrap().open(&set),
            Err(WireError::NotAMember)
        );
        let mut forged = envelope.clone();
        forged.nonce = 8;
        assert_eq!(forged.open(&set), Err(WireError::BadSignature));
        assert_eq!(
            Envelope::decode(&sealed[..sealed.len() - 3]),
            Err(WireError::Malformed)
        );
        assert_eq!(
            Envelope::decode(&vec![0; MAX_MESSAGE_LEN + 1]),
            Err(WireError::TooLarge)
        );
    }

    #[test]
    fn a_precommit_carries_a_cosignature_of_its_batch_checkpoint() {
        let keys: Vec<SecretKey> = (1..=4).map(|i| SecretKey::from_seed([i; 32])).collect();
        let set = members(&keys);
        let head = CheckpointHead {
            size: 3,
            root: [5; 32],
            timestamp: 100,
        };
        let batch = Batch {
            head,
            entries: alloc::vec![b"a".as_slice()],
        }
        .encode();
        assert_eq!(Batch::id(&batch), head.id());
        let checkpoint = head.checkpoint("test/log").unwrap();
        let signature = checkpoint.sign(&keys[1]).signature;
        let vote = Vote::Precommit {
            height: 2,
            round: 0,
            value: Some((head, signature)),
        };
        let sender = keys[1].public().key_id();
        let (_, cosignature) = vote
            .check_cosignature("test/log", &sender, &set)
            .unwrap()
            .unwrap();
        assert!(checkpoint.verify(&keys[1].public(), &cosignature));
        assert_eq!(
            vote.to_message(),
            Message::Precommit {
                height: 2,
                round: 0,
                id: Some(head.id())
            }
        );
        // Another member's key, another log, another head: refused.
        let other = keys[2].public().key_id();
        assert_eq!(
            vote.check_cosignature("test/log", &other, &set),
            Err(WireError::BadCosignature)
        );
        assert_eq!(
            vote.check_cosignature("other/log", &sender, &set),
            Err(WireError::BadCosignature)
        );
        assert_eq!(
            Batch::id(b"garbage"),
            super::super::ordering::sha256_id(b"garbage")
        );
    }
}
