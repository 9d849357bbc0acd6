//! `pypi-rebuild/v1`: rebuilds a release's pure-Python wheel from its sdist and compares it
//! with the upstream's wheel. The files come through the node's PyPI mirror, checked against
//! the index's sha256; the build backend is pinned from the wheel's `WHEEL` Generator and the
//! sdist's build requirements are fetched as wheels only (no code of theirs runs to fetch
//! them) through the node's own mirror; the build runs in the sandbox ([`super::sandbox`]) with
//! no network, `SOURCE_DATE_EPOCH` from the wheel's entry times, `PYTHONHASHSEED=0`, umask
//! 022, `TZ=UTC` and `LC_ALL=C.UTF-8`. Which files, which pin and the verdict are core's
//! ([`pyrsia_core::package::rebuild_pypi`], [`pyrsia_core::package::rebuild`]).
//!
//! A failure of this node (the upstream or mirror unreachable, no sandbox) is an `Err`: no
//! attestation. A build that ran and failed is a `BuildFailed` result: attested, since every
//! honest rebuilder with the same recipe sees it fail the same way.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pyrsia_core::consensus::node::RebuildResult;
use pyrsia_core::package::ProjectName;
use pyrsia_core::package::rebuild::encode_diff;
use pyrsia_core::package::rebuild_pypi::{
    LEGACY_REQUIREMENTS, backend_pin, pin_requirements, rebuild_target, zip_time_to_unix,
};
use pyrsia_core::tlog::rebuilt::{RECIPE_LEN_MAX, RebuildVerdict};

use super::archive::{ArchiveKind, compare_files, file_digest};
use super::sandbox::{self, Mount, SandboxExit};
use super::tempdir;
use crate::packages::{FileSource, PackageBlob};
use crate::pypi::{Pypi, Resource};

/// The longest `pyproject.toml` or `WHEEL` file read.
const METADATA_LEN_MAX: u64 = 1 << 20;
/// The most build requirements an sdist may name.
const REQUIREMENTS_MAX: usize = 64;

/// How this node rebuilds: the tools, its own mirror, where builds run and for how long.
#[derive(Clone, Debug)]
pub struct PypiRebuilder {
    /// The Python interpreter builds run with (with pip), e.g. `/usr/bin/python3`.
    pub python: PathBuf,
    /// bubblewrap.
    pub bwrap: PathBuf,
    /// This node's own PyPI mirror (`http://127.0.0.1:PORT/pypi/simple/`), which build
    /// requirements are fetched through.
    pub index_url: String,
    /// Where each build gets a fresh directory.
    pub work_dir: PathBuf,
    /// How long a build may run.
    pub timeout: Duration,
    /// The interpreter's and pip's versions, as the recipe names them.
    versions: String,
}

impl PypiRebuilder {
    /// A rebuilder with these tools, after checking that the sandbox starts here (a node
    /// that cannot sandbox must not attest that builds fail) and reading the interpreter's
    /// and pip's versions.
    pub fn new(
        python: PathBuf,
        bwrap: PathBuf,
        index_url: String,
        work_dir: PathBuf,
        timeout: Duration,
    ) -> Result<PypiRebuilder, String> {
        fs::create_dir_all(&work_dir).map_err(|e| format!("{}: {e}", work_dir.display()))?;
        let probe = tempdir(&work_dir, "probe")?;
        let log = probe.join("log");
        let exit = sandbox::run(
            &bwrap,
            &[],
            &[],
            "/",
            &[&python.to_string_lossy(), "-m", "pip", "--version"],
            &log,
            Duration::from_secs(60),
        )?;
        let pip = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_dir_all(&probe);
        if exit != SandboxExit::Exited(0) {
            return Err(format!(
                "the rebuild sandbox does not run {} -m pip here ({exit:?}): {}",
                python.display(),
                pip.trim()
            ));
        }
        let version = Command::new(&python)
            .args(["-c", "import platform; print(platform.python_implementation(), platform.python_version())"])
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        let pip_version = pip.split_whitespace().nth(1).unwrap_or("unknown");
        let versions = format!(
            "{}; pip {pip_version}",
            String::from_utf8_lossy(&version.stdout).trim()
        );
        Ok(PypiRebuilder {
            python,
            bwrap,
            index_url,
            work_dir,
            timeout,
            versions,
        })
    }

    /// Whether `version` of `project` has a pure-Python wheel to rebuild, by the project page
    /// the mirror holds.
    pub fn has_target(pypi: &Pypi, project: &ProjectName<'_>, version: &str) -> bool {
        pypi.project(project).is_ok_and(|page| {
            let (checked, _) = page.index.release(project, version);
            rebuild_target(project, checked.iter().map(|(f, _)| f.filename.as_str())).is_some()
        })
    }

