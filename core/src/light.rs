//! The light-client check (PROTOCOL.md §4), the one every verifier runs: `pyrsia verify`,
//! mirrors in verified mode, the edge cache. It trusts only the genesis entry (its keys,
//! fault bound and log name) and proceeds:
//!
//! 1. membership epochs from genesis, each change signed by a quorum of the previous epoch;
//! 2. a checkpoint with a quorum (q = ⌈(n+f+1)/2⌉) of valid signatures of distinct current members (unknown keys count
//!    nothing); the first one must contain the genesis entry at index 0;
//! 3. no rollback (a smaller tree, or another root at the same size), a consistency proof from
//!    the last trusted checkpoint, and freshness against the caller's clock;
//! 4. an inclusion proof of the `Commit` (or the attested `TagObservation`) entry in that checkpoint;
//! 5. the artifact's digest among the committed outputs; the caller hashes the bytes while
//!    streaming them ([`crate::digest::Verifier`]) and compares.
//!
//! No allocator, no clock: `now` arrives as Unix seconds, proofs as slices.

use core::fmt;

use crate::digest::Digest;
use crate::members::{MemberSet, MembershipError};
use crate::tlog::checkpoint::{Checkpoint, MAX_ORIGIN_LEN, NoteView, SignedCheckpoint};
use crate::tlog::entry::{Entry, EntryError, MembershipOp};
use crate::tlog::{Hash, ProofError, leaf_hash, verify_consistency, verify_inclusion};

/// How old a checkpoint may be (PROTOCOL.md §4 step 3), in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Policy {
    /// T_fresh: online, an older checkpoint is refused (it may be a frozen view).
    pub fresh_for: u64,
    /// T_stale: offline, content under a checkpoint this old is still served, flagged stale.
    pub stale_for: u64,
    /// How far in the future a timestamp may be (clock skew between signer and verifier).
    pub max_skew: u64,
}

impl Default for Policy {
    /// One day fresh, thirty days stale, five minutes of skew. Members re-sign their latest
    /// checkpoint hourly, so an honest log is never a day old.
    fn default() -> Self {
        Policy {
            fresh_for: 24 * 3600,
            stale_for: 30 * 24 * 3600,
            max_skew: 300,
        }
    }
}

/// Whether the verifier can reach the network right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Connectivity {
    /// A checkpoint older than T_fresh is refused.
    Online,
    /// A checkpoint older than T_fresh but within T_stale is accepted as stale.
    Offline,
}

/// How current an accepted checkpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Freshness {
    /// Within T_fresh.
    Fresh,
    /// Older than T_fresh, accepted offline: serve, but flag it.
    Stale,
}

/// The checkpoint the client trusts now; persist it to resist rollback across restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Trusted {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// Newest signing time seen for this tree (Unix seconds).
    pub timestamp: u64,
}

/// A checkpoint that passed the light-client check, not trusted yet: the proof of the check
/// that [`LightClient::trust`] takes (only the check can make one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Checked {
    size: u64,
    root: Hash,
    timestamp: u64,
    freshness: Freshness,
}

impl Checked {
    /// The checkpoint as it will be trusted.
    pub fn trusted(&self) -> Trusted {
        Trusted {
            size: self.size,
            root: self.root,
            timestamp: self.timestamp,
        }
    }

    /// How current it is.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }
}

/// What the check refused, and at which step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LightError {
    /// The genesis bytes are not a genesis entry.
    NotGenesis,
    /// The genesis or a membership entry does not decode.
    Entry(EntryError),
    /// The genesis member set or a membership change is invalid.
    Membership(MembershipError),
    /// The checkpoint is for another log.
    WrongOrigin,
    /// Fewer than a quorum (q = ⌈(n+f+1)/2⌉) of valid signatures of distinct current members.
    NoQuorum {
        /// Valid member signatures found.
        have: u8,
        /// Signatures needed.
        need: u8,
    },
    /// The checkpoint's tree is smaller than the trusted one.
    Rollback,
    /// Same size as the trusted checkpoint with another root: the log forked. Keep both notes.
    Fork,
    /// The consistency proof from the trusted checkpoint does not hold.
    Consistency(ProofError),
    /// The first checkpoint does not contain the genesis entry at index 0.
    GenesisNotIncluded(ProofError),
    /// Older than the policy allows.
    TooOld,
    /// Signed further in the future than the allowed skew.
    FromFuture,
    /// No checkpoint accepted yet.
    NoCheckpoint,
    /// The entry's inclusion proof does not hold in the trusted checkpoint.
    Inclusion(ProofError),
    /// The included entry is not a commit.
    NotACommit,
    /// The entry is not a rebuild verdict (`Rebuilt`) of an artifact with that digest.
    NotARebuild,
    /// The commit does not list the digest.
    NotCommitted,
    /// The commit carries fewer than f+1 valid attestations of distinct members (or the tag
    /// observation fewer than f+1 vouches with its observer's).
    TooFewAttestations,
    /// The included entry is not an attested observation of the tag asked about.
    NotATagObservation,
}

