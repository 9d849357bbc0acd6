//! Member sets by epoch: who may sign checkpoints and attestations, and the quorum sizes.
//!
//! Epoch 0 comes from the genesis entry. Each `AddMember`/`RemoveMember` starts the next
//! epoch and is valid only with 2f+1 signatures of the previous epoch's members
//! (PROTOCOL.md §1, case 18). Fixed maxima, no allocator: the edge cache walks epochs too.

use core::fmt;

use crate::identity::{KeyId, PublicKey, Purpose, Signature};
use crate::tlog::checkpoint::{Checkpoint, Cosignature, SignedCheckpoint};
use crate::tlog::entry::{Commit, Genesis, MembershipChange, MembershipOp, SignatureList};

/// The most members an epoch may have.
pub const MAX_MEMBERS: usize = 64;

/// The members of one epoch and the fault bound f.
///
/// Keys are kept compressed with their ids (64 bytes a member, 4 KiB at most, so an edge
/// cache can afford the set) and decompressed only for the signatures actually checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSet {
    epoch: u64,
    faults: u32,
    keys: heapless::Vec<Member, MAX_MEMBERS>,
}

/// One member: its key id and compressed key (checked to be a curve point on entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    id: KeyId,
    key: [u8; 32],
}

impl Member {
    fn new(key: &PublicKey) -> Self {
        Member {
            id: key.key_id(),
            key: key.to_bytes(),
        }
    }

    fn public(&self) -> Option<PublicKey> {
        PublicKey::from_bytes(&self.key).ok()
    }
}

/// Why a member set or a change to it was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum MembershipError {
    /// No members, or fewer than 3f+1.
    TooFewMembers,
    /// More than [`MAX_MEMBERS`].
    TooManyMembers,
    /// A key is listed twice, or a key that is not a curve point is listed.
    BadKeyList,
    /// The change does not start the next epoch.
    WrongEpoch,
    /// Added key already a member, or removed key not one.
    NoChange,
    /// Fewer than 2f+1 valid signatures of distinct members of the previous epoch.
    NoQuorum,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembershipError::TooFewMembers => "member set smaller than 3f+1",
            MembershipError::TooManyMembers => "member set larger than the supported maximum",
            MembershipError::BadKeyList => "member keys are duplicated or invalid",
            MembershipError::WrongEpoch => "membership change does not start the next epoch",
            MembershipError::NoChange => "membership change changes nothing",
            MembershipError::NoQuorum => "membership change lacks 2f+1 member signatures",
        })
    }
}

impl core::error::Error for MembershipError {}

impl MemberSet {
    /// No members: the state [`MemberSet::fill_from_genesis`] starts from.
    pub(crate) const EMPTY: MemberSet = MemberSet {
        epoch: 0,
        faults: 0,
        keys: heapless::Vec::new(),
    };

    /// Epoch 0, from the genesis entry.
    pub fn from_genesis(genesis: &Genesis<'_>) -> Result<Self, MembershipError> {
        let mut set = MemberSet::EMPTY;
        set.fill_from_genesis(genesis)?;
        Ok(set)
    }

    /// Epoch 0 from the genesis entry, built in place (a device keeps the set in a static).
    pub(crate) fn fill_from_genesis(
        &mut self,
        genesis: &Genesis<'_>,
    ) -> Result<(), MembershipError> {
        self.epoch = 0;
        self.faults = genesis.faults;
        self.keys.clear();
        if genesis.members.len() > MAX_MEMBERS {
            return Err(MembershipError::TooManyMembers);
        }
        for key in genesis.members.iter() {
            let member = Member::new(&key);
            if self.keys.contains(&member) {
                return Err(MembershipError::BadKeyList);
            }
            self.keys
                .push(member)
                .map_err(|_| MembershipError::TooManyMembers)?;
        }
        if self.keys.len() != genesis.members.len() {
            return Err(MembershipError::BadKeyList);
        }
        self.check_size()
    }

    fn check_size(&self) -> Result<(), MembershipError> {
        let needed = 3 * u64::from(self.faults) + 1;
        if (self.keys.len() as u64) < needed {
            Err(MembershipError::TooFewMembers)
        } else {
            Ok(())
        }
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// f, the number of byzantine members tolerated.
    pub fn faults(&self) -> u32 {
        self.faults
    }

    /// How many members the epoch has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty (never, for a valid set).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The members' keys, decompressed.
    pub fn keys(&self) -> impl Iterator<Item = PublicKey> + '_ {
        self.keys.iter().filter_map(Member::public)
    }

