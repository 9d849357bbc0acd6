//! What a member's consensus driver asks of the log: the member set, the batch a proposer
//! proposes and the check every member runs on it before voting (the entries obey the log's
//! rules and hash to the batch's checkpoint), the requests waiting for builders, the voting
//! state persisted before a vote leaves, and evidence.

use fjall::PersistMode;
use pyrsia_core::consensus::ordering::VotingState;
use pyrsia_core::consensus::wire::{Batch, CheckpointHead, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use pyrsia_core::members::MemberSet;
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::rules::BatchRules;

use super::replica::View;
use super::{Log, LogError, State};

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
    /// The members of the current epoch.
    pub fn members(&self) -> MemberSet {
        self.lock().members.clone()
    }

    /// The consensus height the members order next: the time of the last final checkpoint
    /// (0 before the first). Every batch's checkpoint is later than the one before, so a
    /// height is never ordered twice, heartbeats included.
    pub fn consensus_height(&self) -> u64 {
        self.lock()
            .latest
            .as_ref()
            .map_or(0, |c| c.checkpoint.timestamp)
    }

    /// Whether this node's key is a member of the current epoch.
    pub fn is_member(&self) -> bool {
        self.lock().members.contains(&self.key.public())
    }

    /// The checkpoint `entries` would produce on top of the final log, signed at `timestamp`;
    /// refused when an entry breaks the log's rules (see [`Log::check_batch`]).
    pub fn batch_head(
        &self,
        entries: &[&[u8]],
        timestamp: u64,
    ) -> Result<CheckpointHead, LogError> {
        let mut state = self.lock();
        let (_, size, root) = replay(&mut state, entries, OnInvalid::Refuse)?;
        Ok(CheckpointHead {
            size,
            root,
            timestamp,
        })
    }

    /// What a proposer proposes: the `candidates` that are valid together on top of the final
    /// log, in order, within the batch limits (an invalid one is left out), and the
    /// checkpoint they produce signed at `timestamp`. One replay, however many candidates.
    pub fn choose_batch<'e>(
        &self,
        candidates: &[&'e [u8]],
        timestamp: u64,
    ) -> Result<(Vec<&'e [u8]>, CheckpointHead), LogError> {
        let mut state = self.lock();
        let (kept, size, root) = replay(&mut state, candidates, OnInvalid::Skip)?;
        let chosen = kept.into_iter().map(|i| candidates[i]).collect();
        Ok((
            chosen,
            CheckpointHead {
                size,
                root,
                timestamp,
            },
        ))
    }

    /// What a member checks before voting for `batch`: it extends this node's final log, its
    /// entries decode and obey the rules of replication (commits carry f+1 attestations of the
    /// epoch and are bound to their request and its selection checkpoint, no coordinates are
    /// committed twice, membership changes carry a quorum of signatures), and they hash to the
    /// batch's checkpoint, whose time is after the last final one.
    pub fn check_batch(&self, batch: &Batch<'_>) -> Result<(), LogError> {
        let mut state = self.lock();
        let last = state.latest.as_ref().map_or(0, |c| c.checkpoint.timestamp);
        if batch.head.timestamp <= last {
            return Err(LogError::Refused(
                "batch checkpoint is not newer than the last final one".into(),
            ));
        }
        let (_, size, root) = replay(&mut state, &batch.entries, OnInvalid::Refuse)?;
        if (size, root) != (batch.head.size, batch.head.root) {
            return Err(LogError::Refused(
                "batch entries do not produce its checkpoint".into(),
            ));
        }
        Ok(())
    }

    /// The requests with no `Commit` or `Unverifiable` yet: their index and entry bytes.
    pub fn open_requests(&self) -> Vec<(u64, Vec<u8>)> {
        let indices = self.lock().index.open_requests();
        indices
            .into_iter()
            .filter_map(|i| Some((i, self.entry(i)?)))
            .collect()
    }

    /// The first `BuildRequest` of `name` at `version`.
    pub fn find_request(&self, name: &str, version: &str) -> Option<u64> {
        self.lock().index.request(name, version)
    }

    /// The latest `Dispute` or `Unverifiable` of `name` at `version`: its index, and whether
    /// the artifact is unverifiable (final).
    pub fn find_dispute(&self, name: &str, version: &str) -> Option<(u64, bool)> {
        self.lock().index.dispute(name, version)
    }

    /// The checkpoint a request's builders are selected by: the tree that ends with the
    /// request. Every member computes the same one from its log, whichever checkpoints it saw.
    pub fn selection_checkpoint(&self, request_index: u64) -> Option<(u64, Hash)> {
        let state = self.lock();
        let size = request_index + 1;
        let final_size = state.latest.as_ref().map_or(0, |c| c.checkpoint.size);
        if size > final_size {
            return None;
        }
        Some((size, state.tree.root(size).ok()?))
    }

    /// Persists the voting state (synced) before the vote that depends on it leaves.
    pub fn save_voting_state(&self, state: &VotingState) -> Result<(), LogError> {
        let bytes = postcard::to_allocvec(state).map_err(|e| LogError::Corrupt(e.to_string()))?;
        self.state_keyspace.insert(VOTING_KEY, bytes)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// The voting state persisted last, if any.
    pub fn voting_state(&self) -> Option<VotingState> {
        let bytes = self.state_keyspace.get(VOTING_KEY).ok()??;
        postcard::from_bytes(&bytes)
            .or_else(|_| postcard::from_bytes::<VotingStateV1>(&bytes).map(VotingState::from))
            .ok()
    }

    /// Keeps `bytes` as evidence of misbehaviour under `key` (e.g. a member's attestation
    /// that contradicts a commit).
    pub fn keep_evidence(&self, key: &[u8], bytes: &[u8]) -> Result<(), LogError> {
        self.evidence.insert(key, bytes)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// How many pieces of evidence the log keeps.
    pub fn evidence_count(&self) -> usize {
        self.evidence.iter().count()
    }
}

/// How a replay treats an entry that breaks the rules.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnInvalid {
    /// The whole batch is refused (a member checking a proposal).
    Refuse,
    /// The entry is left out (a proposer choosing its batch), up to the batch limits.
    Skip,
}

/// Pushes `entries` on the tree to compute the size and root they produce, and takes them off
/// again; every entry is checked as replication checks it, plus the consensus rules. Returns
/// the offsets of the entries kept (all of them, unless `on_invalid` skips).
fn replay(
    state: &mut State,
    entries: &[&[u8]],
    on_invalid: OnInvalid,
) -> Result<(Vec<usize>, u64, Hash), LogError> {
    let have = state.tree.size();
    let final_size = state.latest.as_ref().map_or(0, |c| c.checkpoint.size);
    if have != final_size {
        return Err(LogError::Corrupt(
            "entries past the final checkpoint".into(),
        ));
    }
    let mut members = state.members.clone();
    let mut rules = BatchRules::default();
    let mut kept = Vec::new();
    let mut bytes_kept = 0;
    let result = (|| {
        for (offset, bytes) in entries.iter().enumerate() {
            if on_invalid == OnInvalid::Skip
                && (kept.len() >= MAX_BATCH_ENTRIES || bytes_kept + bytes.len() > MAX_BATCH_BYTES)
            {
                break;
            }
            let index = have + kept.len() as u64;
            let checked = rules
                .check(&View(state), &mut members, index, bytes)
                .map_err(|e| LogError::Refused(format!("entry {index}: {e}")));
            match checked {
                Ok(()) => {
                    state.tree.push(bytes);
                    kept.push(offset);
                    bytes_kept += bytes.len();
                }
                Err(e) if on_invalid == OnInvalid::Refuse => return Err(e),
                Err(_) => {}
            }
        }
        let size = state.tree.size();
        state
            .tree
            .root(size)
            .map(|root| (size, root))
            .map_err(|e| LogError::Corrupt(e.to_string()))
    })();
    state.tree.truncate(have);
    result.map(|(size, root)| (kept, size, root))
}

#[cfg(test)]
mod tests;
