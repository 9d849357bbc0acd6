//! Member sets by epoch: who may sign checkpoints and attestations, and the quorum sizes.
//!
//! Epoch 0 comes from the genesis entry. Each `AddMember`/`RemoveMember` starts the next
//! epoch and is valid only with a quorum of signatures of the previous epoch's members
//! (docs/PROTOCOL.md §2, case 18). Fixed maxima, no allocator: the edge cache walks epochs too.
//!
//! **The quorum rule** is written once, here, and used by ordering, checkpoints, membership
//! changes and light clients: an epoch of n members tolerates f = ⌊(n−1)/3⌋ byzantine ones
//! ([`faults_for`]) and a quorum is q = ⌈(n+f+1)/2⌉ ([`quorum_for`]), the smallest size at
//! which any two quorums share at least f+1 members, so at least one honest member that
//! never signs two different roots for one size. q = 2f+1 only when n = 3f+1; at n = 5 it is
//! 4, where 2f+1 = 3 would let one double-voting member finalise two different logs. f is
//! derived from each epoch's size, never fixed at genesis: a network that grows from 4 to 10
//! members tolerates 3 faults and needs 7 cosignatures.

use core::fmt;

use crate::identity::{KeyId, PublicKey, Purpose, Signature};
use crate::tlog::checkpoint::{Checkpoint, Cosignature, SignedCheckpoint};
use crate::tlog::entry::{
    Commit, Genesis, MembershipChange, MembershipOp, SignatureList, TagObservation,
};

/// The most members an epoch may have.
pub const MAX_MEMBERS: usize = 64;

/// f for an epoch of `n` members: the byzantine members it tolerates, ⌊(n−1)/3⌋ (0 for n ≤ 3).
pub const fn faults_for(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// q for an epoch of `n` members: ⌈(n+f+1)/2⌉ with f = [`faults_for`]`(n)`. Any two sets of q
/// members share at least f+1 members (2q − n ≥ f+1), and the n−f honest ones alone are a
/// quorum (q ≤ n−f), so a quorum is both safe and reachable for every n ≥ 1. What ordering
/// decides on, what makes a checkpoint final and what a membership change needs.
pub const fn quorum_for(n: usize) -> usize {
    (n + faults_for(n) + 2) / 2
}

/// The members of one epoch and the fault bound f.
///
/// Keys are kept compressed with their ids (64 bytes a member, 4 KiB at most, so an edge
/// cache can afford the set) and decompressed only for the signatures actually checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSet {
    epoch: u64,
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
    /// No members (a change may not remove the last one).
    TooFewMembers,
    /// The genesis declares a fault bound other than ⌊(n−1)/3⌋ for its n members.
    WrongFaultBound,
    /// More than [`MAX_MEMBERS`].
    TooManyMembers,
    /// A key is listed twice, or a key that is not a curve point is listed.
    BadKeyList,
    /// The change does not start the next epoch.
    WrongEpoch,
    /// Added key already a member, or removed key not one.
    NoChange,
    /// Fewer than a quorum (q = ⌈(n+f+1)/2⌉) of valid signatures of distinct members of the previous epoch.
    NoQuorum,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MembershipError::TooFewMembers => "member set would be empty",
            MembershipError::WrongFaultBound => {
                "genesis fault bound is not (n-1)/3 for its member count"
            }
            MembershipError::TooManyMembers => "member set larger than the supported maximum",
            MembershipError::BadKeyList => "member keys are duplicated or invalid",
            MembershipError::WrongEpoch => "membership change does not start the next epoch",
            MembershipError::NoChange => "membership change changes nothing",
            MembershipError::NoQuorum => "membership change lacks a quorum of member signatures",
        })
    }
}

impl core::error::Error for MembershipError {}

