//! Tarballs: served from the store once their integrity was checked, downloaded once from the
//! upstream when missing; the sha256 they are stored under is recorded by integrity.

use std::io::{self, Write};

use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{Integrity, IntegrityChecker, PackumentFormat};

use super::{Npm, PackageError};
use crate::packages::{PackageBlob, get};
use crate::store::{BlobKind, BlobWriter, StoreError, TagObservation, now_ms};

impl Npm {
    /// The tarball `file` (`name-1.0.0.tgz`) of `name`, from the store or downloaded and
    /// checked against the integrity its packument gives.
    pub fn tarball(&self, name: &NpmName<'_>, file: &str) -> Result<PackageBlob, PackageError> {
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
                .ok_or_else(|| PackageError::NotFound(format!("{file} of {name}")))?,
        };
        let integrity = listed.integrity.ok_or_else(|| {
            PackageError::BadUpstream(format!(
                "the packument gives no sha512 or sha256 integrity for {file}; this node serves verified tarballs only"
            ))
        })?;
        let key = integrity.to_string();
        if let Some(blob) = self.stored_tarball(&key) {
            return Ok(blob);
        }
        if self.mirror.config().offline {
            return Err(PackageError::NotFound(format!(
                "{file} (offline, not cached)"
            )));
        }
        let _slot = self
            .mirror
            .download_slot()
            .map_err(|_| PackageError::Busy)?;
        let store = self.mirror.store();
        self.downloads.once(
            &self.mirror,
            &key,
            || {
                store
                    .tag(&tarball_key(&key))
                    .is_some_and(|t| store.record(&t.digest).is_some())
            },
            || self.download(&listed.url, &integrity, &key),
        )?;
        self.stored_tarball(&key)
            .ok_or_else(|| PackageError::Store(format!("{file} vanished after it was stored")))
    }

    /// The stored tarball whose integrity is `key`.
    fn stored_tarball(&self, key: &str) -> Option<PackageBlob> {
        let store = self.mirror.store();
        let digest = store.tag(&tarball_key(key))?.digest;
        let blob = store.open_blob(&digest)?;
        self.mirror.metrics().cache_hits.inc();
        Some(PackageBlob { digest, blob })
    }

    fn download(&self, url: &str, integrity: &Integrity, key: &str) -> Result<(), PackageError> {
        let metrics = self.mirror.metrics();
        let fetched = get(&self.agent, metrics, url, None, url)?;
        let store = self.mirror.store();
        let mut checked = Checked {
            writer: store
                .writer_computing(BlobKind::Blob)
                .map_err(|e| PackageError::Store(e.to_string()))?,
            checker: integrity.checker(),
        };
        let copied = fetched.copy_to(url, &mut checked, metrics)?;
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
                    .map_err(|e| PackageError::Store(e.to_string()))
            }
            Err(StoreError::Io(_)) if !matched => Err(PackageError::BadUpstream(format!(
                "{url} does not match the integrity its packument gives; nothing stored"
            ))),
            Err(e) => Err(PackageError::Store(e.to_string())),
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
