//! The node's content store: blobs and manifests as content-addressed files under
//! `blobs/sha256/<hex>`, and their metadata (sizes, kinds, last access, tag observations) in
//! fjall.
//!
//! Invariant: a file exists under a digest's name only after its bytes were hashed to that
//! digest. Bytes are written to `tmp/`, checked, fsynced and renamed into place; a crash at any
//! moment leaves either nothing or the whole verified blob under the digest name, and `tmp/` is
//! emptied on the next start.

mod index;
mod meta;
mod scrub;
mod space;
mod tables;
mod writer;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use fjall::PersistMode;
use pyrsia_core::digest::Digest;

use index::Index;
use tables::StoreTables;

use crate::reopen::Reopenable;
pub use index::StoreStats;
pub use meta::{BlobKind, BlobRecord, StoredMediaType, TagObservation, tag_key};
pub use scrub::{FIRST_PASS_AFTER, Pace, ScrubConfig, ScrubOutcome};
pub use space::{FREE_SPACE_CHECK_EVERY, MIN_FREE_RESERVE, free_space_reserve};
pub use writer::{BlobWriter, VerifiedBlob};

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// A filesystem error (disk full, permissions, ...).
    Io(io::Error),
    /// The metadata database failed a write; it refuses writes until it is reopened
    /// ([`Store::recover_if_poisoned`]).
    Database(fjall::Error),
    /// The bytes do not hash to the digest they were written under; nothing was stored.
    Mismatch {
        /// The digest the bytes were supposed to have.
        expected: Digest,
        /// The digest they have.
        actual: Digest,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "store I/O error: {e}"),
            StoreError::Database(e) => write!(f, "store metadata error: {e}"),
            StoreError::Mismatch { expected, actual } => {
                write!(
                    f,
                    "content does not match its digest: expected {expected}, got {actual}"
                )
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Database(e)
    }
}

/// A handle to the store; cheap to clone and share between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    tables: Reopenable<StoreTables>,
    index: Mutex<Index>,
    watchers: Mutex<Vec<mpsc::Sender<StoreEvent>>>,
    /// Bytes downloads hold in `tmp/` (counted against `--max-disk`).
    in_flight: std::sync::atomic::AtomicU64,
}

/// A change to what the store holds, for whoever announces content (the P2P network).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A verified blob is now stored.
    Stored(Digest),
    /// A blob is no longer held (evicted, or quarantined by the scrubber).
    Evicted(Digest),
    /// A download of a blob started: its bytes are served to peers as they arrive.
    Receiving(Digest),
    /// A download failed: nothing of it is held any more.
    Abandoned(Digest),
}

/// A stored blob opened for reading. While it is alive the blob is pinned: eviction skips it.
pub struct StoredBlob {
    /// The open file, positioned at the start.
    pub file: File,
    /// Its record (size, kind).
    pub record: BlobRecord,
    _pin: Pin,
}

struct Pin {
    store: Store,
    digest: Digest,
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.store.index().unpin(&self.digest);
    }
}