    /// Rebuilds `version` of `project` (files taken `from` the peers or the upstream only)
    /// and compares; see the module documentation.
    pub fn rebuild(
        &self,
        pypi: &Pypi,
        project: &ProjectName<'_>,
        version: &str,
        from: FileSource,
    ) -> Result<RebuildResult, String> {
        let page = pypi.project(project).map_err(|e| e.to_string())?;
        let (checked, _) = page.index.release(project, version);
        let names: Vec<String> = checked.iter().map(|(f, _)| f.filename.clone()).collect();
        let (sdist, wheel) =
            rebuild_target(project, names.iter().map(String::as_str)).ok_or_else(|| {
                format!(
                    "{} {version} has no pure-Python wheel to rebuild",
                    project.normalized()
                )
            })?;
        let work = tempdir(
            &self.work_dir,
            &format!("{}-{version}", project.normalized()),
        )?;
        let result = self.rebuild_in(pypi, project, sdist, wheel, &work, from);
        super::keep_logs_only(
            &work,
            result.as_ref().is_ok_and(|r| r.verdict.is_reproduced()),
        );
        result
    }

    fn rebuild_in(
        &self,
        pypi: &Pypi,
        project: &ProjectName<'_>,
        sdist: Option<&str>,
        wheel: &str,
        work: &Path,
        from: FileSource,
    ) -> Result<RebuildResult, String> {
        let upstream_wheel = work.join(wheel);
        let upstream = fetch(pypi, project, wheel, from, &upstream_wheel)?;
        let mut result = RebuildResult {
            artifact: wheel.to_string(),
            upstream,
            rebuilt: None,
            stabilized: None,
            verdict: RebuildVerdict::BuildFailed,
            recipe: format!(
                "{}; {}",
                pyrsia_core::tlog::rebuilt::PYPI_REBUILD_V1,
                self.versions
            ),
            diff: Vec::new(),
            failure: String::new(),
        };
        let failed = |mut result: RebuildResult, why: &str| {
            result.failure = why.to_string();
            Ok(result)
        };
        let Some(sdist) = sdist else {
            return failed(result, "the release has no sdist to rebuild from");
        };
        let source = work.join("src");
        fs::create_dir_all(&source).map_err(|e| e.to_string())?;
        fetch(pypi, project, sdist, from, &source.join(sdist))?;
        let (generator, epoch) = wheel_generator_and_epoch(&upstream_wheel)?;
        let Some(pin) = backend_pin(&generator) else {
            return failed(
                result,
                "the wheel's Generator names no build backend this builder pins",
            );
        };
        let Some(epoch) = epoch else {
            return failed(result, "the wheel's entry times give no SOURCE_DATE_EPOCH");
        };
        let requires = match sdist_requirements(&source.join(sdist)) {
            Ok(requires) => requires,
            Err(why) => return failed(result, &why),
        };
        let requirements = pin_requirements(&requires, &pin);
        result.recipe = bounded(format!(
            "{}; backend {}=={}; requires {}; SOURCE_DATE_EPOCH={epoch}; PYTHONHASHSEED=0; umask 022; TZ=UTC; LC_ALL=C.UTF-8; no network",
            result.recipe,
            pin.0,
            pin.1,
            requirements.join(", ")
        ));
        let wheels = work.join("wheels");
        self.download(&requirements, &wheels, &work.join("download.log"))?;
        let out = work.join("out");
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let python = self.python.to_string_lossy().into_owned();
        let sdist_inside = format!("/src/{sdist}");
        let exit = sandbox::run(
            &self.bwrap,
            &[
                Mount {
                    host: source.clone(),
                    inside: "/src",
                    writable: false,
                },
                Mount {
                    host: wheels,
                    inside: "/wheels",
                    writable: false,
                },
                Mount {
                    host: out.clone(),
                    inside: "/out",
                    writable: true,
                },
            ],
            &[
                ("SOURCE_DATE_EPOCH", epoch.to_string()),
                ("PYTHONHASHSEED", "0".into()),
                ("PYTHONDONTWRITEBYTECODE", "1".into()),
                ("PIP_NO_CACHE_DIR", "1".into()),
                ("PIP_DISABLE_PIP_VERSION_CHECK", "1".into()),
                ("PIP_NO_INDEX", "1".into()),
                ("PIP_FIND_LINKS", "/wheels".into()),
            ],
            "/tmp",
            &[
                &python,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-index",
                "--find-links",
                "/wheels",
                "--wheel-dir",
                "/out",
                &sdist_inside,
            ],
            &work.join("build.log"),
            self.timeout,
        )?;
        if let Some(why) = exit.failure("build", self.timeout) {
            return failed(result, &why);
        }
        let Some(rebuilt) = sandbox::only_output(&out, "whl")? else {
            return failed(result, "the build did not produce exactly one wheel");
        };
        let rebuilt = &rebuilt;
        let comparison = match compare_files(&upstream_wheel, rebuilt, ArchiveKind::Wheel) {
            Ok(comparison) => comparison,
            Err(why) => return failed(result, &format!("the wheels cannot be compared: {why}")),
        };
        result.rebuilt = Some(file_digest(rebuilt)?);
        result.stabilized = Some(comparison.rebuilt_stabilized);
        result.verdict = comparison.verdict.in_log();
        result.diff = encode_diff(&comparison.diff);
        Ok(result)
    }

