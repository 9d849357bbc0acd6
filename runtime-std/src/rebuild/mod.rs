//! Rebuilds (issue 16): the PyPI and npm rebuilders ([`PypiRebuilder`], [`NpmRebuilder`]),
//! the sandbox they build in, and reading the upstream's artifact and a rebuild of it into the entries
//! core's comparison decides on ([`pyrsia_core::package::rebuild`]). A wheel is a zip; an
//! npm tarball is a gzipped tar, compared uncompressed (gzip bytes differ across zlib
//! versions). This module does the IO; the verdict and the diff are core's.

mod archive;
mod npm;
mod pypi;
pub mod sandbox;

use std::path::{Path, PathBuf};

pub use archive::{ArchiveKind, compare_files, entries};
pub use npm::NpmRebuilder;
pub use pypi::PypiRebuilder;

/// How this node rebuilds (`--rebuild`): PyPI wheels from their sdist, npm tarballs by
/// repacking. Share it in [`crate::log::PackageSources`].
#[derive(Clone, Debug)]
pub struct Rebuilders {
    /// `pypi-rebuild/v1`.
    pub pypi: PypiRebuilder,
    /// `npm-rebuild/v1`.
    pub npm: NpmRebuilder,
}

/// After a rebuild: its directory goes when it reproduced; otherwise only its logs stay
/// (`build.log`, `download.log`), for the operator to read why, and not the files.
pub(crate) fn keep_logs_only(work: &Path, reproduced: bool) {
    if reproduced {
        let _ = std::fs::remove_dir_all(work);
        return;
    }
    for entry in std::fs::read_dir(work).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "log") {
            continue;
        }
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
    tracing::info!(dir = %work.display(), "rebuild logs kept for inspection");
}

/// A fresh directory under `root`, named after `what`.
pub(crate) fn tempdir(root: &Path, what: &str) -> Result<PathBuf, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    let dir = root.join(format!("{what}-{:016x}", u64::from_le_bytes(bytes)));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests;

impl crate::log::PackageSources {
    /// Whether the version `job` names (`pypi` or `npm`) has something to rebuild: a PyPI
    /// release a pure-Python wheel (by the project page the mirror holds), any npm version.
    pub fn rebuildable(&self, job: &crate::log::PackageJob) -> bool {
        use pyrsia_core::tlog::entry::{ECOSYSTEM_NPM, ECOSYSTEM_PYPI};
        match job.ecosystem {
            ECOSYSTEM_PYPI => pyrsia_core::package::ProjectName::parse(&job.name)
                .is_ok_and(|project| PypiRebuilder::has_target(&self.pypi, &project, &job.version)),
            ECOSYSTEM_NPM => true,
            _ => false,
        }
    }

    /// Rebuilds the version `job` names (`pypi` or `npm`, or their rebuild ecosystems) with
    /// this node's rebuilders, its files taken `from` the peers or the upstream only. `Err`
    /// when this node cannot (no `--rebuild`, its upstream down): nothing to attest.
    pub fn rebuild(
        &self,
        job: &crate::log::PackageJob,
        from: crate::packages::FileSource,
    ) -> Result<pyrsia_core::consensus::node::RebuildResult, String> {
        use pyrsia_core::tlog::entry::{ECOSYSTEM_NPM, ECOSYSTEM_PYPI};
        use pyrsia_core::tlog::rebuilt::rebuilt_ecosystem;
        let rebuilders = self
            .rebuilder
            .as_ref()
            .ok_or("this node does not rebuild (--rebuild)")?;
        let ecosystem = rebuilt_ecosystem(job.ecosystem).unwrap_or(job.ecosystem);
        match ecosystem {
            ECOSYSTEM_PYPI => {
                let project = pyrsia_core::package::ProjectName::parse(&job.name)
                    .map_err(|e| e.to_string())?;
                rebuilders
                    .pypi
                    .rebuild(&self.pypi, &project, &job.version, from)
            }
            ECOSYSTEM_NPM => {
                let name =
                    pyrsia_core::package::NpmName::parse(&job.name).map_err(|e| e.to_string())?;
                rebuilders.npm.rebuild(&self.npm, &name, &job.version, from)
            }
            other => Err(format!("no rebuilder for ecosystem {other:?}")),
        }
    }
}
