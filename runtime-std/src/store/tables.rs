//! The store's fjall database and keyspaces, opened together so that they can be reopened
//! after a failed write poisoned them (see [`crate::reopen`]).

use std::collections::HashSet;
use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{MIN_FREE_RESERVE, Store, StoreError};
use crate::reopen::Tables;

/// The store's metadata: blob records by digest and tag observations by name.
pub(super) struct StoreTables {
    pub(super) db: Database,
    pub(super) blobs: Keyspace,
    pub(super) tags: Keyspace,
}

impl Tables for StoreTables {
    fn open(path: &Path) -> fjall::Result<Self> {
        let db = Database::builder(path).open()?;
        Ok(StoreTables {
            blobs: db.keyspace("blobs", KeyspaceCreateOptions::default)?,
            tags: db.keyspace("tags", KeyspaceCreateOptions::default)?,
            db,
        })
    }

    fn database(&self) -> &Database {
        &self.db
    }
}

impl Store {
    /// Reopens the store's metadata database if a failed write poisoned it and the disk has
    /// room again (at least [`MIN_FREE_RESERVE`] free). Returns whether it did. Call it
    /// periodically.
    ///
    /// The in-memory index is what the store serves from; after a reopen the records on disk
    /// are made to match it (a failed write may have reached the disk or not).
    pub fn recover_if_poisoned(&self) -> Result<bool, StoreError> {
        // The index lock orders record writes against this rewrite.
        let index = self.index();
        if !self.inner.tables.reopen_if_poisoned(MIN_FREE_RESERVE)? {
            return Ok(false);
        }
        let t = self.inner.tables.get()?;
        let held = index.digests();
        let keys: HashSet<&[u8]> = held.iter().map(|d| d.as_bytes().as_slice()).collect();
        for guard in t.blobs.iter() {
            let key = guard.key()?;
            if !keys.contains(&key[..]) {
                t.blobs.remove(key)?;
            }
        }
        for digest in &held {
            if let Some(record) = index.get(digest) {
                t.blobs.insert(
                    digest.as_bytes(),
                    postcard::to_stdvec(&record).unwrap_or_default(),
                )?;
            }
        }
        t.db.persist(PersistMode::SyncAll)?;
        tracing::info!(
            blobs = held.len(),
            "the store's database failed a write and was reopened; the store writes again"
        );
        Ok(true)
    }

    /// Whether the store's metadata database refuses writes now.
    pub fn is_poisoned(&self) -> bool {
        self.inner.tables.is_poisoned()
    }
}
