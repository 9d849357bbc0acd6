//! The log's state as every node holds it, pure: the Merkle tree, the index, the member set
//! and the last final checkpoint. The runtime persists entries and checkpoints and calls
//! [`LogState::check_offer`] before, [`LogState::extend`] after; members check and choose
//! batches on it ([`LogState::check_batch`], [`LogState::choose_batch`]) without changing it.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::consensus::wire::{Batch, CheckpointHead, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::identity::KeyId;
use crate::members::{MemberSet, MembershipError};
use crate::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::tlog::entry::{Entry, EntryError, MembershipOp};
use crate::tlog::index::LogIndex;
use crate::tlog::proof::verify_consistency;
use crate::tlog::rules::{BatchRules, EntryRejection, LogView, check_entry};
use crate::tlog::tree::MerkleTree;
use crate::tlog::{Hash, ProofError, leaf_hash};

/// The most entries one checkpoint may add at once.
pub const MAX_ENTRIES_PER_APPLY: u64 = 100_000;

/// Why a checkpoint, its entries or a batch were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogRejection {
    /// Entry 0 is not a genesis this node accepts.
    BadGenesis(MembershipError),
    /// A checkpoint of another log.
    OtherLog,
    /// Fewer valid member signatures than the epoch's quorum.
    TooFewSignatures {
        /// Valid, distinct member signatures.
        signers: usize,
        /// The epoch's quorum.
        needed: usize,
    },
    /// A quorum-signed checkpoint with another root at this log's size: a fork.
    Fork,
    /// Not as many entries as the checkpoint needs (or more than one apply takes).
    EntryCount {
        /// Entries offered.
        offered: u64,
        /// Entries needed.
        needed: u64,
    },
    /// An entry breaks the log's rules.
    Entry {
        /// Its log index.
        index: u64,
        /// Which rule.
        rejection: EntryRejection,
    },
    /// The entries do not hash to the checkpoint's (or batch's) root.
    RootMismatch,
    /// A batch whose checkpoint is not newer than the last final one.
    NotNewer,
    /// Prefix entries whose tree the consistency proof does not show to be a prefix of the
    /// checkpoint's tree.
    NotAPrefix(ProofError),
}

impl LogRejection {
    /// Whether the peer that sent the refused checkpoint or entries is at fault (struck).
    /// A checkpoint of another log is not a fault: the peer answered about its own network,
    /// which is not this one.
    pub fn blames_sender(&self) -> bool {
        !matches!(self, LogRejection::OtherLog)
    }
}

impl core::fmt::Display for LogRejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LogRejection::BadGenesis(e) => write!(f, "genesis: {e}"),
            LogRejection::OtherLog => f.write_str("checkpoint of another log"),
            LogRejection::TooFewSignatures { signers, needed } => write!(
                f,
                "checkpoint has {signers} valid member signatures, {needed} needed"
            ),
            LogRejection::Fork => f.write_str("checkpoint conflicts with this log (fork)"),
            LogRejection::EntryCount { offered, needed } => {
                write!(f, "{offered} entries offered, {needed} needed")
            }
            LogRejection::Entry { index, rejection } => write!(f, "entry {index}: {rejection}"),
            LogRejection::RootMismatch => f.write_str("entries do not hash to the checkpoint"),
            LogRejection::NotNewer => {
                f.write_str("batch checkpoint is not newer than the last final one")
            }
            LogRejection::NotAPrefix(e) => {
                write!(f, "entries are not a prefix of the checkpoint's tree: {e}")
            }
        }
    }
}

impl core::error::Error for LogRejection {}

/// What an offered checkpoint would change, once checked ([`LogState::check_offer`]).
#[derive(Clone, Debug)]
pub enum Offer {
    /// It adds the offered entries; store them and the checkpoint, then [`LogState::extend`].
    Extend(Extension),
    /// Same tree, newer signing time: store it, then [`LogState::set_latest`].
    Refresh,
    /// Not newer than this log: nothing to do.
    Stale,
}

/// Checked entries' effect on the member set, carried from [`LogState::check_offer`] to
/// [`LogState::extend`] so nothing is checked twice.
#[derive(Clone, Debug)]
pub struct Extension {
    members: Box<MemberSet>,
}

