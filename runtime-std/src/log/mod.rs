//! The node's copy of the transparency log, persisted in fjall: entries by index, the latest
//! final checkpoint, and the last checkpoint this node signed (so it never signs two roots for
//! one size, or a tree that does not extend the last one, even across restarts).
//!
//! Conflicting quorum-signed checkpoints are kept as evidence. Only entries under the latest
//! final checkpoint are visible. A crash between appending
//! entries and signing their checkpoint leaves entries past it; they were never final, so
//! opening the log drops them (PROTOCOL case 28) and their work is redone.

mod commit;
pub mod follow;
pub mod key;
mod member;
mod package_tags;
mod package_verifier;
mod rebuilds;
mod replica;
mod tables;
mod verifier;

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use fjall::PersistMode;
use pyrsia_core::digest::Digest;
use pyrsia_core::identity::{KeyId, SecretKey};
use pyrsia_core::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};
use pyrsia_core::tlog::state::LogState;
use pyrsia_core::tlog::{Hash, ProofError};

use crate::reopen::Reopenable;

use tables::LogTables;

pub use commit::{DockerCommit, Outcome, PackageCommit};
pub use package_tags::PackageTags;
pub use package_verifier::{PackageJob, PackageSources};
pub use rebuilds::RebuildRecord;
pub use replica::{Applied, MAX_ENTRIES_PER_APPLY};
pub(crate) use verifier::{BuildSource, Verified, verify};
pub use verifier::{VerificationQueue, VerifyJob};

/// Why the log could not be opened or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// fjall failed.
    Database(fjall::Error),
    /// The stored log is inconsistent with itself or with the genesis given.
    Corrupt(String),
    /// This node cannot append alone: the network has other members (consensus decides).
    NotSoleMember,
    /// The entry is refused (decoding, duplicate commit).
    Refused(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Database(e) => write!(f, "log database: {e}"),
            LogError::Corrupt(why) => write!(f, "log is inconsistent: {why}"),
            LogError::NotSoleMember => {
                f.write_str("this node is not the only member; it cannot commit alone")
            }
            LogError::Refused(why) => write!(f, "entry refused: {why}"),
        }
    }
}

impl std::error::Error for LogError {}

impl From<fjall::Error> for LogError {
    fn from(e: fjall::Error) -> Self {
        LogError::Database(e)
    }
}

const SIGNED_KEY: &[u8] = b"last-signed";

/// The transparency log as this node holds it. Share it with an `Arc`.
pub struct Log {
    tables: Reopenable<LogTables>,
    key: SecretKey,
    state: Mutex<LogState>,
}