    /// Whether `key` is a member.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.keys.iter().any(|m| m.key == key.to_bytes())
    }

    /// 2f+1: signatures that make a checkpoint final or a membership change valid.
    pub fn quorum(&self) -> usize {
        2 * self.faults as usize + 1
    }

    /// f+1: matching attestations that commit an artifact.
    pub fn commit_threshold(&self) -> usize {
        self.faults as usize + 1
    }

    /// The member with this key id, if any.
    pub fn find(&self, key_id: &KeyId) -> Option<PublicKey> {
        self.keys.iter().find(|m| m.id == *key_id)?.public()
    }

    /// How many distinct members produced a valid signature among `signatures`, where
    /// `valid(key, signature)` checks one. Unknown keys and repeats count nothing.
    pub fn count_signers<I>(
        &self,
        signatures: I,
        mut valid: impl FnMut(&PublicKey, &Signature) -> bool,
    ) -> usize
    where
        I: IntoIterator<Item = (KeyId, Signature)>,
    {
        let mut seen = [false; MAX_MEMBERS];
        let mut count = 0;
        for (key_id, signature) in signatures {
            let Some(i) = self.keys.iter().position(|m| m.id == key_id) else {
                continue;
            };
            if seen[i] {
                continue;
            }
            let Some(key) = self.keys[i].public() else {
                continue;
            };
            if valid(&key, &signature) {
                seen[i] = true;
                count += 1;
            }
        }
        count
    }

    /// How many distinct members validly cosigned `note` (the body is encoded once).
    pub fn checkpoint_signers(&self, note: &SignedCheckpoint) -> usize {
        self.cosigners(&note.checkpoint, note.cosignatures.iter().copied())
    }

    /// How many distinct members validly cosigned `checkpoint` among `cosignatures` (from a
    /// [`crate::tlog::checkpoint::NoteView`], read one at a time).
    pub fn cosigners(
        &self,
        checkpoint: &Checkpoint,
        cosignatures: impl IntoIterator<Item = Cosignature>,
    ) -> usize {
        let body = checkpoint.body();
        self.count_signers(
            cosignatures.into_iter().map(|c| (c.key_id, c.signature)),
            |key, signature| {
                key.verify(Purpose::Checkpoint, body.as_bytes(), signature)
                    .is_ok()
            },
        )
    }

    /// How many distinct members validly attested `commit`'s statement (hashed once).
    pub fn attesters(&self, commit: &Commit<'_>) -> usize {
        let statement = commit.statement.digest();
        self.count_signers(pairs(&commit.attestations), |key, signature| {
            key.verify(Purpose::Attestation, &statement, signature)
                .is_ok()
        })
    }

    /// The next epoch's member set, if `change` is a valid `op` for the log named `origin`.
    pub fn apply(
        &self,
        origin: &str,
        op: MembershipOp,
        change: &MembershipChange<'_>,
    ) -> Result<MemberSet, MembershipError> {
        let mut next = self.clone();
        next.apply_in_place(origin, op, change)?;
        Ok(next)
    }

    /// Moves this set to the next epoch if `change` is a valid `op` for the log named
    /// `origin`; on error the set is unchanged.
    pub fn apply_in_place(
        &mut self,
        origin: &str,
        op: MembershipOp,
        change: &MembershipChange<'_>,
    ) -> Result<(), MembershipError> {
        if Some(change.epoch) != self.epoch.checked_add(1) {
            return Err(MembershipError::WrongEpoch);
        }
        let message = change.message(origin, op);
        let signers = self.count_signers(pairs(&change.signatures), |key, sig| {
            key.verify(crate::identity::Purpose::Membership, &message, sig)
                .is_ok()
        });
        if signers < self.quorum() {
            return Err(MembershipError::NoQuorum);
        }
        let position = self
            .keys
            .iter()
            .position(|m| m.key == change.key.to_bytes());
        let needed = 3 * u64::from(self.faults) + 1;
        match (op, position) {
            (MembershipOp::Add, None) => self
                .keys
                .push(Member::new(&change.key))
                .map_err(|_| MembershipError::TooManyMembers)?,
            (MembershipOp::Remove, Some(_)) if (self.keys.len() as u64 - 1) < needed => {
                return Err(MembershipError::TooFewMembers);
            }
            (MembershipOp::Remove, Some(i)) => {
                self.keys.remove(i);
            }
            _ => return Err(MembershipError::NoChange),
        }
        self.epoch = change.epoch;
        Ok(())
    }
}

/// A signature list as (signer, signature) pairs for [`MemberSet::count_signers`].
pub fn pairs<'a>(list: &SignatureList<'a>) -> impl Iterator<Item = (KeyId, Signature)> + 'a {
    list.iter().map(|s| (s.signer, s.signature))
}
