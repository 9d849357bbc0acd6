//! The in-memory view of what is stored: records by digest, LRU order, pins, total size.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use fjall::Keyspace;
use pyrsia_core::digest::Digest;

use super::meta::{BlobKind, BlobRecord};
use super::{StoreError, blob_path, now_ms};

/// Counts and sizes of the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Blobs and manifests stored.
    pub blobs: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// The configured budget, if any.
    pub max_bytes: Option<u64>,
}

pub(super) struct Index {
    records: HashMap<Digest, BlobRecord>,
    lru: BTreeSet<(u64, Digest)>,
    pins: HashMap<Digest, usize>,
    total_bytes: u64,
    max_bytes: Option<u64>,
}

impl Index {
    /// Loads records from fjall and reconciles them with the files on disk: a record whose
    /// file is gone is dropped; a file without a record (a crash between rename and record)
    /// is adopted, since only verified bytes are ever renamed into place.
    /// Every digest with a record.
    pub(super) fn digests(&self) -> Vec<Digest> {
        self.records.keys().copied().collect()
    }

    pub(super) fn recover(
        root: &Path,
        blobs: &Keyspace,
        max_bytes: Option<u64>,
    ) -> Result<Index, StoreError> {
        let mut index = Index {
            records: HashMap::new(),
            lru: BTreeSet::new(),
            pins: HashMap::new(),
            total_bytes: 0,
            max_bytes,
        };
        for guard in blobs.iter() {
            let (key, value) = guard.into_inner()?;
            let (Ok(bytes), Ok(record)) = (
                <[u8; 32]>::try_from(&key[..]),
                postcard::from_bytes::<BlobRecord>(&value),
            ) else {
                tracing::warn!("dropping an unreadable blob record");
                blobs.remove(key)?;
                continue;
            };
            let digest = Digest::from_sha256_bytes(bytes);
            match fs::metadata(blob_path(root, &digest)) {
                Ok(m) if m.len() == record.size => index.insert(digest, record),
                _ => {
                    tracing::warn!(%digest, "blob record without its file; dropping the record");
                    blobs.remove(key)?;
                }
            }
        }
        for entry in fs::read_dir(root.join("blobs/sha256"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            else {
                continue;
            };
            if index.records.contains_key(&digest) {
                continue;
            }
            let record = BlobRecord {
                size: entry.metadata()?.len(),
                last_access_ms: now_ms(),
                kind: BlobKind::Blob,
            };
            tracing::info!(%digest, "adopting a verified blob whose record was lost in a crash");
            blobs.insert(
                digest.as_bytes(),
                postcard::to_stdvec(&record).unwrap_or_default(),
            )?;
            index.insert(digest, record);
        }
        Ok(index)
    }

    pub(super) fn get(&self, digest: &Digest) -> Option<BlobRecord> {
        self.records.get(digest).copied()
    }

    pub(super) fn insert(&mut self, digest: Digest, record: BlobRecord) {
        if let Some(old) = self.records.insert(digest, record) {
            self.lru.remove(&(old.last_access_ms, digest));
            self.total_bytes -= old.size;
        }
        self.lru.insert((record.last_access_ms, digest));
        self.total_bytes += record.size;
    }

    pub(super) fn remove(&mut self, digest: &Digest) -> Option<BlobRecord> {
        let old = self.records.remove(digest)?;
        self.lru.remove(&(old.last_access_ms, *digest));
        self.total_bytes -= old.size;
        Some(old)
    }

    /// Marks a blob used now and pins it; `None` if it is not stored.
    pub(super) fn touch_and_pin(&mut self, digest: &Digest, now_ms: u64) -> Option<BlobRecord> {
        let mut record = self.get(digest)?;
        record.last_access_ms = record.last_access_ms.max(now_ms);
        self.insert(*digest, record);
        *self.pins.entry(*digest).or_default() += 1;
        Some(record)
    }

    pub(super) fn unpin(&mut self, digest: &Digest) {
        if let Some(count) = self.pins.get_mut(digest) {
            *count -= 1;
            if *count == 0 {
                self.pins.remove(digest);
            }
        }
    }

    /// Removes least-recently-used unpinned records until the total fits the budget and
    /// returns them for their files to be deleted.
    pub(super) fn evict_over_budget(&mut self, keep: Option<Digest>) -> Vec<(Digest, BlobRecord)> {
        let Some(max) = self.max_bytes else {
            return Vec::new();
        };
        let mut victims = Vec::new();
        let candidates: Vec<Digest> = self.lru.iter().map(|(_, d)| *d).collect();
        for digest in candidates {
            if self.total_bytes <= max {
                break;
            }
            if Some(digest) == keep || self.pins.contains_key(&digest) {
                continue;
            }
            if let Some(record) = self.remove(&digest) {
                victims.push((digest, record));
            }
        }
        victims
    }

    /// Removes least-recently-used unpinned records until `extra` more bytes fit the budget
    /// too (room for downloads), and returns them for their files to be deleted.
    pub(super) fn evict_to_fit(&mut self, extra: u64) -> Vec<(Digest, BlobRecord)> {
        let Some(max) = self.max_bytes else {
            return Vec::new();
        };
        let mut victims = Vec::new();
        let candidates: Vec<Digest> = self.lru.iter().map(|(_, d)| *d).collect();
        for digest in candidates {
            if self.total_bytes + extra <= max {
                break;
            }
            if self.pins.contains_key(&digest) {
                continue;
            }
            if let Some(record) = self.remove(&digest) {
                victims.push((digest, record));
            }
        }
        victims
    }

    pub(super) fn stats(&self) -> StoreStats {
        StoreStats {
            blobs: self.records.len() as u64,
            bytes: self.total_bytes,
            max_bytes: self.max_bytes,
        }
    }
}