/// How a replay treats an entry that breaks the rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnInvalid {
    Refuse,
    Skip,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct LogState {
    tree: MerkleTree,
    genesis: Vec<u8>,
    origin: String,
    members: MemberSet,
    latest: Option<SignedCheckpoint>,
    index: LogIndex,
}

impl LogState {
    /// An empty log of the network `genesis` (entry 0's bytes) names.
    pub fn new(genesis: Vec<u8>) -> Result<LogState, LogRejection> {
        let Ok(Entry::Genesis(decoded)) = Entry::decode(&genesis) else {
            return Err(LogRejection::Entry {
                index: 0,
                rejection: EntryRejection::NotGenesis,
            });
        };
        let members = MemberSet::from_genesis(&decoded).map_err(LogRejection::BadGenesis)?;
        let origin = decoded.origin.to_string();
        Ok(LogState {
            tree: MerkleTree::new(),
            genesis,
            origin,
            members,
            latest: None,
            index: LogIndex::default(),
        })
    }

    /// Appends an entry this node already holds (read back from its storage at start, or
    /// appended by a sole member): indexed, and a membership change moves the member set.
    pub fn append_trusted(&mut self, bytes: &[u8]) -> Result<(), EntryError> {
        let entry = Entry::decode(bytes)?;
        let index = self.tree.push(bytes);
        self.index.add(index, bytes, &entry);
        if let Entry::AddMember(change) | Entry::RemoveMember(change) = &entry {
            let op = if matches!(entry, Entry::AddMember(_)) {
                MembershipOp::Add
            } else {
                MembershipOp::Remove
            };
            // Stored entries were checked when they came in.
            let _ = self.members.apply_in_place(&self.origin, op, change);
        }
        Ok(())
    }

    /// Sets the last final checkpoint (read back at start, or signed by a sole member).
    pub fn set_latest(&mut self, note: SignedCheckpoint) {
        self.latest = Some(note);
    }

    /// The log's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Entry 0's bytes.
    pub fn genesis(&self) -> &[u8] {
        &self.genesis
    }

    /// The members of the current epoch.
    pub fn members(&self) -> &MemberSet {
        &self.members
    }

    /// The last final checkpoint.
    pub fn latest(&self) -> Option<&SignedCheckpoint> {
        self.latest.as_ref()
    }

    /// The size of the last final checkpoint.
    pub fn final_size(&self) -> u64 {
        self.latest.as_ref().map_or(0, |c| c.checkpoint.size)
    }

    /// The consensus height members order next: the time of the last final checkpoint (0
    /// before the first). Every batch's checkpoint is later than the one before, so a height
    /// is never ordered twice, heartbeats included.
    pub fn consensus_height(&self) -> u64 {
        self.latest.as_ref().map_or(0, |c| c.checkpoint.timestamp)
    }

    /// The tree of every entry held.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// Lookups over the entries.
    pub fn index(&self) -> &LogIndex {
        &self.index
    }

    /// The checkpoint a request's builders are selected by: the tree that ends with the
    /// request. Every member computes the same one from its log, whichever checkpoints it saw.
    pub fn selection_checkpoint(&self, request_index: u64) -> Option<(u64, Hash)> {
        let size = request_index + 1;
        if size > self.final_size() {
            return None;
        }
        Some((size, self.tree.root(size).ok()?))
    }

    /// Whether `note` may be taken: a checkpoint of this log that either says nothing new
    /// ([`LogState::holds`]: nothing to check, nothing to do) or carries a quorum of the
    /// current epoch's valid member signatures. Call it on every checkpoint a peer announces
    /// or answers before fetching anything it names; an error that
    /// [blames the sender](LogRejection::blames_sender) is the peer's fault.
    pub fn check_note(&self, note: &SignedCheckpoint) -> Result<(), LogRejection> {
        if note.checkpoint.origin.as_str() != self.origin {
            return Err(LogRejection::OtherLog);
        }
        if self.holds(&note.checkpoint) {
            return Ok(());
        }
        let signers = self.members.checkpoint_signers(note);
        let needed = self.members.quorum();
        if signers < needed {
            return Err(LogRejection::TooFewSignatures { signers, needed });
        }
        Ok(())
    }

