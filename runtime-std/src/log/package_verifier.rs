//! The package builders, `npm-fetch/v1`, `pypi-fetch/v1` and `maven-fetch/v1`: for a package
//! version, read the index document from this node's own upstream (a fresh one: a page kept
//! from before is not what the upstream serves now), fetch every file of the version the
//! document gives a checkable digest for (the tarball and its `dist.integrity`; the release's
//! files and their sha256), check each against it through the package mirror, and attest the
//! files' sha256. A Maven release has no index document: its files are its pom and the main
//! artifact the pom's packaging names, each checked against the repository's checksum file.
//! Which files make a version is core's rule ([`ProjectIndex::release`],
//! [`Packument::version_tarball`], [`release_files`]); this module does the IO.
//!
//! [`ProjectIndex::release`]: pyrsia_core::package::simple::ProjectIndex::release
//! [`Packument::version_tarball`]: pyrsia_core::package::npm_registry::Packument::version_tarball
//! [`release_files`]: pyrsia_core::package::maven_pom::release_files

use std::sync::Arc;

use pyrsia_core::digest::Digest;
use pyrsia_core::package::maven_pom::{POM_LEN_MAX, release_files};
use pyrsia_core::package::npm_registry::PackumentFormat;
use pyrsia_core::package::simple::release_version;
use pyrsia_core::package::{DistFile, Gav, NpmName, ProjectName};
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::entry::{Coordinates, ECOSYSTEM_MAVEN, ECOSYSTEM_NPM, ECOSYSTEM_PYPI};
use pyrsia_core::tlog::rebuilt::{ECOSYSTEM_NPM_REBUILD, ECOSYSTEM_PYPI_REBUILD};

use super::verifier::hash_with_pieces;
use super::{BuildSource, Verified};
use crate::maven::Maven;
use crate::npm::Npm;
use crate::packages::{FileSource, PackageBlob, read_small};
use crate::pypi::{Pypi, Resource};

/// The package mirrors a builder fetches through. Share it with an `Arc`.
pub struct PackageSources {
    /// The PyPI mirror (`--pypi-upstream`).
    pub pypi: Arc<Pypi>,
    /// The npm mirror (`--npm-upstream`).
    pub npm: Arc<Npm>,
    /// The Maven mirror (`--maven-upstream`).
    pub maven: Arc<Maven>,
    /// How this node rebuilds releases from source (`--rebuild`), if it does.
    pub rebuilder: Option<crate::rebuild::Rebuilders>,
}

/// A package version to verify and commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackageJob {
    /// [`ECOSYSTEM_NPM`], [`ECOSYSTEM_PYPI`], [`ECOSYSTEM_MAVEN`], or
    /// [`ECOSYSTEM_PYPI_REBUILD`] for a rebuild.
    pub ecosystem: &'static str,
    /// The npm name, the normalised PyPI project name, or the Maven `groupId:artifactId`.
    pub name: String,
    /// The version as the log's coordinates spell it.
    pub version: String,
}

impl PackageJob {
    /// The release a PyPI distribution file belongs to.
    pub fn pypi(file: &DistFile<'_>) -> PackageJob {
        PackageJob {
            ecosystem: ECOSYSTEM_PYPI,
            name: file.project().normalized().to_string(),
            version: release_version(file),
        }
    }

    /// The version `coordinates` name, if they are valid npm, PyPI, PyPI rebuild or Maven
    /// coordinates.
    pub fn from_coordinates(coordinates: &Coordinates<'_>) -> Option<PackageJob> {
        coordinates.check().ok()?;
        let ecosystem = match coordinates.ecosystem {
            ECOSYSTEM_NPM => ECOSYSTEM_NPM,
            ECOSYSTEM_PYPI => ECOSYSTEM_PYPI,
            ECOSYSTEM_MAVEN => ECOSYSTEM_MAVEN,
            ECOSYSTEM_PYPI_REBUILD => ECOSYSTEM_PYPI_REBUILD,
            ECOSYSTEM_NPM_REBUILD => ECOSYSTEM_NPM_REBUILD,
            _ => return None,
        };
        Some(PackageJob {
            ecosystem,
            name: coordinates.name.to_string(),
            version: coordinates.version.to_string(),
        })
    }