impl fmt::Display for LightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LightError::NotGenesis => f.write_str("genesis file is not a genesis entry"),
            LightError::Entry(e) => write!(f, "log entry: {e}"),
            LightError::Membership(e) => write!(f, "membership: {e}"),
            LightError::WrongOrigin => f.write_str("checkpoint is for another log"),
            LightError::NoQuorum { have, need } => write!(
                f,
                "checkpoint has {have} valid member signatures, {need} needed"
            ),
            LightError::Rollback => f.write_str("checkpoint is older than the trusted one"),
            LightError::Fork => f.write_str("checkpoint conflicts with the trusted one (fork)"),
            LightError::Consistency(e) => write!(f, "consistency proof: {e}"),
            LightError::GenesisNotIncluded(e) => write!(f, "genesis inclusion proof: {e}"),
            LightError::TooOld => f.write_str("checkpoint is too old"),
            LightError::FromFuture => f.write_str("checkpoint is signed in the future"),
            LightError::NoCheckpoint => f.write_str("no trusted checkpoint yet"),
            LightError::Inclusion(e) => write!(f, "inclusion proof: {e}"),
            LightError::NotACommit => f.write_str("entry is not a commit"),
            LightError::NotARebuild => {
                f.write_str("entry is not a rebuild verdict of an artifact with that digest")
            }
            LightError::NotCommitted => f.write_str("digest is not among the committed outputs"),
            LightError::TooFewAttestations => {
                f.write_str("entry carries fewer than f+1 valid attestations")
            }
            LightError::NotATagObservation => {
                f.write_str("entry is not an attested observation of that tag")
            }
        }
    }
}

impl core::error::Error for LightError {}

/// A verifier's trust state: the genesis, the current member epoch, the trusted checkpoint.
#[derive(Clone, Debug)]
pub struct LightClient {
    origin: heapless::String<MAX_ORIGIN_LEN>,
    genesis_leaf: Hash,
    members: MemberSet,
    trusted: Option<Trusted>,
    policy: Policy,
}

impl LightClient {
    /// Trust rooted in the genesis entry's bytes (the genesis file).
    pub fn new(genesis: &[u8], policy: Policy) -> Result<Self, LightError> {
        let mut slot = None;
        Self::init_in(&mut slot, genesis, policy)?;
        slot.ok_or(LightError::NotGenesis)
    }