/// Milliseconds since the Unix epoch, for LRU order and observation times.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Store {
    /// Opens (or creates) the store in `root`, recovers from any crash (removes partial
    /// downloads, reconciles files and records), and keeps its size under `max_bytes` by
    /// evicting least-recently-used blobs.
    pub fn open(root: &Path, max_bytes: Option<u64>) -> Result<Store, StoreError> {
        fs::create_dir_all(root.join("blobs/sha256"))?;
        fs::create_dir_all(root.join("tmp"))?;
        for entry in fs::read_dir(root.join("tmp"))? {
            let path = entry?.path();
            tracing::info!(path = %path.display(), "removing partial download left by a previous run");
            fs::remove_file(&path)?;
        }
        let tables = Reopenable::<StoreTables>::open(root.join("meta"))?;
        let t = tables.get()?;
        let index = Index::recover(root, &t.blobs, max_bytes)?;
        t.db.persist(PersistMode::SyncAll)?;
        drop(t);
        let store = Store {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                tables,
                index: Mutex::new(index),
                watchers: Mutex::new(Vec::new()),
                in_flight: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        store.evict_over_budget(None)?;
        Ok(store)
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic while holding the lock leaves the index consistent (every mutation is a
        // single step), so a poisoned lock is safe to keep using.
        self.inner.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events for every blob stored or evicted from now on.
    pub fn watch(&self) -> mpsc::Receiver<StoreEvent> {
        let (sender, receiver) = mpsc::channel();
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sender);
        receiver
    }

    /// Tells the watchers that a download of `digest` started (`true`) or failed (`false`),
    /// so that the network announces, or stops announcing, the pieces it serves meanwhile.
    pub fn announce_download(&self, digest: Digest, started: bool) {
        self.notify(if started {
            StoreEvent::Receiving(digest)
        } else {
            StoreEvent::Abandoned(digest)
        });
    }

    fn notify(&self, event: StoreEvent) {
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| w.send(event).is_ok());
    }

    /// Every digest stored now.
    pub fn digests(&self) -> Vec<Digest> {
        self.index().digests()
    }

    /// The path a verified blob lives at.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.inner.root, digest)
    }

    /// The record of a stored blob, if present.
    pub fn record(&self, digest: &Digest) -> Option<BlobRecord> {
        self.index().get(digest)
    }

    /// Opens a stored blob for reading, pins it against eviction and marks it recently used.
    pub fn open_blob(&self, digest: &Digest) -> Option<StoredBlob> {
        let record = self.index().touch_and_pin(digest, now_ms())?;
        let pin = Pin {
            store: self.clone(),
            digest: *digest,
        };
        match File::open(self.blob_path(digest)) {
            Ok(file) => {
                self.persist_record_lazily(digest, &record);
                Some(StoredBlob {
                    file,
                    record,
                    _pin: pin,
                })
            }
            Err(e) => {
                tracing::warn!(%digest, error = %e, "stored blob vanished; forgetting it");
                drop(pin);
                self.forget(digest);
                None
            }
        }
    }

    /// Starts writing a blob that must hash to `expected`; see [`BlobWriter::commit`].
    pub fn writer(&self, expected: Digest, kind: BlobKind) -> Result<BlobWriter, StoreError> {
        BlobWriter::create(self.clone(), expected, kind)
    }

    /// Starts writing a blob whose sha256 is not known in advance; the caller checks the
    /// bytes its own way and then calls [`BlobWriter::commit_computed`].
    pub fn writer_computing(&self, kind: BlobKind) -> Result<BlobWriter, StoreError> {
        // The placeholder only names the temp file; the digest stored under is computed.
        BlobWriter::create(self.clone(), Digest::sha256(b""), kind)
    }

    /// Stores small content held in memory (a manifest) under `expected`.
    pub fn put_bytes(
        &self,
        expected: Digest,
        bytes: &[u8],
        kind: BlobKind,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer(expected, kind)?;
        io::Write::write_all(&mut writer, bytes)?;
        writer.commit()
    }

    /// Records that a verified file is now at its digest's path: called by [`BlobWriter`].
    fn admit(&self, digest: Digest, record: BlobRecord) -> Result<(), StoreError> {
        let t = self.inner.tables.get()?;
        t.blobs.insert(
            digest.as_bytes(),
            postcard::to_stdvec(&record).unwrap_or_default(),
        )?;
        t.db.persist(PersistMode::SyncAll)?;
        drop(t);
        self.index().insert(digest, record);
        self.notify(StoreEvent::Stored(digest));
        self.evict_over_budget(Some(digest))
    }

    /// Changes a stored blob's kind (a blob adopted after a crash, later requested as a manifest).
    pub fn set_kind(&self, digest: &Digest, kind: BlobKind) -> Result<(), StoreError> {
        if let Some(mut record) = self.record(digest) {
            record.kind = kind;
            self.inner.tables.get()?.blobs.insert(
                digest.as_bytes(),
                postcard::to_stdvec(&record).unwrap_or_default(),
            )?;
            self.index().insert(*digest, record);
        }
        Ok(())
    }

    fn persist_record_lazily(&self, digest: &Digest, record: &BlobRecord) {
        // Last-access times steer eviction only; losing the latest on a crash is harmless, so
        // they reach fjall's buffers now and disk with the next synced write.
        if let Ok(bytes) = postcard::to_stdvec(record)
            && let Err(e) =
                (self.inner.tables.get()).and_then(|t| t.blobs.insert(digest.as_bytes(), bytes))
        {
            tracing::warn!(%digest, error = %e, "could not record blob access");
        }
    }

    fn forget(&self, digest: &Digest) {
        self.index().remove(digest);
        if let Err(e) = (self.inner.tables.get()).and_then(|t| t.blobs.remove(digest.as_bytes())) {
            tracing::warn!(%digest, error = %e, "could not remove blob record");
        }
    }

    /// Evicts least-recently-used, unpinned blobs until the store fits its budget. `keep` is
    /// never evicted (the blob just admitted).
    fn evict_over_budget(&self, keep: Option<Digest>) -> Result<(), StoreError> {
        let victims = self.index().evict_over_budget(keep);
        for (digest, record) in victims {
            tracing::info!(%digest, size = record.size, "evicting least recently used blob");
            match fs::remove_file(self.blob_path(&digest)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.inner.tables.get()?.blobs.remove(digest.as_bytes())?;
            self.notify(StoreEvent::Evicted(digest));
        }
        Ok(())
    }

    /// Records a tag observation durably (fsynced before it is relied on).
    pub fn record_tag(&self, key: &str, observation: TagObservation) -> Result<(), StoreError> {
        let t = self.inner.tables.get()?;
        t.tags.insert(
            key.as_bytes(),
            postcard::to_stdvec(&observation).unwrap_or_default(),
        )?;
        t.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// The latest observation of a tag (see [`tag_key`]).
    pub fn tag(&self, key: &str) -> Option<TagObservation> {
        let bytes = self
            .inner
            .tables
            .get()
            .ok()?
            .tags
            .get(key.as_bytes())
            .ok()??;
        postcard::from_bytes(&bytes).ok()
    }

    /// Tags observed for a repository, sorted: the offline answer to `tags/list`.
    pub fn observed_tags(&self, host: &str, repository: &str) -> Vec<String> {
        let prefix = format!("{host}/{repository}:");
        let Ok(t) = self.inner.tables.get() else {
            return Vec::new();
        };
        let mut tags: Vec<String> = t
            .tags
            .prefix(prefix.as_bytes())
            .filter_map(|guard| guard.key().ok())
            .filter_map(|key| String::from_utf8(key[prefix.len()..].to_vec()).ok())
            .collect();
        tags.sort();
        tags
    }

    /// Every observation key that starts with `prefix`, without it: what a frontend that keeps
    /// its own mutable names there (PyPI project pages) has recorded.
    pub fn tag_keys(&self, prefix: &str) -> Vec<String> {
        let Ok(t) = self.inner.tables.get() else {
            return Vec::new();
        };
        t.tags
            .prefix(prefix.as_bytes())
            .filter_map(|guard| guard.key().ok())
            .filter_map(|key| String::from_utf8(key[prefix.len()..].to_vec()).ok())
            .collect()
    }

    /// Counts and sizes, for `pyrsia status` and metrics.
    pub fn stats(&self) -> StoreStats {
        self.index().stats()
    }

    fn temp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }
}

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs/sha256").join(digest.hex().as_str())
}

#[cfg(test)]
mod tests;