    /// The rebuild of this version, when its ecosystem is rebuilt (`pypi` → `pypi-rebuild`).
    pub fn rebuild(&self) -> Option<PackageJob> {
        Some(PackageJob {
            ecosystem: pyrsia_core::tlog::rebuilt::rebuild_ecosystem(self.ecosystem)?,
            ..self.clone()
        })
    }

    /// Version `version` of the npm package `name`.
    pub fn npm(name: &NpmName<'_>, version: &str) -> PackageJob {
        PackageJob {
            ecosystem: ECOSYSTEM_NPM,
            name: name.to_string(),
            version: version.to_string(),
        }
    }

    /// The Maven release `gav` belongs to (`None` for a snapshot, which the log never
    /// commits).
    pub fn maven(gav: &Gav<'_>) -> Option<PackageJob> {
        let name = format!("{}:{}", gav.group, gav.artifact);
        Gav::release(&name, gav.version).ok()?;
        Some(PackageJob {
            ecosystem: ECOSYSTEM_MAVEN,
            name,
            version: gav.version.to_string(),
        })
    }

    /// Its coordinates in the log.
    pub fn coordinates(&self) -> Coordinates<'_> {
        Coordinates {
            ecosystem: self.ecosystem,
            name: &self.name,
            version: &self.version,
        }
    }
}

impl PackageSources {
    /// The upstream URL the builders of `ecosystem` fetch from (a request's `source`).
    pub fn upstream(&self, ecosystem: &str) -> Option<&str> {
        match ecosystem {
            ECOSYSTEM_NPM | ECOSYSTEM_NPM_REBUILD => Some(self.npm.upstream()),
            ECOSYSTEM_PYPI | ECOSYSTEM_PYPI_REBUILD => Some(self.pypi.upstream()),
            ECOSYSTEM_MAVEN => Some(self.maven.upstream()),
            _ => None,
        }
    }

    /// How many files of the version the upstream's index lists with a digest this node can
    /// check (a page kept from before counts when the upstream is down): a version with none
    /// cannot be verified, so it is not requested.
    pub fn checkable_files(&self, job: &PackageJob) -> Result<usize, String> {
        match job.ecosystem {
            ECOSYSTEM_PYPI => {
                let project = ProjectName::parse(&job.name).map_err(|e| e.to_string())?;
                let page = self.pypi.project(&project).map_err(|e| e.to_string())?;
                Ok(page.index.release(&project, &job.version).0.len())
            }
            ECOSYSTEM_NPM => {
                let name = NpmName::parse(&job.name).map_err(|e| e.to_string())?;
                let document = self
                    .npm
                    .packument(&name, PackumentFormat::Abbreviated)
                    .map_err(|e| e.to_string())?;
                Ok(document
                    .packument
                    .version_tarball(&job.version)
                    .is_some_and(|t| t.integrity.is_some())
                    .into())
            }
            // The repository lists no files: the pom is what proves the release exists.
            ECOSYSTEM_MAVEN => {
                let release = Gav::release(&job.name, &job.version).map_err(|e| e.to_string())?;
                let pom = release.path().to_string();
                self.maven
                    .artifact(&pom, FileSource::PeersThenUpstream)
                    .map(|_| 1)
                    .map_err(|e| format!("{pom}: {e}"))
            }
            other => Err(format!("no builder for ecosystem {other:?}")),
        }
    }

    /// Fetches and checks every file of the version: what a sole member commits (through
    /// its mirror, peers included: `BuildSource::Mirror`) and what a package builder of a
    /// multi-member network attests (`BuildSource::Upstream`: the files from its upstream).
    pub(crate) fn verify(&self, job: &PackageJob, source: BuildSource) -> Result<Verified, String> {
        let source = match source {
            BuildSource::Mirror => FileSource::PeersThenUpstream,
            BuildSource::Upstream => FileSource::UpstreamOnly,
        };
        let files = match job.ecosystem {
            ECOSYSTEM_PYPI => self.pypi_release(job, source)?,
            ECOSYSTEM_NPM => vec![self.npm_tarball(job, source)?],
            ECOSYSTEM_MAVEN => self.maven_release(job, source)?,
            other => return Err(format!("no builder for ecosystem {other:?}")),
        };
        let mut outputs = Vec::new();
        let mut piece_roots = Vec::new();
        for file in files {
            let (digest, root) = hash_stored(file)?;
            if let Some(root) = root {
                piece_roots.push((digest, root));
            }
            outputs.push(digest);
        }
        outputs.sort();
        outputs.dedup();
        Ok(Verified {
            outputs,
            piece_roots,
        })
    }

