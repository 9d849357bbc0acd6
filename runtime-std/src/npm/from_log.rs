//! A packument made from the log, for a node that has none from the upstream (it is down, or
//! the node is `--offline`) and never stored one: every version the log committed (at most
//! [`LOG_VERSIONS_MAX`]), each one's manifest read from the committed tarball's own
//! `package.json` (from the store, else from peers by the sha256 the commit lists), its
//! `dist.integrity` and `dist.shasum` computed from those bytes, and the dist-tags the log
//! observed. It lists only what f+1 builders attested, with the dependencies its publisher
//! shipped. One made with every committed version is held in memory until the log commits
//! another version or observes another tag ([`MadeFromLog`]), so requests while the upstream
//! is down do not read every tarball again. Which fields make a manifest is core's rule
//! ([`version_manifest`](pyrsia_core::package::npm_registry::version_manifest)); this module
//! does the IO.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use pyrsia_core::digest::Digest;
use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::{
    PACKAGE_JSON_LEN_MAX, Packument, TarballDigests, version_manifest,
};

use super::{Npm, tarball_key};
use crate::packages::{ObservedTags, PackageError, record_file, stored_from_peers};

/// The most committed versions one packument made from the log lists.
pub const LOG_VERSIONS_MAX: usize = 64;
/// The most packuments made from the log held in memory.
const MADE_HELD: usize = 256;

/// Looks up the committed versions of an npm package and their tarball's sha256.
pub type CommittedVersions = Arc<dyn Fn(&str) -> Vec<(String, Digest)> + Send + Sync>;

/// What the log holds about npm packages, for packuments made from it.
pub struct CommittedPackages {
    /// The committed versions of a package and their tarball's sha256.
    pub versions: CommittedVersions,
    /// The dist-tags of a package the log observed.
    pub tags: ObservedTags,
}

/// Packuments made from the log, by package, with the committed versions and tags they were
/// made of: one is reused while the log says the same.
#[derive(Default)]
pub(super) struct MadeFromLog {
    held: Mutex<HashMap<String, Made>>,
}

struct Made {
    versions: Vec<(String, Digest)>,
    tags: Vec<(String, String)>,
    packument: Arc<Packument>,
}

impl MadeFromLog {
    fn get(
        &self,
        name: &str,
        versions: &[(String, Digest)],
        tags: &[(String, String)],
    ) -> Option<Arc<Packument>> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(name)
            .filter(|m| m.versions == versions && m.tags == tags)
            .map(|m| m.packument.clone())
    }

    fn insert(&self, name: String, made: Made) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.len() >= MADE_HELD && !held.contains_key(&name) {
            // Any one makes room: it is made again from the log when asked for.
            if let Some(evicted) = held.keys().next().cloned() {
                held.remove(&evicted);
            }
        }
        held.insert(name, made);
    }
}

impl Npm {
    /// Lets the node make a packument from the log when it has none from the upstream
    /// (set once, by the node that holds the log).
    pub fn set_committed_packages(&self, committed: CommittedPackages) {
        let _ = self.log.set(committed);
    }

    /// The packument of `name` made from the log, when it committed a version whose
    /// tarball this node holds or its peers deliver.
    pub(super) fn packument_from_log(&self, name: &NpmName<'_>) -> Option<Arc<Packument>> {
        let committed = self.log.get()?;
        let text = name.to_string();
        let mut versions = (committed.versions)(&text);
        versions.truncate(LOG_VERSIONS_MAX);
        let tags = (committed.tags)(&text);
        if let Some(made) = self.made_from_log.get(&text, &versions, &tags) {
            return Some(made);
        }
        let mut manifests = Vec::new();
        for (version, digest) in &versions {
            match self.committed_manifest(name, version, *digest) {
                Ok(manifest) => manifests.push((version.clone(), manifest)),
                Err(e) => {
                    tracing::info!(%name, %version, error = %e, "a committed version is left out of the packument made from the log");
                }
            }
        }
        if manifests.is_empty() {
            return None;
        }
        tracing::info!(%name, versions = manifests.len(), "serving a packument made from the log");
        let whole = manifests.len() == versions.len();
        let packument = Arc::new(Packument::from_manifests(&text, manifests, &tags));
        // One that left a version out (its tarball could not be had) is made again next
        // time, when a peer may hold it.
        if whole {
            let made = Made {
                versions,
                tags,
                packument: packument.clone(),
            };
            self.made_from_log.insert(text, made);
        }
        Some(packument)
    }

    /// The manifest of committed `name@version` from its tarball (sha256 `digest`), which is
    /// then recorded under its integrity like any tarball this node downloaded.
    fn committed_manifest(
        &self,
        name: &NpmName<'_>,
        version: &str,
        digest: Digest,
    ) -> Result<serde_json::Value, PackageError> {
        let store = self.mirror.store();
        if store.open_blob(&digest).is_none()
            && (self.mirror.config().offline
                || !stored_from_peers(&self.mirror, digest, "npm tarball")?)
        {
            return Err(PackageError::NotFound(format!(
                "the tarball of {name}@{version} is neither stored nor held by a peer"
            )));
        }
        let file = store
            .open_blob(&digest)
            .ok_or_else(|| PackageError::Store(format!("{digest} vanished")))?
            .file;
        let (package_json, digests) = read_tarball(file)?;
        let file_name = format!("{}-{version}.tgz", name.bare());
        let manifest = version_manifest(
            &package_json,
            &name.to_string(),
            version,
            &file_name,
            &digests,
        )
        .map_err(|e| PackageError::BadUpstream(format!("{name}@{version}: {e}")))?;
        record_file(store, &tarball_key(&digests.0), digest)?;
        Ok(manifest)
    }
}

/// One pass over a gzipped npm tarball: its `package/package.json` (at most
/// [`PACKAGE_JSON_LEN_MAX`]) and its integrity and shasum, every byte hashed as it is read.
fn read_tarball(file: impl Read) -> Result<(Vec<u8>, (String, String)), PackageError> {
    let bad = |why: String| PackageError::BadUpstream(format!("committed tarball: {why}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(Hashing {
        inner: file,
        digests: TarballDigests::new(),
    }));
    let package_json = package_json(&mut archive).map_err(bad)?;
    // The rest of the file, which the tar reader did not need, goes through the hashes too.
    let mut hashing = archive.into_inner().into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| PackageError::Store(e.to_string()))?;
    Ok((package_json, hashing.digests.finish()))
}

/// The first top-level `package.json` of `archive`.
fn package_json(archive: &mut tar::Archive<impl Read>) -> Result<Vec<u8>, String> {
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?;
        // npm packs everything under one top directory (`package/`, sometimes another name).
        let mut parts = path.components();
        let top_level_package_json = parts.next().is_some()
            && parts
                .next()
                .is_some_and(|p| p.as_os_str() == "package.json")
            && parts.next().is_none();
        if !top_level_package_json {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .take(PACKAGE_JSON_LEN_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        return Ok(bytes);
    }
    Err("no package.json".into())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    digests: TarballDigests,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.digests.update(&buf[..read]);
        Ok(read)
    }
}