    /// Fetches `requirements` and what they need as wheels only, through this node's own
    /// mirror, into `into`. A failure here is this node's (its mirror or upstream).
    fn download(&self, requirements: &[String], into: &Path, log: &Path) -> Result<(), String> {
        let output = Command::new(&self.python)
            .args([
                "-m",
                "pip",
                "download",
                "--only-binary",
                ":all:",
                "--no-cache-dir",
            ])
            .args([
                "--disable-pip-version-check",
                "--index-url",
                &self.index_url,
                "--dest",
            ])
            .arg(into)
            .args(requirements)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", into)
            .env("PIP_CONFIG_FILE", "/dev/null")
            .env("PIP_NO_INPUT", "1")
            .output()
            .map_err(|e| format!("{}: {e}", self.python.display()))?;
        let _ = fs::write(log, [output.stdout.as_slice(), &output.stderr].concat());
        if !output.status.success() {
            return Err(format!(
                "the build requirements {requirements:?} could not be fetched through the mirror ({})",
                log.display()
            ));
        }
        Ok(())
    }
}

/// Fetches a file of the release through the mirror (checked against the index's sha256)
/// and copies it to `to`. Returns its sha256.
fn fetch(
    pypi: &Pypi,
    project: &ProjectName<'_>,
    filename: &str,
    from: FileSource,
    to: &Path,
) -> Result<pyrsia_core::digest::Digest, String> {
    let PackageBlob { digest, mut blob } = pypi
        .file_via(project, filename, Resource::File, from)
        .map_err(|e| format!("{filename}: {e}"))?;
    let mut file = File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    io::copy(&mut blob.file, &mut file).map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(digest)
}

/// The wheel's `WHEEL` file and the latest time of its entries (its `SOURCE_DATE_EPOCH`).
fn wheel_generator_and_epoch(wheel: &Path) -> Result<(String, Option<u64>), String> {
    let file = File::open(wheel).map_err(|e| format!("{}: {e}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| format!("{wheel:?}: {e}"))?;
    let mut metadata = String::new();
    let mut latest: Option<u64> = None;
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(|e| e.to_string())?;
        if let Some(t) = entry.last_modified() {
            let secs = zip_time_to_unix(
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
            );
            latest = latest.max(secs);
        }
        let name = entry.name().map_err(|e| e.to_string())?.to_string();
        let is_wheel_file = name
            .strip_suffix("/WHEEL")
            .is_some_and(|dir| dir.ends_with(".dist-info") && !dir.contains('/'));
        if is_wheel_file {
            entry
                .take(METADATA_LEN_MAX)
                .read_to_string(&mut metadata)
                .map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok((metadata, latest))
}

/// The sdist's `[build-system] requires` (PEP 518), or the legacy default without one.
/// An `Err` names what is wrong with the sdist (attested as the build failing).
fn sdist_requirements(sdist: &Path) -> Result<Vec<String>, String> {
    let file = File::open(sdist).map_err(|e| format!("{}: {e}", sdist.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|_| "the sdist is not a readable .tar.gz".to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|_| "the sdist is not a readable .tar.gz".to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let top_level_pyproject =
            path.components().count() == 2 && path.ends_with("pyproject.toml");
        if !top_level_pyproject {
            continue;
        }
        let mut text = String::new();
        (&mut entry)
            .take(METADATA_LEN_MAX)
            .read_to_string(&mut text)
            .map_err(|_| "the sdist's pyproject.toml is not UTF-8".to_string())?;
        let document: toml::Table = toml::from_str(&text)
            .map_err(|_| "the sdist's pyproject.toml does not parse".to_string())?;
        let Some(system) = document.get("build-system").and_then(|s| s.as_table()) else {
            break;
        };
        let requires = system
            .get("requires")
            .and_then(|r| r.as_array())
            .ok_or("the sdist's build-system has no requires list")?;
        let requires: Vec<String> = requires
            .iter()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        if requires.len() > REQUIREMENTS_MAX {
            return Err("the sdist names too many build requirements".into());
        }
        return Ok(requires);
    }
    Ok(LEGACY_REQUIREMENTS.iter().map(|r| r.to_string()).collect())
}

/// The recipe within [`RECIPE_LEN_MAX`] bytes (cut at a character boundary).
fn bounded(mut recipe: String) -> String {
    if recipe.len() > RECIPE_LEN_MAX {
        let mut end = RECIPE_LEN_MAX;
        while !recipe.is_char_boundary(end) {
            end -= 1;
        }
        recipe.truncate(end);
    }
    recipe
}
