//! Tarballs: served from the store once their integrity was checked, downloaded once from the
//! upstream when missing; the sha256 they are stored under is recorded by integrity.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{Integrity, IntegrityChecker, PackumentFormat};

use super::{Npm, NpmError};
use crate::store::{BlobKind, BlobWriter, StoreError, StoredBlob, TagObservation, now_ms};

/// A download's gate: held by the request that downloads; what its failure was, for the
/// requests that waited on it.
pub(super) type Gate = Arc<Mutex<Option<NpmError>>>;

impl Npm {
    /// The tarball `file` (`name-1.0.0.tgz`) of `name`, from the store or downloaded and
    /// checked against the integrity its packument gives.
    pub fn tarball(&self, name: &NpmName<'_>, file: &str) -> Result<StoredBlob, NpmError> {
        let known = self.recent(name).and_then(|p| p.tarball(file)).or_else(|| {
            self.stored(name, PackumentFormat::Abbreviated)
                .and_then(|p| p.tarball(file))
        });
        let listed = match known {
            Some(listed) => listed,
            None => self
                .packument(name, PackumentFormat::Abbreviated)?
                .packument
                .tarball(file)
                .ok_or_else(|| NpmError::NotFound(format!("{file} of {name}")))?,
        };
        let integrity = listed.integrity.ok_or_else(|| {
            NpmError::BadUpstream(format!(
                "the packument gives no sha512 or sha256 integrity for {file}; this node serves verified tarballs only"
            ))
        })?;
        let key = integrity.to_string();
        if let Some(blob) = self.stored_tarball(&key) {
            return Ok(blob);
        }
        if self.mirror.config().offline {
            return Err(NpmError::NotFound(format!("{file} (offline, not cached)")));
        }
        // Waiting requests hold a download place too, and share a failure.
        let _slot = self.mirror.download_slot().map_err(|_| NpmError::Busy)?;
        let gate = self.gate(&key);
        let mut turn = gate.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match turn.clone() {
            Some(failed) => Err(failed),
            None => match self.stored_tarball(&key) {
                Some(blob) => Ok(Some(blob)),
                None => {
                    self.mirror.metrics().cache_misses.inc();
                    let downloaded = self.download(&listed.url, &integrity, &key);
                    if let Err(e) = &downloaded {
                        *turn = Some(e.clone());
                    }
                    downloaded.map(|()| None)
                }
            },
        };
        drop(turn);
        self.release(&key);
        match outcome? {
            Some(blob) => Ok(blob),
            None => self
                .stored_tarball(&key)
                .ok_or_else(|| NpmError::Store(format!("{file} vanished after it was stored"))),
        }
    }

    /// The stored tarball whose integrity is `key`.
    fn stored_tarball(&self, key: &str) -> Option<StoredBlob> {
        let store = self.mirror.store();
        let digest = store.tag(&tarball_key(key))?.digest;
        let blob = store.open_blob(&digest)?;
        self.mirror.metrics().cache_hits.inc();
        Some(blob)
    }

    fn download(&self, url: &str, integrity: &Integrity, key: &str) -> Result<(), NpmError> {
        let metrics = self.mirror.metrics();
        metrics.upstream_fetches.inc();
        let mut response = self.agent.get(url).call().map_err(|e| {
            metrics.upstream_errors.inc();
            NpmError::Unavailable(format!("{url}: {e}"))
        })?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(NpmError::NotFound(url.to_string())),
            status => {
                metrics.upstream_errors.inc();
                return Err(NpmError::Unavailable(format!("{url} answered {status}")));
            }
        }
        let store = self.mirror.store();
        let mut checked = Checked {
            writer: store
                .writer_computing(BlobKind::Blob)
                .map_err(|e| NpmError::Store(e.to_string()))?,
            checker: integrity.checker(),
        };
        let copied = io::copy(&mut response.body_mut().as_reader(), &mut checked).map_err(|e| {
            if e.kind() == io::ErrorKind::StorageFull {
                NpmError::Store(e.to_string())
            } else {
                metrics.upstream_errors.inc();
                NpmError::Unavailable(format!("reading {url}: {e}"))
            }
        })?;
        metrics.upstream_bytes.inc_by(copied);
        let Checked { writer, checker } = checked;
        let matched = checker.matches();
        if !matched {
            metrics.verification_failures.inc();
            tracing::warn!(%url, %integrity, "npm tarball fails the integrity its packument gives; discarded");
        }
        match writer.commit_computed(matched) {
            Ok(digest) => {
                tracing::info!(%digest, %url, bytes = copied, "npm tarball fetched from upstream and verified");
                store
                    .record_tag(
                        &tarball_key(key),
                        TagObservation {
                            digest,
                            observed_ms: now_ms(),
                        },
                    )
                    .map_err(|e| NpmError::Store(e.to_string()))
            }
            Err(StoreError::Io(_)) if !matched => Err(NpmError::BadUpstream(format!(
                "{url} does not match the integrity its packument gives; nothing stored"
            ))),
            Err(e) => Err(NpmError::Store(e.to_string())),
        }
    }

    fn gate(&self, key: &str) -> Gate {
        self.downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    /// Called by each request done with a gate: the last one removes it.
    fn release(&self, key: &str) {
        let mut downloads = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        if downloads
            .get(key)
            .is_some_and(|g| Arc::strong_count(g) <= 2)
        {
            downloads.remove(key);
        }
    }
}

/// Where the sha256 of the tarball with integrity `key` is recorded.
fn tarball_key(key: &str) -> String {
    format!("npm-tarball/{key}")
}

/// Bytes written to the store and fed to the integrity check at once.
struct Checked {
    writer: BlobWriter,
    checker: IntegrityChecker,
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.checker.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}
