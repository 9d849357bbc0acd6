//! Distribution files and their PEP 658 metadata: served from the store by the sha256 the
//! project page gives, downloaded once from the upstream when missing, and stored only after
//! the bytes matched it.

use std::io;
use std::sync::{Arc, Mutex};

use pyrsia_core::digest::Digest;
use pyrsia_core::package::ProjectName;
use pyrsia_core::package::simple::IndexFile;

use super::{Pypi, PypiError};
use crate::store::{BlobKind, StoreError, StoredBlob};

/// A download's gate: held by the request that downloads; what its failure was, for the
/// requests that waited on it.
pub(super) type Gate = Arc<Mutex<Option<PypiError>>>;

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
    ) -> Result<StoredBlob, PypiError> {
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
                .ok_or_else(|| PypiError::NotFound(format!("{filename} of {normal}")))?,
        };
        let (digest, url) = source(&listed, resource)?;
        let store = self.mirror.store();
        if let Some(blob) = store.open_blob(&digest) {
            self.mirror.metrics().cache_hits.inc();
            return Ok(blob);
        }
        if self.mirror.config().offline {
            return Err(PypiError::NotFound(format!(
                "{filename} (offline, not cached)"
            )));
        }
        // A request that waits on a download holds a download place, as one that downloads:
        // however slow the upstream, waiting requests cannot take every HTTP worker.
        let _slot = self.mirror.download_slot().map_err(|_| PypiError::Busy)?;
        // One download per file: a request that finds one running waits for it, and shares
        // its failure rather than trying again at once.
        let gate = self.download_gate(digest);
        let mut turn = gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(failed) = turn.clone() {
            drop(turn);
            self.release_gate(&digest);
            return Err(failed);
        }
        if let Some(blob) = store.open_blob(&digest) {
            self.mirror.metrics().cache_hits.inc();
            drop(turn);
            self.release_gate(&digest);
            return Ok(blob);
        }
        self.mirror.metrics().cache_misses.inc();
        let downloaded = self.download(&url, digest);
        if let Err(e) = &downloaded {
            *turn = Some(e.clone());
        }
        drop(turn);
        self.release_gate(&digest);
        downloaded?;
        store
            .open_blob(&digest)
            .ok_or_else(|| PypiError::Store(format!("{filename} vanished after it was stored")))
    }

    fn download(&self, url: &str, digest: Digest) -> Result<(), PypiError> {
        let metrics = self.mirror.metrics();
        metrics.upstream_fetches.inc();
        let mut response = self.agent.get(url).call().map_err(|e| {
            metrics.upstream_errors.inc();
            PypiError::Unavailable(format!("{url}: {e}"))
        })?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(PypiError::NotFound(url.to_string())),
            status => {
                metrics.upstream_errors.inc();
                return Err(PypiError::Unavailable(format!("{url} answered {status}")));
            }
        }
        let mut writer = self
            .mirror
            .store()
            .writer(digest, BlobKind::Blob)
            .map_err(|e| PypiError::Store(e.to_string()))?;
        let mut body = response.body_mut().as_reader();
        let copied = io::copy(&mut body, &mut writer).map_err(|e| {
            if e.kind() == io::ErrorKind::StorageFull {
                PypiError::Store(e.to_string())
            } else {
                metrics.upstream_errors.inc();
                PypiError::Unavailable(format!("reading {url}: {e}"))
            }
        })?;
        metrics.upstream_bytes.inc_by(copied);
        match writer.commit() {
            Ok(()) => {
                tracing::info!(%digest, %url, bytes = copied, "PyPI file fetched from upstream and verified");
                Ok(())
            }
            Err(StoreError::Mismatch { actual, .. }) => {
                metrics.verification_failures.inc();
                tracing::warn!(%url, expected = %digest, %actual, "PyPI file does not match the sha256 its index gives; discarded");
                Err(PypiError::BadUpstream(format!(
                    "{url} does not match the sha256 its index gives (got {actual}); nothing stored"
                )))
            }
            Err(e) => Err(PypiError::Store(e.to_string())),
        }
    }

    fn download_gate(&self, digest: Digest) -> Gate {
        self.downloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(digest)
            .or_default()
            .clone()
    }

    /// Called by each request done with a gate, whatever the outcome: the last one removes it,
    /// so that a later request downloads afresh.
    fn release_gate(&self, digest: &Digest) {
        let mut downloads = self.downloads.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map and this request hold it: no request waits on it any more.
        if downloads
            .get(digest)
            .is_some_and(|g| Arc::strong_count(g) <= 2)
        {
            downloads.remove(digest);
        }
    }
}

/// The digest and upstream URL of what `resource` names; only what the page gives a sha256
/// for is ever fetched, so nothing unverified reaches the store.
fn source(file: &IndexFile, resource: Resource) -> Result<(Digest, String), PypiError> {
    match resource {
        Resource::File => file.sha256.map(|d| (d, file.url.clone())).ok_or_else(|| {
            PypiError::BadUpstream(format!(
                "the index gives no sha256 for {}; this node serves verified files only",
                file.filename
            ))
        }),
        Resource::Metadata => match file.metadata {
            Some(Some(digest)) => Ok((digest, format!("{}.metadata", file.url))),
            _ => Err(PypiError::NotFound(format!(
                "metadata of {}",
                file.filename
            ))),
        },
    }
}