    /// [`LightClient::new`] built in place in `slot` (a device's `static`): the member set
    /// (4 KiB at most) never travels through the stack.
    pub fn init_in<'s>(
        slot: &'s mut Option<Self>,
        genesis: &[u8],
        policy: Policy,
    ) -> Result<&'s mut Self, LightError> {
        let Entry::Genesis(g) = Entry::decode(genesis).map_err(LightError::Entry)? else {
            return Err(LightError::NotGenesis);
        };
        let origin = heapless::String::try_from(g.origin).map_err(|_| LightError::WrongOrigin)?;
        let filled = slot
            .insert(LightClient {
                origin,
                genesis_leaf: leaf_hash(genesis),
                members: MemberSet::EMPTY,
                trusted: None,
                policy,
            })
            .members
            .fill_from_genesis(&g);
        if let Err(e) = filled {
            *slot = None;
            return Err(LightError::Membership(e));
        }
        slot.as_mut().ok_or(LightError::NotGenesis)
    }

    /// Continues from a checkpoint trusted earlier (persisted by the caller).
    pub fn with_trusted(mut self, trusted: Trusted) -> Self {
        self.trusted = Some(trusted);
        self
    }

    /// The log's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The current member epoch.
    pub fn members(&self) -> &MemberSet {
        &self.members
    }

    /// The checkpoint trusted now.
    pub fn trusted(&self) -> Option<&Trusted> {
        self.trusted.as_ref()
    }

    /// Step 1: moves to the next epoch with an `AddMember`/`RemoveMember` entry.
    pub fn apply_membership(&mut self, entry: &[u8]) -> Result<(), LightError> {
        let (op, change) = match Entry::decode(entry).map_err(LightError::Entry)? {
            Entry::AddMember(c) => (MembershipOp::Add, c),
            Entry::RemoveMember(c) => (MembershipOp::Remove, c),
            _ => return Err(LightError::Membership(MembershipError::NoChange)),
        };
        self.members
            .apply_in_place(&self.origin, op, &change)
            .map_err(LightError::Membership)
    }

    /// Steps 2–3 without changing anything: would `note` be accepted? `link` is the
    /// consistency proof from the trusted checkpoint, or before the first one, the inclusion
    /// proof of the genesis entry at index 0.
    pub fn check_checkpoint(
        &self,
        note: &SignedCheckpoint,
        link: &[Hash],
        now: u64,
        connectivity: Connectivity,
    ) -> Result<Freshness, LightError> {
        let signers = || self.members.checkpoint_signers(note);
        self.check(&note.checkpoint, signers, link, now, connectivity)
    }

    /// [`LightClient::check_checkpoint`] on a note read in place (what a device uses). The
    /// result is a [`Checked`] to hand to [`LightClient::trust`], after persisting it: the
    /// signatures are verified once.
    pub fn check_note(
        &self,
        note: &NoteView<'_>,
        link: &[Hash],
        now: u64,
        connectivity: Connectivity,
    ) -> Result<Checked, LightError> {
        let signers = || {
            self.members
                .cosigners(&note.checkpoint, note.cosignatures())
        };
        let cp = &note.checkpoint;
        let freshness = self.check(cp, signers, link, now, connectivity)?;
        Ok(Checked {
            size: cp.size,
            root: cp.root,
            timestamp: cp.timestamp,
            freshness,
        })
    }

    /// Trusts a checkpoint [`LightClient::check_note`] accepted. Refused if the client moved
    /// on in between to a tree this one would roll back or fork.
    pub fn trust(&mut self, checked: Checked) -> Result<Freshness, LightError> {
        match &self.trusted {
            Some(t) if checked.size < t.size => return Err(LightError::Rollback),
            Some(t) if checked.size == t.size && checked.root != t.root => {
                return Err(LightError::Fork);
            }
            _ => {}
        }
        self.set_trusted(checked.size, checked.root, checked.timestamp);
        Ok(checked.freshness)
    }

    fn check(
        &self,
        cp: &Checkpoint,
        signers: impl FnOnce() -> usize,
        link: &[Hash],
        now: u64,
        connectivity: Connectivity,
    ) -> Result<Freshness, LightError> {
        if cp.origin.as_str() != self.origin.as_str() {
            return Err(LightError::WrongOrigin);
        }
        let have = signers();
        let need = self.members.quorum();
        if have < need {
            return Err(LightError::NoQuorum {
                have: have as u8,
                need: need.min(255) as u8,
            });
        }
        match &self.trusted {
            None => verify_inclusion(0, cp.size, &self.genesis_leaf, link, &cp.root)
                .map_err(LightError::GenesisNotIncluded)?,
            Some(t) if cp.size < t.size => return Err(LightError::Rollback),
            Some(t) if cp.size == t.size && cp.root != t.root => return Err(LightError::Fork),
            Some(t) => verify_consistency(t.size, cp.size, link, &t.root, &cp.root)
                .map_err(LightError::Consistency)?,
        }
        self.freshness(cp.timestamp, now, connectivity)
    }

    fn freshness(
        &self,
        timestamp: u64,
        now: u64,
        connectivity: Connectivity,
    ) -> Result<Freshness, LightError> {
        if timestamp > now.saturating_add(self.policy.max_skew) {
            return Err(LightError::FromFuture);
        }
        let age = now.saturating_sub(timestamp);
        if age <= self.policy.fresh_for {
            Ok(Freshness::Fresh)
        } else if connectivity == Connectivity::Offline && age <= self.policy.stale_for {
            Ok(Freshness::Stale)
        } else {
            Err(LightError::TooOld)
        }
    }

    /// Steps 2–3, then trusts `note`'s tree from now on.
    pub fn accept_checkpoint(
        &mut self,
        note: &SignedCheckpoint,
        link: &[Hash],
        now: u64,
        connectivity: Connectivity,
    ) -> Result<Freshness, LightError> {
        let freshness = self.check_checkpoint(note, link, now, connectivity)?;
        let cp = &note.checkpoint;
        self.set_trusted(cp.size, cp.root, cp.timestamp);
        Ok(freshness)
    }

    /// Trusts a checked tree, keeping the newest signing time seen for it.
    fn set_trusted(&mut self, size: u64, root: Hash, timestamp: u64) {
        let timestamp = match &self.trusted {
            Some(t) if t.size == size => t.timestamp.max(timestamp),
            _ => timestamp,
        };
        self.trusted = Some(Trusted {
            size,
            root,
            timestamp,
        });
    }

    /// Resumes from a checkpoint trusted earlier (saved by the caller), in place.
    pub fn resume(&mut self, trusted: Trusted) {
        self.trusted = Some(trusted);
    }

    /// The genesis entry's leaf hash (index 0 of every tree of this log).
    pub fn genesis_leaf(&self) -> &Hash {
        &self.genesis_leaf
    }

    /// Step 4: `entry` is at `index` in the trusted tree; returns it decoded.
    pub fn check_entry<'e>(
        &self,
        entry: &'e [u8],
        index: u64,
        proof: &[Hash],
    ) -> Result<Entry<'e>, LightError> {
        let trusted = self.trusted.as_ref().ok_or(LightError::NoCheckpoint)?;
        verify_inclusion(index, trusted.size, &leaf_hash(entry), proof, &trusted.root)
            .map_err(LightError::Inclusion)?;
        Entry::decode(entry).map_err(LightError::Entry)
    }

    /// Steps 4–5: `entry` is an included `Commit` listing `digest` among its outputs. The
    /// caller then hashes the artifact's bytes and compares them with `digest`.
    pub fn check_committed<'e>(
        &self,
        entry: &'e [u8],
        index: u64,
        proof: &[Hash],
        digest: &Digest,
    ) -> Result<Entry<'e>, LightError> {
        let decoded = self.check_entry(entry, index, proof)?;
        let Entry::Commit(commit) = &decoded else {
            return Err(LightError::NotACommit);
        };
        if !commit.statement.outputs.contains(digest) {
            return Err(LightError::NotCommitted);
        }
        // Members checked the attestations before cosigning; a commit of the current epoch is
        // re-checked here too (older epochs' members may be gone from the current set).
        if commit.statement.epoch == self.members.epoch() {
            let attesters = self.members.attesters(commit);
            if attesters < self.members.commit_threshold() {
                return Err(LightError::TooFewAttestations);
            }
        }
        Ok(decoded)
    }

    /// A rebuild verdict: `entry` is an included `Rebuilt` entry whose upstream artifact is
    /// `digest` (a file the caller hashed and found committed); one of the current epoch is
    /// re-checked for f+1 rebuild attestations. Returns it decoded: the caller reads the
    /// verdict.
    pub fn check_rebuilt<'e>(
        &self,
        entry: &'e [u8],
        index: u64,
        proof: &[Hash],
        digest: &Digest,
    ) -> Result<crate::tlog::rebuilt::RebuildCommit<'e>, LightError> {
        let Entry::Rebuilt(rebuilt) = self.check_entry(entry, index, proof)? else {
            return Err(LightError::NotARebuild);
        };
        if rebuilt.statement.upstream != *digest || !rebuilt.statement.is_well_formed() {
            return Err(LightError::NotARebuild);
        }
        if rebuilt.statement.epoch == self.members.epoch()
            && self.members.rebuild_attesters(&rebuilt) < self.members.commit_threshold()
        {
            return Err(LightError::TooFewAttestations);
        }
        Ok(rebuilt)
    }

    /// Step 4 for a tag: `entry` is an included `TagObservation` of `name:tag`; returns it
    /// decoded. The caller then checks the digest it names as committed
    /// ([`LightClient::check_committed`]). One of the current epoch is re-checked for f+1
    /// vouches with its observer's, as members checked it before ordering it.
    pub fn check_tag<'e>(
        &self,
        entry: &'e [u8],
        index: u64,
        proof: &[Hash],
        name: &str,
        tag: &str,
    ) -> Result<Entry<'e>, LightError> {
        let decoded = self.check_entry(entry, index, proof)?;
        let Entry::TagObservation(observation) = &decoded else {
            return Err(LightError::NotATagObservation);
        };
        let statement = &observation.statement;
        if statement.tag.name != name || statement.tag.version != tag {
            return Err(LightError::NotATagObservation);
        }
        if statement.epoch == self.members.epoch() {
            let (attesters, observer_signed) = self.members.tag_attesters(observation);
            if attesters < self.members.commit_threshold() || !observer_signed {
                return Err(LightError::TooFewAttestations);
            }
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests;