impl Log {
    /// Opens the log in `data_dir/log`. A new log starts from `genesis` (the entry bytes of a
    /// `--genesis` file) or, without one, from a single-member genesis of this node's key:
    /// a standalone network with n = 1, f = 0. An existing log must match `genesis`.
    pub fn open(
        data_dir: &Path,
        key: SecretKey,
        genesis: Option<Vec<u8>>,
        now_secs: u64,
    ) -> Result<Log, LogError> {
        let tables = Reopenable::<LogTables>::open(data_dir.join("log"))?;
        let t = tables.get()?;
        let latest = match t.checkpoints.last_key_value() {
            Some(guard) => {
                let (_, value) = guard.into_inner()?;
                let text = std::str::from_utf8(&value)
                    .map_err(|_| LogError::Corrupt("checkpoint is not text".into()))?;
                Some(
                    SignedCheckpoint::parse(text)
                        .map_err(|e| LogError::Corrupt(format!("checkpoint: {e}")))?,
                )
            }
            None => None,
        };
        let final_size = latest.as_ref().map_or(0, |c| c.checkpoint.size);
        let mut stored = Vec::new();
        for guard in t.entries.iter() {
            let (k, value) = guard.into_inner()?;
            let index = u64::from_be_bytes(
                k[..]
                    .try_into()
                    .map_err(|_| LogError::Corrupt("entry key".into()))?,
            );
            if index >= final_size {
                tracing::warn!(
                    index,
                    final_size,
                    "dropping a log entry appended after the last final checkpoint (crash before signing)"
                );
                t.entries.remove(k)?;
                continue;
            }
            if index != stored.len() as u64 {
                return Err(LogError::Corrupt(format!("entry {index} out of order")));
            }
            stored.push(value.to_vec());
        }
        if (stored.len() as u64) < final_size {
            return Err(LogError::Corrupt(format!(
                "{} entries stored, checkpoint covers {final_size}",
                stored.len()
            )));
        }
        t.db.persist(PersistMode::SyncAll)?;
        drop(t);

        let genesis_bytes = match (stored.first(), genesis) {
            (Some(first), Some(given)) if *first != given => {
                return Err(LogError::Corrupt(
                    "the data dir holds another network's log than --genesis names".into(),
                ));
            }
            (Some(first), _) => first.clone(),
            (None, Some(given)) => given,
            (None, None) => single_member_genesis(&key, now_secs),
        };
        let mut state = LogState::new(genesis_bytes.clone())
            .map_err(|e| LogError::Corrupt(format!("genesis: {e}")))?;
        for (i, bytes) in stored.iter().enumerate() {
            state
                .append_trusted(bytes)
                .map_err(|e| LogError::Corrupt(format!("entry {i}: {e}")))?;
        }
        if let Some(latest) = latest {
            let root = state.tree().root(latest.checkpoint.size).ok();
            if root != Some(latest.checkpoint.root) {
                return Err(LogError::Corrupt(
                    "checkpoint root does not match the entries".into(),
                ));
            }
            state.set_latest(latest);
        }
        let log = Log {
            tables,
            key,
            state: Mutex::new(state),
        };
        if stored.is_empty() {
            let mut state = log.lock();
            if log.is_sole_member_locked(&state) {
                log.append_locked(&mut state, vec![genesis_bytes], now_secs)?;
            } else {
                tracing::info!("joined a multi-member network; waiting for its log");
            }
        }
        Ok(log)
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // Every mutation completes before the lock is released or fails before changing the
        // state, so a poisoned lock still guards a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_sole_member_locked(&self, state: &LogState) -> bool {
        state.members().len() == 1 && state.members().contains(&self.key.public())
    }

    /// Whether this node is the network's only member (it commits and signs alone).
    pub fn is_sole_member(&self) -> bool {
        self.is_sole_member_locked(&self.lock())
    }

    /// This node's key id.
    pub fn key_id(&self) -> KeyId {
        self.key.public().key_id()
    }

    /// The log's name.
    pub fn origin(&self) -> String {
        self.lock().origin().to_string()
    }

    /// The genesis entry's bytes (what `--genesis` files hold).
    pub fn genesis(&self) -> Vec<u8> {
        self.lock().genesis().to_vec()
    }

    /// The latest final checkpoint.
    pub fn checkpoint(&self) -> Option<SignedCheckpoint> {
        self.lock().latest().cloned()
    }

    /// Number of final entries.
    pub fn size(&self) -> u64 {
        self.lock().final_size()
    }

    /// The bytes of final entry `index`.
    pub fn entry(&self, index: u64) -> Option<Vec<u8>> {
        if index >= self.size() {
            return None;
        }
        let t = self.tables.get().ok()?;
        Some(t.entries.get(index.to_be_bytes()).ok()??.to_vec())
    }

    /// Up to `count` final entries from `start` on (fewer at the end of the log), at most
    /// `limit_bytes` of them in total but always at least one: what a peer asks for to catch up.
    pub fn entries(&self, start: u64, count: u64, limit_bytes: usize) -> Vec<Vec<u8>> {
        let end = self.size().min(start.saturating_add(count));
        let mut out = Vec::new();
        let Ok(t) = self.tables.get() else {
            return out;
        };
        let mut total = 0;
        for index in start..end {
            let Some(bytes) = t.entries.get(index.to_be_bytes()).ok().flatten() else {
                break;
            };
            total += bytes.len();
            if total > limit_bytes && !out.is_empty() {
                break;
            }
            out.push(bytes.to_vec());
        }
        out
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.lock();
        if size > state.final_size() {
            return Err(ProofError::IndexOutOfRange);
        }
        state.tree().inclusion_proof(index, size)
    }

