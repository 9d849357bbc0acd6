//! The log's fjall database and keyspaces, opened together so that they can be reopened
//! after a failed write poisoned them (see [`crate::reopen`]).

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use pyrsia_core::tlog::state::LogState;

use super::{Log, LogError};
use crate::reopen::Tables;
use crate::store::MIN_FREE_RESERVE;

/// The log's database: entries by index, quorum-signed checkpoints by size, this node's own
/// state (what it signed and how it voted) and evidence of misbehaviour.
pub(super) struct LogTables {
    pub(super) db: Database,
    pub(super) entries: Keyspace,
    pub(super) checkpoints: Keyspace,
    pub(super) state: Keyspace,
    pub(super) evidence: Keyspace,
}

impl Tables for LogTables {
    fn open(path: &Path) -> fjall::Result<Self> {
        let db = Database::builder(path).open()?;
        Ok(LogTables {
            entries: db.keyspace("entries", KeyspaceCreateOptions::default)?,
            checkpoints: db.keyspace("checkpoints", KeyspaceCreateOptions::default)?,
            state: db.keyspace("state", KeyspaceCreateOptions::default)?,
            evidence: db.keyspace("evidence", KeyspaceCreateOptions::default)?,
            db,
        })
    }

    fn database(&self) -> &Database {
        &self.db
    }
}

impl Log {
    /// Reopens the log's database if a failed write poisoned it and the disk has room again
    /// (at least [`MIN_FREE_RESERVE`] free). Returns whether it did. Call it periodically.
    ///
    /// Every write reaches the disk before the memory is changed, so the memory never holds
    /// more than the disk. A failed write may still have left entries or a checkpoint on the
    /// disk that the memory does not hold; they are removed, as a restart would drop them.
    /// A record of what this node signed is kept (refusing more is the safe side).
    pub fn recover_if_poisoned(&self) -> Result<bool, LogError> {
        let state = self.lock();
        if !self.tables.reopen_if_poisoned(MIN_FREE_RESERVE)? {
            return Ok(false);
        }
        self.drop_what_memory_lacks(&state)?;
        tracing::info!(
            size = state.final_size(),
            "the log database failed a write and was reopened; the log writes again"
        );
        Ok(true)
    }

    /// Whether the log's database refuses writes now (a failed write poisoned it).
    pub fn is_poisoned(&self) -> bool {
        self.tables.is_poisoned()
    }

    fn drop_what_memory_lacks(&self, state: &LogState) -> Result<(), LogError> {
        let t = self.tables.get()?;
        let held = state.tree().size();
        let final_size = state.final_size();
        for guard in t.entries.range(held.to_be_bytes()..) {
            let key = guard.key()?;
            t.entries.remove(key)?;
        }
        for guard in t.checkpoints.range((final_size + 1).to_be_bytes()..) {
            let key = guard.key()?;
            t.checkpoints.remove(key)?;
        }
        t.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}
