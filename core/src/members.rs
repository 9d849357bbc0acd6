//! Member sets by epoch: who may sign checkpoints and attestations, and the quorum sizes.
//!
//! Epoch 0 comes from the genesis entry. Each `AddMember`/`RemoveMember` starts the next
//! epoch and is valid only with 2f+1 signatures of the previous epoch's members
//! (PROTOCOL.md §1, case 18). Fixed maxima, no allocator: the edge cache walks epochs too.

use core::fmt;

use crate::identity::{KeyId, PublicKey, Purpose, Signature};
use crate::tlog::checkpoint::SignedCheckpoint;
use crate::tlog::entry::{Commit, Genesis, MembershipChange, MembershipOp, SignatureList};

/// The most members an epoch may have.
pub const MAX_MEMBERS: usize = 64;

/// The members of one epoch and the fault bound f.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSet {
    epoch: u64,
    faults: u32,
    keys: heapless::Vec<PublicKey, MAX_MEMBERS>,
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
    /// Epoch 0, from the genesis entry.
    pub fn from_genesis(genesis: &Genesis<'_>) -> Result<Self, MembershipError> {
        if genesis.members.len() > MAX_MEMBERS {
            return Err(MembershipError::TooManyMembers);
        }
        let mut keys = heapless::Vec::new();
        for key in genesis.members.iter() {
            if keys.contains(&key) {
                return Err(MembershipError::BadKeyList);
            }
            keys.push(key)
                .map_err(|_| MembershipError::TooManyMembers)?;
        }
        if keys.len() != genesis.members.len() {
            return Err(MembershipError::BadKeyList);
        }
        let set = MemberSet {
            epoch: 0,
            faults: genesis.faults,
            keys,
        };
        set.check_size()?;
        Ok(set)
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

    /// The members' keys.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
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
    pub fn find(&self, key_id: &KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id() == *key_id)
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
            let Some(i) = self.keys.iter().position(|k| k.key_id() == key_id) else {
                continue;
            };
            if !seen[i] && valid(&self.keys[i], &signature) {
                seen[i] = true;
                count += 1;
            }
        }
        count
    }

    /// How many distinct members validly cosigned `note` (the body is encoded once).
    pub fn checkpoint_signers(&self, note: &SignedCheckpoint) -> usize {
        let body = note.checkpoint.body();
        self.count_signers(
            note.cosignatures.iter().map(|c| (c.key_id, c.signature)),
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
        let mut next = MemberSet {
            epoch: change.epoch,
            faults: self.faults,
            keys: self.keys.clone(),
        };
        let position = next.keys.iter().position(|k| *k == change.key);
        match (op, position) {
            (MembershipOp::Add, None) => next
                .keys
                .push(change.key)
                .map_err(|_| MembershipError::TooManyMembers)?,
            (MembershipOp::Remove, Some(i)) => {
                next.keys.remove(i);
            }
            _ => return Err(MembershipError::NoChange),
        }
        next.check_size()?;
        Ok(next)
    }
}

/// A signature list as (signer, signature) pairs for [`MemberSet::count_signers`].
pub fn pairs<'a>(list: &SignatureList<'a>) -> impl Iterator<Item = (KeyId, Signature)> + 'a {
    list.iter().map(|s| (s.signer, s.signature))
}