    /// Whether this log already holds `checkpoint`'s tree as final and `checkpoint` is not
    /// newer than the last final one: it says nothing new, whoever signed it. Such notes are
    /// not checked against today's quorum, because the epoch that signed them may be gone: the
    /// checkpoint that adds or removes a member is signed by the epoch before the change, and
    /// members announce it again after the member set has moved on.
    pub fn holds(&self, checkpoint: &Checkpoint) -> bool {
        checkpoint.size <= self.final_size()
            && checkpoint.timestamp <= self.consensus_height()
            && self.tree.root(checkpoint.size).ok() == Some(checkpoint.root)
    }

    /// Checks an offered checkpoint and the entries from this log's size up to it: a quorum of
    /// the epoch signed it, every entry obeys the rules of replication, and they hash to its
    /// root. Changes nothing.
    pub fn check_offer(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
    ) -> Result<Offer, LogRejection> {
        self.check_note(note)?;
        if self.holds(&note.checkpoint) {
            return Ok(Offer::Stale);
        }
        let checkpoint = &note.checkpoint;
        let have = self.tree.size();
        if checkpoint.size < have {
            return Ok(Offer::Stale);
        }
        if checkpoint.size == have {
            if self.tree.root(have).ok() != Some(checkpoint.root) {
                return Err(LogRejection::Fork);
            }
            let newer = self
                .latest
                .as_ref()
                .is_none_or(|l| checkpoint.timestamp > l.checkpoint.timestamp);
            return Ok(if newer { Offer::Refresh } else { Offer::Stale });
        }
        let needed = checkpoint.size - have;
        let offered = entries.len() as u64;
        if needed > MAX_ENTRIES_PER_APPLY || offered != needed {
            return Err(LogRejection::EntryCount { offered, needed });
        }
        let (members, root) = self.check_entries(entries)?;
        if root != checkpoint.root {
            return Err(LogRejection::RootMismatch);
        }
        Ok(Offer::Extend(Extension {
            members: Box::new(members),
        }))
    }

    /// Checks the next entries of a checkpoint too far ahead to take in one apply: a quorum
    /// signed `note`, the entries (from this log's size on, at most
    /// [`MAX_ENTRIES_PER_APPLY`], fewer than the note covers) obey the rules of replication,
    /// and `consistency` proves the tree they make with this log a prefix of the note's.
    /// So a follower catches up with any length of log in bounded batches, each checked
    /// against the one signed checkpoint. Changes nothing.
    pub fn check_prefix(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
        consistency: &[Hash],
    ) -> Result<Extension, LogRejection> {
        self.check_note(note)?;
        let have = self.tree.size();
        let offered = entries.len() as u64;
        let size = have + offered;
        if offered == 0 || offered > MAX_ENTRIES_PER_APPLY || size >= note.checkpoint.size {
            return Err(LogRejection::EntryCount {
                offered,
                needed: note.checkpoint.size.saturating_sub(have),
            });
        }
        let (members, root) = self.check_entries(entries)?;
        verify_consistency(
            size,
            note.checkpoint.size,
            consistency,
            &root,
            &note.checkpoint.root,
        )
        .map_err(LogRejection::NotAPrefix)?;
        Ok(Extension {
            members: Box::new(members),
        })
    }

    /// Takes in prefix entries checked by [`LogState::check_prefix`] (and stored). The last
    /// final checkpoint stays until the checkpoint's own last entries arrive with it
    /// ([`LogState::check_offer`] then [`LogState::extend`]).
    pub fn extend_prefix(&mut self, checked: Extension, entries: &[Vec<u8>]) {
        for bytes in entries {
            let index = self.tree.push(bytes);
            if let Ok(entry) = Entry::decode(bytes) {
                self.index.add(index, bytes, &entry);
            }
        }
        self.members = *checked.members;
    }

    /// The rules of replication over `entries` appended to this log, in order: the member
    /// set they lead to and the root of the tree they make.
    fn check_entries(&self, entries: &[Vec<u8>]) -> Result<(MemberSet, Hash), LogRejection> {
        let have = self.tree.size();
        let mut members = self.members.clone();
        let mut leaves = Vec::with_capacity(entries.len());
        for (offset, bytes) in entries.iter().enumerate() {
            let index = have + offset as u64;
            check_entry(self, &mut members, index, bytes)
                .map_err(|rejection| LogRejection::Entry { index, rejection })?;
            leaves.push(leaf_hash(bytes));
        }
        Ok((members, self.tree.root_extended(&leaves)))
    }