    /// The consistency proof from the tree of `from` entries to the tree of `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, ProofError> {
        let state = self.lock();
        if to > state.final_size() {
            return Err(ProofError::IndexOutOfRange);
        }
        state.tree().consistency_proof(from, to)
    }

    /// The index of the `Commit` of `name` (e.g. `docker.io/library/alpine`) at `version`.
    pub fn find_commit(&self, name: &str, version: &str) -> Option<u64> {
        self.lock().index().commit(name, version)
    }

    /// Whether the `Commit` of `subject` (an image name, or a package's
    /// [`subject`](pyrsia_core::tlog::coordinates::subject)) at `version` lists `digest` among
    /// its outputs: what `--verified-only` serves a package file by.
    pub fn commit_lists(&self, subject: &str, version: &str, digest: &Digest) -> bool {
        self.commit_outputs(subject, version)
            .is_some_and(|outputs| outputs.contains(digest))
    }

    /// The outputs of the `Commit` of `subject` at `version`, if committed.
    pub fn commit_outputs(&self, subject: &str, version: &str) -> Option<Vec<Digest>> {
        let bytes = self.entry(self.find_commit(subject, version)?)?;
        match Entry::decode(&bytes) {
            Ok(Entry::Commit(c)) => Some(c.statement.outputs.iter().collect()),
            _ => None,
        }
    }

    /// The latest `TagObservation` of `name:tag`: its index and the digest it recorded.
    pub fn find_tag(&self, name: &str, tag: &str) -> Option<(u64, Digest)> {
        self.lock().index().tag(name, tag)
    }

    /// The versions of `subject` the log committed (in the index's order).
    pub fn committed_versions(&self, subject: &str) -> Vec<String> {
        self.lock()
            .index()
            .committed_versions(subject)
            .map(str::to_string)
            .collect()
    }

    /// The tags of package `subject` the log observed, each with the version its latest
    /// observation names (the version whose commit is its tag target): what a
    /// `--verified-only` node sets a packument's dist-tags to.
    pub fn package_tags(&self, subject: &str) -> Vec<(String, String)> {
        let state = self.lock();
        let index = state.index();
        index
            .tags_of(subject)
            .filter_map(|(tag, digest)| {
                let (_, version) = index.tagged(subject, &digest)?;
                Some((tag.to_string(), version.to_string()))
            })
            .collect()
    }

    /// The version of `subject` whose commit is the tag target `digest`, and the commit's
    /// index: what a package tag observation names.
    pub fn find_tagged(&self, subject: &str, digest: &Digest) -> Option<(u64, String)> {
        let state = self.lock();
        let (index, version) = state.index().tagged(subject, digest)?;
        Some((index, version.to_string()))
    }

    /// Whether `digest` is an output of some commit: what `--verified-only` serves.
    pub fn is_committed(&self, digest: &Digest) -> bool {
        self.lock().index().committing(digest).is_some()
    }

    /// The index of the first `Commit` listing `digest` among its outputs (a child manifest
    /// or a blob is committed as part of its image).
    pub fn find_output(&self, digest: &Digest) -> Option<u64> {
        self.lock().index().committing(digest)
    }

    /// The log index of the membership change (`AddMember`/`RemoveMember`) that starts
    /// `epoch`, if the log has one.
    pub fn membership_change(&self, epoch: u64) -> Option<u64> {
        self.lock().index().membership(epoch)
    }

    /// The piece root a commit lists for `digest` (blobs larger than one piece).
    pub fn piece_root(&self, digest: &Digest) -> Option<Hash> {
        self.lock().index().piece_root(digest)
    }

    /// Indices of every entry about `name`, oldest first.
    pub fn history(&self, name: &str) -> Vec<u64> {
        self.lock().index().history(name).to_vec()
    }

    /// Appends `new` entries and signs their checkpoint; only a sole member may. Entries are
    /// durable before the checkpoint is signed, and the checkpoint before it is announced.
    fn append_locked(
        &self,
        state: &mut LogState,
        new: Vec<Vec<u8>>,
        now_secs: u64,
    ) -> Result<SignedCheckpoint, LogError> {
        if !self.is_sole_member_locked(state) {
            return Err(LogError::NotSoleMember);
        }
        let first = state.tree().size();
        for bytes in &new {
            Entry::decode(bytes).map_err(|e| LogError::Refused(e.to_string()))?;
        }
        let t = self.tables.get()?;
        let mut batch = t.db.batch();
        for (offset, bytes) in new.iter().enumerate() {
            batch.insert(&t.entries, (first + offset as u64).to_be_bytes(), bytes);
        }
        batch.commit()?;
        t.db.persist(PersistMode::SyncAll)?;
        drop(t);
        for bytes in &new {
            state
                .append_trusted(bytes)
                .map_err(|e| LogError::Refused(e.to_string()))?;
        }
        self.sign_locked(state, now_secs)
    }

    /// Signs the current tree with a fresh timestamp (same size and root when nothing was
    /// appended: a heartbeat that keeps light clients' freshness checks passing).
    fn sign_locked(
        &self,
        state: &mut LogState,
        now_secs: u64,
    ) -> Result<SignedCheckpoint, LogError> {
        let size = state.tree().size();
        let root = state
            .tree()
            .root(size)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        if let Some(previous) = self.last_signed()? {
            let old = &previous.checkpoint;
            let extends = size >= old.size && state.tree().root(old.size).ok() == Some(old.root);
            if !extends {
                return Err(LogError::Corrupt(format!(
                    "refusing to sign size {size}: it does not extend the checkpoint this node signed at size {}",
                    old.size
                )));
            }
        }
        let checkpoint = Checkpoint::new(state.origin(), size, root, now_secs)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        note.add(checkpoint.sign(&self.key))
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        let text = note.to_string();
        let t = self.tables.get()?;
        let mut batch = t.db.batch();
        batch.insert(&t.state, SIGNED_KEY, text.as_bytes());
        batch.insert(&t.checkpoints, size.to_be_bytes(), text.as_bytes());
        batch.commit()?;
        t.db.persist(PersistMode::SyncAll)?;
        state.set_latest(note.clone());
        Ok(note)
    }

    fn last_signed(&self) -> Result<Option<SignedCheckpoint>, LogError> {
        let Some(bytes) = self.tables.get()?.state.get(SIGNED_KEY)? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| LogError::Corrupt("last signed checkpoint is not text".into()))?;
        SignedCheckpoint::parse(text)
            .map(Some)
            .map_err(|e| LogError::Corrupt(format!("last signed checkpoint: {e}")))
    }

    /// Re-signs the latest checkpoint with the current time when it is older than
    /// `max_age_secs` (sole member only). Call it periodically.
    pub fn refresh(&self, now_secs: u64, max_age_secs: u64) -> Result<(), LogError> {
        let mut state = self.lock();
        if !self.is_sole_member_locked(&state) {
            return Ok(());
        }
        let age = state.latest().map_or(u64::MAX, |c| {
            now_secs.saturating_sub(c.checkpoint.timestamp)
        });
        if age >= max_age_secs {
            self.sign_locked(&mut state, now_secs)?;
        }
        Ok(())
    }

    /// Appends entries without signing, as a crash right after the append would leave them.
    #[cfg(test)]
    fn append_unsigned_for_test(&self, new: Vec<Vec<u8>>) -> Result<(), LogError> {
        let state = self.lock();
        let first = state.tree().size();
        let t = self.tables.get()?;
        for (offset, bytes) in new.iter().enumerate() {
            t.entries
                .insert((first + offset as u64).to_be_bytes(), bytes)?;
        }
        t.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

/// A genesis whose only member is `key`: n = 1, f = 0. Its origin names the key, so two
/// standalone nodes never confuse their logs.
fn single_member_genesis(key: &SecretKey, now_secs: u64) -> Vec<u8> {
    let public = key.public().to_bytes();
    let origin = format!("pyrsia/standalone/{}", key.public().key_id());
    Entry::Genesis(Genesis {
        origin: &origin,
        faults: 0,
        members: KeyList(&public),
        created: now_secs,
    })
    .encode()
}

#[cfg(test)]
mod catch_up_tests;
#[cfg(test)]
mod tests;
