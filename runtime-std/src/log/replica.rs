//! Taking in another node's checkpoint and the entries it covers: how a node that does not
//! sign alone (a follower of a network, or a member re-syncing after a crash) gets the log.
//! Nothing is stored until the checkpoint has a quorum of the epoch's members, every new entry
//! decodes and obeys the log's rules, and the entries hash to the checkpoint's root.

use fjall::PersistMode;
use pyrsia_core::consensus::evidence::{RequestBinding, check_dispute};
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::entry::{Entry, MembershipOp};

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

/// One replicated entry: decodes; entry 0 is this log's genesis and no other entry is a
/// genesis; commits carry f+1 valid attestations of the epoch; disputes and unverifiable
/// verdicts carry the evidence `core::consensus::evidence` asks for, about an open request;
/// membership changes carry a quorum of signatures of the previous epoch (and move `members`
/// to the next).
pub(super) fn check_entry(
    state: &State,
    members: &mut pyrsia_core::members::MemberSet,
    index: u64,
    bytes: &[u8],
) -> Result<(), LogError> {
    let refuse = |why: String| LogError::Refused(format!("entry {index}: {why}"));
    let entry = Entry::decode(bytes).map_err(|e| refuse(e.to_string()))?;
    match entry {
        Entry::Genesis(_) if index == 0 && bytes == state.genesis.as_slice() => Ok(()),
        Entry::Genesis(_) => Err(refuse("unexpected genesis".into())),
        _ if index == 0 => Err(refuse("entry 0 is not this network's genesis".into())),
        Entry::Commit(commit) => {
            let attesters = members.attesters(&commit);
            if commit.statement.epoch != members.epoch() || attesters < members.commit_threshold() {
                return Err(refuse(format!(
                    "commit has {attesters} valid attestations of epoch {}, {} needed",
                    members.epoch(),
                    members.commit_threshold()
                )));
            }
            if state
                .index
                .commit(
                    commit.statement.coordinates.name,
                    commit.statement.coordinates.version,
                )
                .is_some()
            {
                return Err(refuse("duplicate commit of committed coordinates".into()));
            }
            Ok(())
        }
        Entry::Dispute(dispute) | Entry::Unverifiable(dispute) => {
            let unverifiable = matches!(entry, Entry::Unverifiable(_));
            let (name, version) = (dispute.coordinates.name, dispute.coordinates.version);
            if state.index.request(name, version) != Some(dispute.request_index) {
                return Err(refuse("dispute of no such request".into()));
            }
            if state.index.commit(name, version).is_some()
                || state.index.dispute(name, version).is_some_and(|(_, u)| u)
            {
                return Err(refuse("dispute of a settled request".into()));
            }
            let selection_size = dispute.request_index + 1;
            let selection_root = state
                .tree
                .root(selection_size)
                .map_err(|e| refuse(e.to_string()))?;
            let request = RequestBinding {
                request_index: dispute.request_index,
                coordinates: dispute.coordinates,
                selection_size,
                selection_root,
            };
            check_dispute(members, &request, dispute.evidence, unverifiable)
                .map_err(|e| refuse(e.to_string()))
        }
        Entry::AddMember(change) | Entry::RemoveMember(change) => {
            let op = if matches!(entry, Entry::AddMember(_)) {
                MembershipOp::Add
            } else {
                MembershipOp::Remove
            };
            *members = members
                .apply(&state.origin, op, &change)
                .map_err(|e| refuse(e.to_string()))?;
            Ok(())
        }
        _ => Ok(()),
    }
}
