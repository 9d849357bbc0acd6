//! Taking in another node's checkpoint and the entries it covers: how a node that does not
//! sign alone (a follower of a network, or a member re-syncing after a crash) gets the log.
//! Nothing is stored until the checkpoint has a quorum of the epoch's members, every new entry
//! decodes and obeys the log's rules, and the entries hash to the checkpoint's root.

use fjall::PersistMode;
use pyrsia_core::identity::KeyId;
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::entry::Entry;
use pyrsia_core::tlog::rules::{self, LogView};

use super::{Log, LogError, State};

/// What an offered checkpoint changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The log grew to this size.
    Extended(u64),
    /// Same tree, newer signing time: kept as the latest checkpoint.
    Refreshed,
    /// Not newer than what this node holds: nothing to do.
    Stale,
}

/// The most entries one checkpoint may add at once.
pub const MAX_ENTRIES_PER_APPLY: u64 = 100_000;

impl Log {
    /// Whether `note` is a checkpoint of this log with a quorum of valid member signatures: what a
    /// node checks before forwarding a gossiped checkpoint or asking for its entries.
    pub fn check_note(&self, note: &SignedCheckpoint) -> Result<(), LogError> {
        check_quorum(&self.lock(), note)
    }

    /// The entries a peer must send so that `note` can be applied: `(first, count)`.
    pub fn missing_for(&self, note: &SignedCheckpoint) -> Option<(u64, u64)> {
        let have = self.lock().tree.size();
        (note.checkpoint.size > have).then(|| (have, note.checkpoint.size - have))
    }

    /// Checks `note` (origin, a quorum of valid member signatures) and `entries` (the ones from this
    /// node's size up to the note's, each valid) and stores both. A checkpoint with another
    /// root at this node's size is a fork: refused and logged as evidence.
    pub fn apply_checkpoint(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
    ) -> Result<Applied, LogError> {
        let mut state = self.lock();
        check_quorum(&state, note)?;
        let cp = &note.checkpoint;
        let have = state.tree.size();
        if cp.size < have {
            return Ok(Applied::Stale);
        }
        if cp.size == have {
            let root = state
                .tree
                .root(have)
                .map_err(|e| LogError::Corrupt(e.to_string()))?;
            if root != cp.root {
                tracing::error!(size = have, note = %note, "FORK: a quorum-signed checkpoint conflicts with this node's log; keeping it as evidence");
                let _ = self
                    .evidence
                    .insert(cp.size.to_be_bytes(), note.to_string().as_bytes());
                return Err(LogError::Refused(
                    "checkpoint conflicts with this log (fork)".into(),
                ));
            }
            let newer = state
                .latest
                .as_ref()
                .is_none_or(|l| cp.timestamp > l.checkpoint.timestamp);
            if !newer {
                return Ok(Applied::Stale);
            }
            self.checkpoints
                .insert(cp.size.to_be_bytes(), note.to_string().as_bytes())?;
            self.db.persist(PersistMode::SyncAll)?;
            state.latest = Some(note.clone());
            return Ok(Applied::Refreshed);
        }
        let wanted = cp.size - have;
        if wanted > MAX_ENTRIES_PER_APPLY || entries.len() as u64 != wanted {
            return Err(LogError::Refused(format!(
                "{} entries offered, {wanted} needed",
                entries.len()
            )));
        }
        let mut members = state.members.clone();
        for (offset, bytes) in entries.iter().enumerate() {
            let index = have + offset as u64;
            if let Err(e) = check_entry(&state, &mut members, index, bytes) {
                state.tree.truncate(have);
                return Err(e);
            }
            state.tree.push(bytes);
        }
        let root = state.tree.root(cp.size).ok();
        if root != Some(cp.root) {
            state.tree.truncate(have);
            return Err(LogError::Refused(
                "entries do not hash to the checkpoint's root".into(),
            ));
        }
        let mut batch = self.db.batch();
        for (offset, bytes) in entries.iter().enumerate() {
            batch.insert(&self.entries, (have + offset as u64).to_be_bytes(), bytes);
        }
        batch.insert(
            &self.checkpoints,
            cp.size.to_be_bytes(),
            note.to_string().as_bytes(),
        );
        if let Err(e) = batch
            .commit()
            .and_then(|()| self.db.persist(PersistMode::SyncAll))
        {
            state.tree.truncate(have);
            return Err(e.into());
        }
        for (offset, bytes) in entries.iter().enumerate() {
            if let Ok(entry) = Entry::decode(bytes) {
                state.index.add(have + offset as u64, &entry);
            }
        }
        state.members = members;
        state.latest = Some(note.clone());
        Ok(Applied::Extended(cp.size))
    }
}

fn check_quorum(state: &State, note: &SignedCheckpoint) -> Result<(), LogError> {
    let cp = &note.checkpoint;
    if cp.origin.as_str() != state.origin {
        return Err(LogError::Refused("checkpoint of another log".into()));
    }
    let signers = state.members.checkpoint_signers(note);
    if signers < state.members.quorum() {
        return Err(LogError::Refused(format!(
            "checkpoint has {signers} valid member signatures, {} needed",
            state.members.quorum()
        )));
    }
    Ok(())
}

/// What the log's entry rules ask of this node's log (`pyrsia_core::tlog::rules`): the
/// final state plus whatever entries a replay pushed on the tree.
pub(super) struct View<'a>(pub(super) &'a State);

impl LogView for View<'_> {
    fn origin(&self) -> &str {
        &self.0.origin
    }
    fn genesis(&self) -> &[u8] {
        &self.0.genesis
    }
    fn request(&self, name: &str, version: &str) -> Option<u64> {
        self.0.index.request(name, version)
    }
    fn commit(&self, name: &str, version: &str) -> Option<u64> {
        self.0.index.commit(name, version)
    }
    fn dispute(&self, name: &str, version: &str) -> Option<(u64, bool)> {
        self.0.index.dispute(name, version)
    }
    fn final_size(&self) -> u64 {
        self.0.latest.as_ref().map_or(0, |c| c.checkpoint.size)
    }
    fn root(&self, size: u64) -> Option<Hash> {
        self.0.tree.root(size).ok()
    }
    fn open_requests_from(&self, requester: &KeyId) -> usize {
        self.0.index.open_from(requester)
    }
}

/// One replicated entry at `index`, by the log's entry rules (`tlog::rules::check_entry`);
/// a valid membership change moves `members` to the next epoch.
pub(super) fn check_entry(
    state: &State,
    members: &mut pyrsia_core::members::MemberSet,
    index: u64,
    bytes: &[u8],
) -> Result<(), LogError> {
    rules::check_entry(&View(state), members, index, bytes)
        .map_err(|e| LogError::Refused(format!("entry {index}: {e}")))
}