    /// Takes in entries and their checkpoint checked by [`LogState::check_offer`] (and stored).
    pub fn extend(&mut self, checked: Extension, note: SignedCheckpoint, entries: &[Vec<u8>]) {
        self.extend_prefix(checked, entries);
        self.latest = Some(note);
    }

    /// What a proposer proposes: the `candidates` that are valid together on top of the final
    /// log, in order, within the batch limits (an invalid one is left out), and the checkpoint
    /// they produce signed at `timestamp`. One replay, however many candidates.
    pub fn choose_batch<'e>(
        &self,
        candidates: &[&'e [u8]],
        timestamp: u64,
    ) -> (Vec<&'e [u8]>, CheckpointHead) {
        let (kept, size, root) = self
            .replay(candidates, OnInvalid::Skip)
            .unwrap_or_else(|_| (Vec::new(), self.tree.size(), self.tree.root_extended(&[])));
        let chosen = kept.into_iter().map(|i| candidates[i]).collect();
        (
            chosen,
            CheckpointHead {
                size,
                root,
                timestamp,
            },
        )
    }

    /// What a member checks before voting for `batch`: it extends the final log, its entries
    /// decode and obey the rules of replication and of batches ([`BatchRules`]), and they hash
    /// to the batch's checkpoint, whose time is after the last final one.
    pub fn check_batch(&self, batch: &Batch<'_>) -> Result<(), LogRejection> {
        if batch.head.timestamp <= self.consensus_height() {
            return Err(LogRejection::NotNewer);
        }
        if self.tree.size() == 0 && batch.entries.is_empty() {
            // A log starts with its genesis entry.
            return Err(LogRejection::Entry {
                index: 0,
                rejection: EntryRejection::NotGenesis,
            });
        }
        let (_, size, root) = self.replay(&batch.entries, OnInvalid::Refuse)?;
        if (size, root) != (batch.head.size, batch.head.root) {
            return Err(LogRejection::RootMismatch);
        }
        Ok(())
    }

    /// The checkpoint `entries` would produce on top of the final log; refused when an entry
    /// breaks the rules.
    pub fn batch_head(
        &self,
        entries: &[&[u8]],
        timestamp: u64,
    ) -> Result<CheckpointHead, LogRejection> {
        let (_, size, root) = self.replay(entries, OnInvalid::Refuse)?;
        Ok(CheckpointHead {
            size,
            root,
            timestamp,
        })
    }

    /// Checks `entries` in order on top of the final log, as members check a batch; returns
    /// the offsets of the entries kept (all of them, unless `on_invalid` skips) and the size
    /// and root they produce.
    fn replay(
        &self,
        entries: &[&[u8]],
        on_invalid: OnInvalid,
    ) -> Result<(Vec<usize>, u64, Hash), LogRejection> {
        let have = self.tree.size();
        let mut members = self.members.clone();
        let mut rules = BatchRules::default();
        let mut kept = Vec::new();
        let mut leaves = Vec::new();
        let mut bytes_kept = 0;
        for (offset, bytes) in entries.iter().enumerate() {
            if on_invalid == OnInvalid::Skip
                && (kept.len() >= MAX_BATCH_ENTRIES || bytes_kept + bytes.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            let index = have + kept.len() as u64;
            match rules.check(self, &mut members, index, bytes) {
                Ok(()) => {
                    leaves.push(leaf_hash(bytes));
                    kept.push(offset);
                    bytes_kept += bytes.len();
                }
                Err(rejection) if on_invalid == OnInvalid::Refuse => {
                    return Err(LogRejection::Entry { index, rejection });
                }
                Err(_) => {}
            }
        }
        let root = self.tree.root_extended(&leaves);
        Ok((kept, have + leaves.len() as u64, root))
    }
}

impl LogView for LogState {
    fn origin(&self) -> &str {
        &self.origin
    }
    fn genesis(&self) -> &[u8] {
        &self.genesis
    }
    fn request(&self, name: &str, version: &str) -> Option<u64> {
        self.index.request(name, version)
    }
    fn commit(&self, name: &str, version: &str) -> Option<u64> {
        self.index.commit(name, version)
    }
    fn dispute(&self, name: &str, version: &str) -> Option<(u64, bool)> {
        self.index.dispute(name, version)
    }
    fn final_size(&self) -> u64 {
        LogState::final_size(self)
    }
    fn root(&self, size: u64) -> Option<Hash> {
        self.tree.root(size).ok()
    }
    fn open_requests_from(&self, requester: &KeyId) -> usize {
        self.index.open_from(requester)
    }
    fn tag(&self, name: &str, tag: &str) -> Option<u64> {
        self.index.tag(name, tag).map(|(index, _)| index)
    }
    fn tagged(&self, name: &str, digest: &crate::digest::Digest) -> Option<u64> {
        self.index.tagged(name, digest).map(|(index, _)| index)
    }
}

#[cfg(test)]
mod blame_tests {
    use super::*;

