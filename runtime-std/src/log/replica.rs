//! Taking in another node's checkpoint and the entries it covers: how a node that does not
//! sign alone (a follower of a network, or a member re-syncing after a crash) gets the log.
//! Nothing is stored until the checkpoint has a quorum of the epoch's members, every new entry
//! decodes and obeys the log's rules, and the entries hash to the checkpoint's root.

use fjall::PersistMode;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::state::{LogRejection, Offer};
use pyrsia_core::tlog::sync::Stored;

pub use pyrsia_core::tlog::state::MAX_ENTRIES_PER_APPLY;

use super::{Log, LogError};

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

impl Log {
    /// Stores what a peer's log catch-up fetched (core's `SyncAction::Apply`) and says how it
    /// went, with the blame core's `LogSync` needs: the log's refusal is the peer's fault, a
    /// failure of this node's disk is nobody's.
    pub fn store_fetched(&self, note: &SignedCheckpoint, entries: &[Vec<u8>]) -> Stored {
        match self.apply_checkpoint(note, entries) {
            Ok(Applied::Extended(size)) => Stored::Grew(size),
            Ok(Applied::Refreshed | Applied::Stale) => Stored::Unchanged,
            Err(e @ LogError::Refused(_)) => Stored::Refused(e.to_string()),
            Err(e) => Stored::LocalFailure(e.to_string()),
        }
    }

    /// Stores a proven prefix a catch-up fetched (core's `SyncAction::ApplyPrefix`), with the
    /// same blame as [`Log::store_fetched`].
    pub fn store_fetched_prefix(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
        proof: &[pyrsia_core::tlog::Hash],
    ) -> Stored {
        match self.apply_prefix(note, entries, proof) {
            Ok(size) => Stored::Grew(size),
            Err(e @ LogError::Refused(_)) => Stored::Refused(e.to_string()),
            Err(e) => Stored::LocalFailure(e.to_string()),
        }
    }

    /// Whether `note` is a checkpoint of this log with a quorum of valid member signatures: what a
    /// node checks before forwarding a gossiped checkpoint or asking for its entries.
    pub fn check_note(&self, note: &SignedCheckpoint) -> Result<(), LogRejection> {
        self.lock().check_note(note)
    }

    /// The entries a peer must send so that `note` can be applied: `(first, count)`; from the
    /// tree held, prefix entries of an unfinished catch-up included.
    pub fn missing_for(&self, note: &SignedCheckpoint) -> Option<(u64, u64)> {
        let have = self.lock().tree().size();
        (note.checkpoint.size > have).then(|| (have, note.checkpoint.size - have))
    }

    /// The next entries of a checkpoint too far ahead for one apply: checked by the log's
    /// rules and by `consistency` (the proof that the tree they make is a prefix of `note`'s,
    /// `LogState::check_prefix`), then stored. They stay past the last final checkpoint until
    /// the note's own last entries arrive ([`Log::apply_checkpoint`]); a restart meanwhile
    /// drops them, as any entry past it (PROTOCOL case 28), and the catch-up starts again.
    /// Returns the size of the tree held.
    pub fn apply_prefix(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
        consistency: &[pyrsia_core::tlog::Hash],
    ) -> Result<u64, LogError> {
        let mut state = self.lock();
        let have = state.tree().size();
        let checked = state
            .check_prefix(note, entries, consistency)
            .map_err(|e| LogError::Refused(e.to_string()))?;
        let t = self.tables.get()?;
        let mut batch = t.db.batch();
        for (offset, bytes) in entries.iter().enumerate() {
            batch.insert(&t.entries, (have + offset as u64).to_be_bytes(), bytes);
        }
        // Not synced: the entries are not final yet, and a restart drops them anyway.
        batch.commit()?;
        state.extend_prefix(checked, entries);
        Ok(state.tree().size())
    }

    /// Checks `note` and `entries` by the log's rules (`LogState::check_offer`: origin, a
    /// quorum of valid member signatures, every new entry valid, the root) and stores both. A
    /// checkpoint with another root at this node's size is a fork: refused and logged as
    /// evidence.
    pub fn apply_checkpoint(
        &self,
        note: &SignedCheckpoint,
        entries: &[Vec<u8>],
    ) -> Result<Applied, LogError> {
        let mut state = self.lock();
        let cp = &note.checkpoint;
        let have = state.tree().size();
        match state.check_offer(note, entries) {
            Ok(Offer::Stale) => Ok(Applied::Stale),
            Ok(Offer::Refresh) => {
                let t = self.tables.get()?;
                t.checkpoints
                    .insert(cp.size.to_be_bytes(), note.to_string().as_bytes())?;
                t.db.persist(PersistMode::SyncAll)?;
                state.set_latest(note.clone());
                Ok(Applied::Refreshed)
            }
            Ok(Offer::Extend(checked)) => {
                let t = self.tables.get()?;
                let mut batch = t.db.batch();
                for (offset, bytes) in entries.iter().enumerate() {
                    batch.insert(&t.entries, (have + offset as u64).to_be_bytes(), bytes);
                }
                batch.insert(
                    &t.checkpoints,
                    cp.size.to_be_bytes(),
                    note.to_string().as_bytes(),
                );
                batch
                    .commit()
                    .and_then(|()| t.db.persist(PersistMode::SyncAll))?;
                state.extend(checked, note.clone(), entries);
                Ok(Applied::Extended(cp.size))
            }
            Err(LogRejection::Fork) => {
                tracing::error!(size = have, note = %note, "FORK: a quorum-signed checkpoint conflicts with this node's log; keeping it as evidence");
                let _ = self.tables.get().and_then(|t| {
                    t.evidence
                        .insert(cp.size.to_be_bytes(), note.to_string().as_bytes())
                });
                Err(LogError::Refused(LogRejection::Fork.to_string()))
            }
            Err(e) => Err(LogError::Refused(e.to_string())),
        }
    }
}
