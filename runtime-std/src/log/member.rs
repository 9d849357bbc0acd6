//! What a member's consensus driver asks of the log: the member set, the batch a proposer
//! proposes and the check every member runs on it before voting (the entries obey the log's
//! rules and hash to the batch's checkpoint), the requests waiting for builders, the voting
//! state persisted before a vote leaves, and evidence.

use fjall::PersistMode;
use pyrsia_core::consensus::ordering::VotingState;
use pyrsia_core::consensus::wire::{Batch, CheckpointHead};
use pyrsia_core::members::MemberSet;
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::state::LogState;

use super::{Log, LogError};

const VOTING_KEY: &[u8] = b"voting-state";

/// The voting state as members before the valid value was persisted wrote it: read once after
/// an upgrade, so the member still repeats the votes it cast (it has no valid value then).
#[derive(serde::Deserialize)]
struct VotingStateV1 {
    height: u64,
    round: u32,
    locked: Option<(u32, pyrsia_core::consensus::ordering::ValueId)>,
    votes: Vec<pyrsia_core::consensus::ordering::CastVote>,
    proposed: bool,
}

impl From<VotingStateV1> for VotingState {
    fn from(old: VotingStateV1) -> Self {
        VotingState {
            height: old.height,
            round: old.round,
            locked: old.locked,
            votes: old.votes,
            proposed: old.proposed,
            valid: None,
        }
    }
}

impl Log {
    /// Runs `read` on the log's state (the tree, the index, the members and the last final
    /// checkpoint), holding the log's lock: what the member node decides on.
    pub fn with_state<T>(&self, read: impl FnOnce(&LogState) -> T) -> T {
        read(&self.lock())
    }

    /// The members of the current epoch.
    pub fn members(&self) -> MemberSet {
        self.lock().members().clone()
    }

    /// The consensus height the members order next (`LogState::consensus_height`).
    pub fn consensus_height(&self) -> u64 {
        self.lock().consensus_height()
    }

    /// Whether this node's key is a member of the current epoch.
    pub fn is_member(&self) -> bool {
        self.lock().members().contains(&self.key.public())
    }

    /// The checkpoint `entries` would produce on top of the final log, signed at `timestamp`;
    /// refused when an entry breaks the log's rules.
    pub fn batch_head(
        &self,
        entries: &[&[u8]],
        timestamp: u64,
    ) -> Result<CheckpointHead, LogError> {
        self.lock()
            .batch_head(entries, timestamp)
            .map_err(|e| LogError::Refused(e.to_string()))
    }

    /// What a member checks before voting for `batch` (`LogState::check_batch`).
    pub fn check_batch(&self, batch: &Batch<'_>) -> Result<(), LogError> {
        self.lock()
            .check_batch(batch)
            .map_err(|e| LogError::Refused(e.to_string()))
    }

    /// The requests with no `Commit` or `Unverifiable` yet: their index and entry bytes.
    pub fn open_requests(&self) -> Vec<(u64, Vec<u8>)> {
        self.lock()
            .index()
            .open_requests()
            .map(|(i, bytes)| (i, bytes.to_vec()))
            .collect()
    }

    /// The first `BuildRequest` of `name` at `version`.
    pub fn find_request(&self, name: &str, version: &str) -> Option<u64> {
        self.lock().index().request(name, version)
    }

    /// The latest `Dispute` or `Unverifiable` of `name` at `version`: its index, and whether
    /// the artifact is unverifiable (final).
    pub fn find_dispute(&self, name: &str, version: &str) -> Option<(u64, bool)> {
        self.lock().index().dispute(name, version)
    }

    /// The checkpoint a request's builders are selected by: the tree that ends with the
    /// request. Every member computes the same one from its log, whichever checkpoints it saw.
    pub fn selection_checkpoint(&self, request_index: u64) -> Option<(u64, Hash)> {
        self.lock().selection_checkpoint(request_index)
    }

    /// Persists the voting state (synced) before the vote that depends on it leaves.
    pub fn save_voting_state(&self, state: &VotingState) -> Result<(), LogError> {
        let bytes = postcard::to_allocvec(state).map_err(|e| LogError::Corrupt(e.to_string()))?;
        let t = self.tables.get()?;
        t.state.insert(VOTING_KEY, bytes)?;
        t.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// The voting state persisted last, if any.
    pub fn voting_state(&self) -> Option<VotingState> {
        let bytes = self.tables.get().ok()?.state.get(VOTING_KEY).ok()??;
        postcard::from_bytes(&bytes)
            .or_else(|_| postcard::from_bytes::<VotingStateV1>(&bytes).map(VotingState::from))
            .ok()
    }

    /// Keeps `bytes` as evidence of misbehaviour under `key` (e.g. a member's attestation
    /// that contradicts a commit).
    pub fn keep_evidence(&self, key: &[u8], bytes: &[u8]) -> Result<(), LogError> {
        let t = self.tables.get()?;
        t.evidence.insert(key, bytes)?;
        t.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// How many pieces of evidence the log keeps.
    pub fn evidence_count(&self) -> usize {
        self.tables.get().map_or(0, |t| t.evidence.iter().count())
    }
}

#[cfg(test)]
mod tests;