impl MemberSet {
    /// No members: the state [`MemberSet::fill_from_genesis`] starts from.
    pub(crate) const EMPTY: MemberSet = MemberSet {
        epoch: 0,
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
        if self.keys.is_empty() {
            return Err(MembershipError::TooFewMembers);
        }
        // The field is kept in the encoding (entry 0 of existing logs) but decides nothing:
        // a genesis that claims another bound is refused rather than silently reinterpreted.
        if genesis.faults as usize != faults_for(self.keys.len()) {
            return Err(MembershipError::WrongFaultBound);
        }
        Ok(())
    }

    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// f, the number of byzantine members this epoch tolerates: [`faults_for`] its size.
    pub fn faults(&self) -> u32 {
        faults_for(self.keys.len()) as u32
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

    /// q = [`quorum_for`] this epoch's size: signatures that make a checkpoint final or a
    /// membership change valid.
    pub fn quorum(&self) -> usize {
        quorum_for(self.keys.len())
    }

    /// f+1: matching attestations that commit an artifact.
    pub fn commit_threshold(&self) -> usize {
        faults_for(self.keys.len()) + 1
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

    /// How many distinct members of the set validly attested `rebuild`'s statement.
    pub fn rebuild_attesters(&self, rebuild: &crate::tlog::rebuilt::RebuildCommit<'_>) -> usize {
        let statement = rebuild.statement.digest();
        self.count_signers(pairs(&rebuild.attestations), |key, signature| {
            key.verify(Purpose::RebuildAttestation, &statement, signature)
                .is_ok()
        })
    }

    /// How many distinct members validly signed `tag`'s statement, and whether its observer
    /// is one of them (hashed once).
    pub fn tag_attesters(&self, tag: &TagObservation<'_>) -> (usize, bool) {
        let statement = tag.statement.digest();
        let mut observer_signed = false;
        let count = self.count_signers(pairs(&tag.attestations), |key, signature| {
            let valid = key
                .verify(Purpose::TagObservation, &statement, signature)
                .is_ok();
            observer_signed |= valid && key.key_id() == tag.statement.observer;
            valid
        });
        (count, observer_signed)
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
        // f follows the new size (faults_for), so no change can leave more faults assumed
        // than the epoch tolerates; only an empty set is refused.
        match (op, position) {
            (MembershipOp::Add, None) => self
                .keys
                .push(Member::new(&change.key))
                .map_err(|_| MembershipError::TooManyMembers)?,
            (MembershipOp::Remove, Some(_)) if self.keys.len() <= 1 => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Any two quorums share an honest member, the honest members alone are a quorum, and no
    /// smaller size has the first property: for every epoch size the member set supports.
    #[test]
    fn any_two_quorums_intersect_in_an_honest_member() {
        for n in 1..=MAX_MEMBERS {
            let (f, q) = (faults_for(n), quorum_for(n));
            assert!(n > 3 * f, "n = {n} tolerates f = {f}");
            let shared = 2 * q - n;
            let honest_needed = f + 1;
            assert!(
                shared >= honest_needed,
                "n = {n}: two quorums of {q} share f+1 members"
            );
            assert!(
                q <= n - f,
                "n = {n}: the {} honest members are a quorum of {q}",
                n - f
            );
            assert!(
                2 * (q - 1) < n + f + 1,
                "n = {n}: {q} is the smallest such quorum"
            );
        }
        let table: [(usize, usize); 8] = [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (5, 4),
            (6, 4),
            (7, 5),
            (10, 7),
        ];
        for (n, q) in table {
            assert_eq!(quorum_for(n), q, "quorum of {n}");
        }
    }

    fn genesis_keys(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                crate::identity::SecretKey::from_seed([i as u8 + 1; 32])
                    .public()
                    .to_bytes()
            })
            .collect()
    }

    #[test]
    fn the_fault_bound_follows_the_member_count_not_the_genesis() {
        let keys = genesis_keys(5);
        let genesis = |faults| Genesis {
            origin: "test",
            faults,
            members: crate::tlog::entry::KeyList(&keys),
            created: 0,
        };
        let set = MemberSet::from_genesis(&genesis(1)).expect("n = 5, f = 1");
        assert_eq!(
            (set.faults(), set.quorum(), set.commit_threshold()),
            (1, 4, 2)
        );
        // A genesis that claims a weaker bound (f = 0: one signature would be final) is refused.
        assert_eq!(
            MemberSet::from_genesis(&genesis(0)),
            Err(MembershipError::WrongFaultBound)
        );
        assert_eq!(
            MemberSet::from_genesis(&genesis(2)),
            Err(MembershipError::WrongFaultBound)
        );
    }
}
