//! Writing a blob: bytes go to a temp file while they are hashed; only on a digest match is
//! the file fsynced and renamed under the digest's name.
//!
//! Each slice is hashed by the writing thread right after it went to the page cache, while it
//! is still in this core's cache. A hashing thread of its own (as before) read the bytes from
//! the other core's cache or from memory: on this project's 2-core VM SHA-256 then ran at
//! about 1.1 GB/s instead of 1.75 (BENCHMARKS.md, "Hashing where the bytes are"), and a
//! 16-node swarm spent 0.6–1.0 CPU seconds more.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pyrsia_core::digest::{Digest, Verification, Verifier};

use super::meta::{BlobKind, BlobRecord};
use super::{Store, StoreError, now_ms};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The most bytes one `write` to a temp file carries, on either way in
/// ([`BlobWriter::write_shared`] and `Write`): a piece from a peer (1 MiB) goes to the page
/// cache in slices of this size. Measured on this project's 2-core VM (BENCHMARKS.md,
/// "Page-cache writes in slices"; `pyrsia-bench-p2p page-cache`): sixteen writers at once,
/// each filling a fresh 200 MiB file in 1 MiB `write`s, cost five to eight times the CPU of
/// the same bytes written 512, 256 or 64 KiB at a time (one writer alone saw no difference),
/// and in a 16-node swarm those writes were the largest single cost. Why, we did not
/// establish (two leads, neither checked: the kernel may size its page-cache blocks by the
/// write's length, and this VM may hand freed memory back to its host); smaller writes cost
/// four system calls per piece instead of one.
const PAGE_CACHE_WRITE: usize = 256 << 10;

/// A blob being written. Feed it bytes with [`Write`], then [`BlobWriter::commit`]. Dropped
/// without a successful commit, it removes its temp file: nothing partial stays behind.
pub struct BlobWriter {
    store: Store,
    expected: Digest,
    kind: BlobKind,
    temp_path: PathBuf,
    file: Option<File>,
    verifier: Option<Verifier>,
    written: u64,
    /// Bytes counted against the store's room for downloads, given back when dropped.
    reserved: u64,
    /// `written` when the filesystem's free space was last checked.
    disk_checked_at: Option<u64>,
}