    #[test]
    fn only_another_log_is_no_fault_of_the_sender() {
        assert!(!LogRejection::OtherLog.blames_sender());
        assert!(LogRejection::Fork.blames_sender());
        assert!(LogRejection::RootMismatch.blames_sender());
        assert!(
            LogRejection::TooFewSignatures {
                signers: 0,
                needed: 1
            }
            .blames_sender()
        );
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;
    use crate::identity::SecretKey;
    use crate::tlog::entry::{BuildRequest, Coordinates, DOCKER_FETCH_V1, Genesis, KeyList};

    /// A sole member's log of a genesis and `n` requests, and its checkpoint.
    fn leader(n: u64) -> (LogState, Vec<Vec<u8>>, SignedCheckpoint) {
        let key = SecretKey::from_seed([5; 32]);
        let keys = key.public().to_bytes();
        let genesis = Entry::Genesis(Genesis {
            origin: "pyrsia.test/prefix",
            faults: 0,
            members: KeyList(&keys),
            created: 0,
        })
        .encode();
        let mut log = LogState::new(genesis.clone()).unwrap();
        let mut entries = alloc::vec![genesis];
        for i in 0..n {
            let name = alloc::format!("docker.io/x/y{i}");
            entries.push(
                Entry::BuildRequest(BuildRequest {
                    coordinates: Coordinates {
                        ecosystem: "docker",
                        name: &name,
                        version: "sha256:aa",
                    },
                    build_type: DOCKER_FETCH_V1,
                    source: "https://registry.invalid",
                    requester: key.public().key_id(),
                })
                .encode(),
            );
        }
        for bytes in &entries {
            log.append_trusted(bytes).unwrap();
        }
        let checkpoint = Checkpoint {
            origin: heapless::String::try_from("pyrsia.test/prefix").unwrap(),
            size: log.tree().size(),
            root: log.tree().root(log.tree().size()).unwrap(),
            timestamp: 10,
        };
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        note.add(checkpoint.sign(&key)).unwrap();
        log.set_latest(note.clone());
        (log, entries, note)
    }

    #[test]
    fn a_follower_takes_a_long_log_in_prefixes_proven_against_one_checkpoint() {
        let (leader, entries, note) = leader(40);
        let size = note.checkpoint.size;
        let mut follower = LogState::new(entries[0].clone()).unwrap();
        let mut have = 0;
        for chunk in [7, 13, 20] {
            let batch = &entries[have..have + chunk];
            let to = (have + chunk) as u64;
            let proof = leader.tree().consistency_proof(to, size).unwrap();
            let checked = follower.check_prefix(&note, batch, &proof).unwrap();
            follower.extend_prefix(checked, batch);
            have += chunk;
            assert_eq!(follower.tree().size(), to);
            assert_eq!(follower.final_size(), 0, "nothing is final before the note");
        }
        // The last entries come with the note itself.
        let Ok(Offer::Extend(checked)) = follower.check_offer(&note, &entries[have..]) else {
            panic!("the rest of the log extends to the note");
        };
        follower.extend(checked, note.clone(), &entries[have..]);
        assert_eq!(follower.final_size(), size);
        assert_eq!(
            follower.tree().root(size).unwrap(),
            leader.tree().root(size).unwrap()
        );
    }

    #[test]
    fn a_prefix_that_is_not_the_checkpoints_is_refused() {
        let (leader, entries, note) = leader(20);
        let size = note.checkpoint.size;
        let follower = LogState::new(entries[0].clone()).unwrap();
        let proof = leader.tree().consistency_proof(10, size).unwrap();
        // Entries swapped: valid by the rules, another tree.
        let mut swapped = entries[..10].to_vec();
        swapped.swap(3, 4);
        assert!(matches!(
            follower.check_prefix(&note, &swapped, &proof),
            Err(LogRejection::NotAPrefix(_))
        ));
        // A proof for another size, the whole log as a prefix, nothing at all.
        let wrong = leader.tree().consistency_proof(9, size).unwrap();
        assert!(matches!(
            follower.check_prefix(&note, &entries[..10], &wrong),
            Err(LogRejection::NotAPrefix(_))
        ));
        assert!(matches!(
            follower.check_prefix(&note, &entries, &[]),
            Err(LogRejection::EntryCount { .. })
        ));
        assert!(matches!(
            follower.check_prefix(&note, &[], &proof),
            Err(LogRejection::EntryCount { .. })
        ));
        // An unsigned note proves nothing.
        let unsigned = SignedCheckpoint::unsigned(note.checkpoint.clone());
        assert!(matches!(
            follower.check_prefix(&unsigned, &entries[..10], &proof),
            Err(LogRejection::TooFewSignatures { .. })
        ));
    }
}

#[cfg(test)]
mod epoch_tests {
    use super::*;
    use crate::identity::SecretKey;
    use crate::tlog::entry::{Genesis, KeyList, MembershipChange, SignatureList};