    fn pypi_release(
        &self,
        job: &PackageJob,
        source: FileSource,
    ) -> Result<Vec<PackageBlob>, String> {
        let project = ProjectName::parse(&job.name).map_err(|e| e.to_string())?;
        let page = self.pypi.project(&project).map_err(|e| e.to_string())?;
        if page.stale {
            return Err("the upstream index is unreachable: only the page kept from before".into());
        }
        let (checked, unchecked) = page.index.release(&project, &job.version);
        if !unchecked.is_empty() {
            tracing::info!(project = %job.name, version = %job.version, files = ?unchecked,
                "files the index gives no sha256 for are not part of what is attested");
        }
        if checked.is_empty() {
            return Err(format!(
                "the index lists no file of {} {} with a sha256",
                job.name, job.version
            ));
        }
        checked
            .into_iter()
            .map(|(file, _)| {
                self.pypi
                    .file_via(&project, &file.filename, Resource::File, source)
                    .map_err(|e| format!("{}: {e}", file.filename))
            })
            .collect()
    }

    fn npm_tarball(&self, job: &PackageJob, source: FileSource) -> Result<PackageBlob, String> {
        let name = NpmName::parse(&job.name).map_err(|e| e.to_string())?;
        let document = self
            .npm
            .packument(&name, PackumentFormat::Abbreviated)
            .map_err(|e| e.to_string())?;
        if document.stale {
            return Err(
                "the upstream registry is unreachable: only the packument kept from before".into(),
            );
        }
        let tarball = document
            .packument
            .version_tarball(&job.version)
            .ok_or_else(|| format!("the packument lists no version {}", job.version))?;
        let file = tarball
            .file()
            .ok_or_else(|| format!("version {} has no tarball file name", job.version))?;
        self.npm
            .tarball_via(&name, file, source)
            .map_err(|e| e.to_string())
    }
}

impl PackageSources {
    /// The pom of the release and the main artifact its packaging names, each checked
    /// against the repository's checksum file as it is now (a stored file too).
    fn maven_release(
        &self,
        job: &PackageJob,
        source: FileSource,
    ) -> Result<Vec<PackageBlob>, String> {
        let release = Gav::release(&job.name, &job.version).map_err(|e| e.to_string())?;
        let fetch = |path: &str| self.maven.artifact_as_published(path, source);
        let pom_path = release.path().to_string();
        let pom = fetch(&pom_path).map_err(|e| format!("{pom_path}: {e}"))?;
        let pom_bytes = read_small(&pom, POM_LEN_MAX)
            .map_err(|e| format!("{pom_path}: {e}"))?
            .ok_or_else(|| format!("{pom_path}: longer than {POM_LEN_MAX} bytes"))?;
        let files = release_files(&release, &pom_bytes).map_err(|e| format!("{pom_path}: {e}"))?;
        let mut blobs = vec![pom];
        if let Some(main) = files.main {
            let path = main.path().to_string();
            blobs.push(fetch(&path).map_err(|e| format!("{path}: {e}"))?);
        }
        Ok(blobs)
    }
}

/// Reads a stored file once: its sha256 (which must be the one it is stored under) and its
/// piece root when it has more than one piece.
fn hash_stored(file: PackageBlob) -> Result<(Digest, Option<Hash>), String> {
    let PackageBlob { digest, blob } = file;
    let (actual, root) =
        hash_with_pieces(&blob.file).map_err(|e| format!("reading {digest}: {e}"))?;
    if actual != digest {
        return Err(format!("stored file {digest} reads as {actual}"));
    }
    Ok((digest, root))
}