impl BlobWriter {
    pub(super) fn create(
        store: Store,
        expected: Digest,
        kind: BlobKind,
    ) -> Result<Self, StoreError> {
        let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_path = store.temp_dir().join(format!(
            "{}.{}.{unique}.part",
            expected.hex(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)?;
        Ok(BlobWriter {
            store,
            expected,
            kind,
            temp_path,
            file: Some(file),
            verifier: Some(Verifier::new(expected)),
            written: 0,
            reserved: 0,
            disk_checked_at: None,
        })
    }

    /// The temp file, for readers that follow the download as it grows.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the digest; on a match fsyncs, renames into place and records the blob. On a
    /// mismatch the temp file is removed and [`StoreError::Mismatch`] returned.
    pub fn commit(self) -> Result<(), StoreError> {
        self.verify()?.persist()
    }

    /// Checks the digest. On a match the bytes are known good (they may be served) and the
    /// returned [`VerifiedBlob`] can be made durable; on a mismatch the temp file is removed.
    pub fn verify(mut self) -> Result<VerifiedBlob, StoreError> {
        let verifier = self
            .verifier
            .take()
            .ok_or_else(|| io::Error::other("blob writer already verified"))?;
        let size = verifier.bytes_seen();
        if let Verification::Mismatch { actual } = verifier.finish() {
            return Err(StoreError::Mismatch {
                expected: self.expected,
                actual,
            });
        }
        Ok(VerifiedBlob { writer: self, size })
    }
}

impl BlobWriter {
    /// Stores the bytes under the sha256 they hash to, if `accepted` says the caller's own
    /// check of the same bytes held (an npm tarball is named by its sha512 integrity, not by
    /// its sha256); otherwise nothing is stored. Returns the digest. For writers from
    /// [`Store::writer_computing`].
    pub fn commit_computed(mut self, accepted: bool) -> Result<Digest, StoreError> {
        let verifier = self
            .verifier
            .take()
            .ok_or_else(|| io::Error::other("blob writer already verified"))?;
        let size = verifier.bytes_seen();
        let actual = match verifier.finish() {
            Verification::Match => self.expected,
            Verification::Mismatch { actual } => actual,
        };
        if !accepted {
            return Err(StoreError::Io(io::Error::other(
                "the bytes failed their integrity check; nothing stored",
            )));
        }
        self.expected = actual;
        VerifiedBlob { writer: self, size }.persist()?;
        Ok(actual)
    }
}

/// A blob whose bytes matched their digest, still in its temp file. Dropped without
/// [`VerifiedBlob::persist`], the temp file is removed.
pub struct VerifiedBlob {
    writer: BlobWriter,
    size: u64,
}

impl VerifiedBlob {
    /// Fsyncs, renames into place under the digest's name and records the blob.
    pub fn persist(mut self) -> Result<(), StoreError> {
        let w = &mut self.writer;
        let file = w
            .file
            .take()
            .ok_or_else(|| io::Error::other("blob writer already closed"))?;
        file.sync_all()?;
        drop(file);
        let final_path = w.store.blob_path(&w.expected);
        fs::rename(&w.temp_path, &final_path)?;
        if let Some(dir) = final_path.parent() {
            File::open(dir)?.sync_all()?;
        }
        w.temp_path = PathBuf::new();
        // Now stored: counted as a stored blob, no longer as a download.
        w.store.release_download(w.reserved);
        w.reserved = 0;
        w.store.admit(
            w.expected,
            BlobRecord {
                size: self.size,
                last_access_ms: now_ms(),
                kind: w.kind,
            },
        )
    }
}

impl BlobWriter {
    /// Counts `len` more bytes against the store's room for downloads (checking the
    /// filesystem's free space now and then).
    fn reserve(&mut self, len: usize) -> io::Result<()> {
        let check_disk = self
            .disk_checked_at
            .is_none_or(|at| self.written - at >= super::FREE_SPACE_CHECK_EVERY);
        self.store.reserve_download(len as u64, check_disk)?;
        self.reserved += len as u64;
        if check_disk {
            self.disk_checked_at = Some(self.written);
        }
        Ok(())
    }

    /// The temp file and the hasher, while both are open.
    fn open_parts(&mut self) -> io::Result<(&mut File, &mut Verifier)> {
        match (self.file.as_mut(), self.verifier.as_mut()) {
            (Some(file), Some(verifier)) => Ok((file, verifier)),
            (None, _) => Err(io::Error::other("blob writer closed")),
            (_, None) => Err(io::Error::other("blob writer already verified")),
        }
    }

    /// Writes `range` of `bytes` and hashes it, then gives the buffer back to
    /// [`crate::buffers`] when nothing else holds it: for a download that holds its bytes in
    /// a shared buffer (a piece from a peer, a chunk read from the upstream).
    pub fn write_shared(&mut self, bytes: Arc<Vec<u8>>, range: Range<usize>) -> io::Result<()> {
        let slice = bytes
            .get(range)
            .ok_or_else(|| io::Error::other("range outside the buffer"))?;
        self.write_all(slice)?;
        crate::buffers::give_shared(bytes);
        Ok(())
    }
}

impl Write for BlobWriter {
    /// Takes at most [`PAGE_CACHE_WRITE`] bytes of `buf` (callers loop, as `write_all` does),
    /// writes them to the temp file and hashes what was written.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let buf = &buf[..buf.len().min(PAGE_CACHE_WRITE)];
        self.open_parts()?;
        self.reserve(buf.len())?;
        let (file, verifier) = self.open_parts()?;
        let n = file.write(buf)?;
        verifier.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.store.release_download(self.reserved);
        if !self.temp_path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.temp_path);
        }
    }
}
