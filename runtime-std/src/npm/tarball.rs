//! Tarballs: served from the store once their integrity was checked, downloaded once from the
//! upstream when missing; the sha256 they are stored under is recorded by integrity.

use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{Integrity, PackumentFormat};

use super::{Npm, PackageError};
use crate::packages::{
    Checked, FileSource, PackageBlob, download_checked, fetch_under, from_peers, record_file,
};
use crate::peers::blame_bad_bytes;
use crate::store::{BlobKind, StoreError};

impl Npm {
    /// The tarball `file` (`name-1.0.0.tgz`) of `name`, from the store or downloaded and
    /// checked against the integrity its packument gives.
    pub fn tarball(&self, name: &NpmName<'_>, file: &str) -> Result<PackageBlob, PackageError> {
        self.tarball_via(name, file, FileSource::PeersThenUpstream)
    }

    /// [`Npm::tarball`], taking a missing tarball only from `source`.
    pub fn tarball_via(
        &self,
        name: &NpmName<'_>,
        file: &str,
        source: FileSource,
    ) -> Result<PackageBlob, PackageError> {
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
        fetch_under(
            &self.mirror,
            &self.downloads,
            &tarball_key(&key),
            file,
            || {
                if source == FileSource::PeersThenUpstream
                    && self.stored_from_peers(name, &listed.version, &integrity, &key)?
                {
                    return Ok(());
                }
                self.download(&listed.url, &integrity, &key)
            },
        )
    }

    fn download(&self, url: &str, integrity: &Integrity, key: &str) -> Result<(), PackageError> {
        download_checked(
            &self.mirror,
            &self.agent,
            url,
            integrity.checker(),
            &tarball_key(key),
            "npm tarball",
            "the integrity its packument gives",
        )
    }
}

impl Npm {
    /// Whether the peers delivered the tarball of `name@version` and it is stored: only when
    /// the log committed the version, whose output is the sha256 peers are asked for; the
    /// bytes must match both it and the packument's integrity.
    fn stored_from_peers(
        &self,
        name: &NpmName<'_>,
        version: &str,
        integrity: &Integrity,
        key: &str,
    ) -> Result<bool, PackageError> {
        let Some(digest) = self
            .committed
            .get()
            .and_then(|committed| committed(&name.to_string(), version))
        else {
            return Ok(false);
        };
        let store = self.mirror.store();
        let checked = Checked {
            writer: store
                .writer(digest, BlobKind::Blob)
                .map_err(|e| PackageError::Store(e.to_string()))?,
            checker: integrity.checker(),
        };
        let Some((Checked { writer, checker }, contributors, network)) =
            from_peers(&self.mirror, &digest, checked)
        else {
            return Ok(false);
        };
        if !checker.matches() {
            // The sha256 the log committed matched (or not), but the packument's integrity
            // did not: the committed version is not what the registry lists now.
            drop(writer);
            tracing::warn!(%name, version, "a tarball from peers fails the packument's integrity; fetching from the upstream");
            return Ok(false);
        }
        match writer.commit() {
            Ok(()) => {
                tracing::info!(%digest, %name, version, "npm tarball fetched from peers and verified");
                record_file(store, &tarball_key(key), digest)?;
                Ok(true)
            }
            Err(StoreError::Mismatch { .. }) => {
                self.mirror.metrics().verification_failures.inc();
                blame_bad_bytes(&*network, &contributors, &digest);
                Ok(false)
            }
            Err(e) => Err(PackageError::Store(e.to_string())),
        }
    }
}

/// Where the sha256 of the tarball with integrity `key` is recorded.
pub(super) fn tarball_key(key: &str) -> String {
    format!("npm-tarball/{key}")
}
