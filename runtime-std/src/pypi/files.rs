//! Distribution files and their PEP 658 metadata: served from the store by the sha256 the
//! project page gives, downloaded once from the upstream when missing, and stored only after
//! the bytes matched it.

use pyrsia_core::digest::Digest;
use pyrsia_core::package::ProjectName;
use pyrsia_core::package::simple::IndexFile;

use super::{PackageError, Pypi};
use crate::packages::{FileSource, PackageBlob, get, stored_from_peers};
use crate::store::{BlobKind, StoreError};

/// Which of a listed file's resources a request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The distribution file itself.
    File,
    /// Its PEP 658 core metadata (`{file}.metadata`).
    Metadata,
}

impl Pypi {
    /// A listed file (or its metadata) of `project`, from the store or downloaded and checked.
    /// The project's stored page is consulted first; a file it lacks refreshes the page.
    pub fn file(
        &self,
        project: &ProjectName<'_>,
        filename: &str,
        resource: Resource,
    ) -> Result<PackageBlob, PackageError> {
        self.file_via(project, filename, resource, FileSource::PeersThenUpstream)
    }

    /// [`Pypi::file`], taking a missing file only from `from`.
    pub fn file_via(
        &self,
        project: &ProjectName<'_>,
        filename: &str,
        resource: Resource,
        from: FileSource,
    ) -> Result<PackageBlob, PackageError> {
        let normal = project.normalized().to_string();
        let recent = self
            .pages
            .fresh(&normal)
            .and_then(|p| p.file(filename).cloned());
        let listed = match recent.or_else(|| {
            self.stored_page(&normal)
                .and_then(|p| p.file(filename).cloned())
        }) {
            Some(file) => file,
            None => self
                .project(project)?
                .index
                .file(filename)
                .cloned()
                .ok_or_else(|| PackageError::NotFound(format!("{filename} of {normal}")))?,
        };
        let (digest, url) = source(&listed, resource)?;
        let store = self.mirror.store();
        if let Some(blob) = store.open_blob(&digest) {
            self.mirror.metrics().cache_hits.inc();
            return Ok(PackageBlob { digest, blob });
        }
        if self.mirror.config().offline {
            return Err(PackageError::NotFound(format!(
                "{filename} (offline, not cached)"
            )));
        }
        let _slot = self
            .mirror
            .download_slot()
            .map_err(|_| PackageError::Busy)?;
        self.downloads.once(
            &self.mirror,
            digest.hex().as_str(),
            || store.record(&digest).is_some(),
            || self.download(&url, digest, from),
        )?;
        store
            .open_blob(&digest)
            .map(|blob| PackageBlob { digest, blob })
            .ok_or_else(|| PackageError::Store(format!("{filename} vanished after it was stored")))
    }

    /// Stores the file `digest` from the peers that hold it (if `source` allows), else from
    /// `url` upstream.
    fn download(&self, url: &str, digest: Digest, source: FileSource) -> Result<(), PackageError> {
        if source == FileSource::PeersThenUpstream
            && stored_from_peers(&self.mirror, digest, "PyPI file")?
        {
            return Ok(());
        }
        let metrics = self.mirror.metrics();
        let fetched = get(&self.agent, metrics, url, None, url)?;
        let mut writer = self
            .mirror
            .store()
            .writer(digest, BlobKind::Blob)
            .map_err(|e| PackageError::Store(e.to_string()))?;
        let copied = fetched.copy_to(url, &mut writer, metrics)?;
        match writer.commit() {
            Ok(()) => {
                tracing::info!(%digest, %url, bytes = copied, "PyPI file fetched from upstream and verified");
                Ok(())
            }
            Err(StoreError::Mismatch { actual, .. }) => {
                metrics.verification_failures.inc();
                tracing::warn!(%url, expected = %digest, %actual, "PyPI file does not match the sha256 its index gives; discarded");
                Err(PackageError::BadUpstream(format!(
                    "{url} does not match the sha256 its index gives (got {actual}); nothing stored"
                )))
            }
            Err(e) => Err(PackageError::Store(e.to_string())),
        }
    }
}

/// The digest and upstream URL of what `resource` names; only what the page gives a sha256
/// for is ever fetched, so nothing unverified reaches the store.
fn source(file: &IndexFile, resource: Resource) -> Result<(Digest, String), PackageError> {
    match resource {
        Resource::File => file.sha256.map(|d| (d, file.url.clone())).ok_or_else(|| {
            PackageError::BadUpstream(format!(
                "the index gives no sha256 for {}; this node serves verified files only",
                file.filename
            ))
        }),
        Resource::Metadata => match file.metadata {
            Some(Some(digest)) => Ok((digest, format!("{}.metadata", file.url))),
            _ => Err(PackageError::NotFound(format!(
                "metadata of {}",
                file.filename
            ))),
        },
    }
}