    const ORIGIN: &str = "pyrsia.test/epochs";

    fn note(log: &LogState, timestamp: u64, signers: &[&SecretKey]) -> SignedCheckpoint {
        let size = log.tree().size();
        let checkpoint = Checkpoint {
            origin: heapless::String::try_from(ORIGIN).unwrap(),
            size,
            root: log.tree().root(size).unwrap(),
            timestamp,
        };
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        for key in signers {
            note.add(checkpoint.sign(key)).unwrap();
        }
        note
    }

    /// A sole member `a` adds `b`: the checkpoint of the change is signed by `a` alone, the
    /// quorum of the epoch before it (1 of 1), not of the epoch after (2 of 2).
    #[test]
    fn the_checkpoint_that_moved_the_epoch_is_not_judged_by_the_new_epoch() {
        let a = SecretKey::from_seed([1; 32]);
        let b = SecretKey::from_seed([2; 32]);
        let keys = a.public().to_bytes();
        let genesis = Entry::Genesis(Genesis {
            origin: ORIGIN,
            faults: 0,
            members: KeyList(&keys),
            created: 0,
        })
        .encode();
        let unsigned = MembershipChange {
            epoch: 1,
            key: b.public(),
            signatures: SignatureList(&[]),
        };
        let signature = unsigned.sign(ORIGIN, MembershipOp::Add, &a).to_bytes();
        let add = Entry::AddMember(MembershipChange {
            signatures: SignatureList(&signature),
            ..unsigned
        })
        .encode();
        let entries = alloc::vec![genesis.clone(), add];

        let mut leader = LogState::new(genesis.clone()).unwrap();
        for bytes in &entries {
            leader.append_trusted(bytes).unwrap();
        }
        let change = note(&leader, 10, &[&a]);

        let mut follower = LogState::new(genesis).unwrap();
        let Ok(Offer::Extend(checked)) = follower.check_offer(&change, &entries) else {
            panic!("the old epoch's quorum commits the change");
        };
        follower.extend(checked, change.clone(), &entries);
        assert_eq!(follower.members().len(), 2);
        assert_eq!(follower.members().quorum(), 2);

        // Announced again after the change: held, so neither refused nor blamed.
        assert_eq!(follower.check_note(&change), Ok(()));
        assert!(matches!(
            follower.check_offer(&change, &[]),
            Ok(Offer::Stale)
        ));
        // Anything newer is the new epoch's to sign: a heartbeat signed by `a` alone is
        // refused, one signed by both refreshes.
        let lone = note(&leader, 11, &[&a]);
        assert_eq!(
            follower.check_note(&lone),
            Err(LogRejection::TooFewSignatures {
                signers: 1,
                needed: 2
            })
        );
        let both = note(&leader, 11, &[&a, &b]);
        assert!(matches!(
            follower.check_offer(&both, &[]),
            Ok(Offer::Refresh)
        ));
        // Another root at a held size is no held checkpoint: it is checked, and refused.
        let mut forged = change.clone();
        forged.checkpoint.root = [7; 32];
        assert!(follower.check_note(&forged).is_err());
    }
}
