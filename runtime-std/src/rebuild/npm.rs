//! `npm-rebuild/v1`: repacks an npm version's published contents with the `npm pack` of the
//! npm CLI version that published it (the version manifest's `_npmVersion`, fetched as the
//! `npm` package through this node's own npm mirror, integrity-checked) and compares the
//! uncompressed tarballs (gzip bytes differ across zlib versions, so the rebuilt digest is
//! the uncompressed tar's). What the repack leaves out shows contents that were altered
//! after packing: a file the package's `files` list does not name. Both tarballs are
//! unpacked inside the sandbox ([`super::sandbox`]); `npm pack` runs there with
//! `--ignore-scripts`, no network, and only the unpacked trees.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pyrsia_core::consensus::node::RebuildResult;
use pyrsia_core::digest::Digest;
use pyrsia_core::package::NpmName;
use pyrsia_core::package::npm_registry::PackumentFormat;
use pyrsia_core::package::rebuild::{compare, encode_diff};
use pyrsia_core::tlog::rebuilt::{NPM_REBUILD_V1, RebuildVerdict};

use super::archive::{ArchiveKind, entries, gunzipped_digest};
use super::sandbox::{self, Mount, SandboxExit};
use super::tempdir;
use crate::npm::Npm;
use crate::packages::{FileSource, PackageBlob};

/// How this node repacks npm versions: Node.js, bubblewrap, where builds run and how long.
#[derive(Clone, Debug)]
pub struct NpmRebuilder {
    /// The Node.js interpreter `npm pack` runs with, e.g. `/usr/bin/node`.
    pub node: PathBuf,
    /// bubblewrap.
    pub bwrap: PathBuf,
    /// Where each rebuild gets a fresh directory.
    pub work_dir: PathBuf,
    /// How long a repack may run.
    pub timeout: Duration,
    /// Node.js's version, as the recipe names it.
    node_version: String,
}

impl NpmRebuilder {
    /// A rebuilder with these tools, after checking that Node.js runs in the sandbox here.
    pub fn new(
        node: PathBuf,
        bwrap: PathBuf,
        work_dir: PathBuf,
        timeout: Duration,
    ) -> Result<NpmRebuilder, String> {
        fs::create_dir_all(&work_dir).map_err(|e| format!("{}: {e}", work_dir.display()))?;
        let probe = tempdir(&work_dir, "probe")?;
        let log = probe.join("log");
        let node_text = node.to_string_lossy().into_owned();
        let exit = sandbox::run(
            &bwrap,
            &[],
            &[],
            "/",
            &[&node_text, "--version"],
            &log,
            Duration::from_secs(60),
        )?;
        let version = fs::read_to_string(&log)
            .unwrap_or_default()
            .trim()
            .to_string();
        let _ = fs::remove_dir_all(&probe);
        if exit != SandboxExit::Exited(0) {
            return Err(format!(
                "the rebuild sandbox does not run {node_text} here ({exit:?}): {version}"
            ));
        }
        Ok(NpmRebuilder {
            node,
            bwrap,
            work_dir,
            timeout,
            node_version: version,
        })
    }

    /// Repacks `version` of `name` (tarballs taken `from` the peers or the upstream only) and
    /// compares; see the module documentation.
    pub fn rebuild(
        &self,
        npm: &Npm,
        name: &NpmName<'_>,
        version: &str,
        from: FileSource,
    ) -> Result<RebuildResult, String> {
        let document = npm
            .packument(name, PackumentFormat::Full)
            .map_err(|e| e.to_string())?;
        let tarball = document
            .packument
            .version_tarball(version)
            .ok_or_else(|| format!("the packument lists no version {version}"))?;
        let file = tarball
            .file()
            .ok_or_else(|| format!("version {version} has no tarball file name"))?
            .to_string();
        let publisher = document
            .packument
            .publishing_npm(version)
            .map(str::to_string);
        let work = tempdir(
            &self.work_dir,
            &format!("{}-{version}", file.trim_end_matches(".tgz")),
        )?;
        let result = self.rebuild_in(npm, name, &file, publisher.as_deref(), &work, from);
        super::keep_logs_only(
            &work,
            result.as_ref().is_ok_and(|r| r.verdict.is_reproduced()),
        );
        result
    }

    fn rebuild_in(
        &self,
        npm: &Npm,
        name: &NpmName<'_>,
        file: &str,
        publisher: Option<&str>,
        work: &Path,
        from: FileSource,
    ) -> Result<RebuildResult, String> {
        let inputs = work.join("in");
        fs::create_dir_all(&inputs).map_err(|e| e.to_string())?;
        let upstream = fetch(npm, name, file, from, &inputs.join("package.tgz"))?;
        let mut result = RebuildResult {
            artifact: file.to_string(),
            upstream,
            rebuilt: None,
            stabilized: None,
            verdict: RebuildVerdict::BuildFailed,
            recipe: format!("{NPM_REBUILD_V1}; Node.js {}", self.node_version),
            diff: Vec::new(),
            failure: String::new(),
        };
        let Some(publisher) = publisher else {
            result.failure = "the version's manifest names no npm version that published it".into();
            return Ok(result);
        };
        result.recipe = format!(
            "{NPM_REBUILD_V1}; npm pack of npm {publisher} (its publisher) --ignore-scripts; Node.js {}; umask 022; TZ=UTC; no network",
            self.node_version
        );
        let npm_name = NpmName::parse("npm").map_err(|e| e.to_string())?;
        let cli = npm
            .packument(&npm_name, PackumentFormat::Abbreviated)
            .map_err(|e| format!("npm's packument: {e}"))?;
        let cli_file = cli
            .packument
            .version_tarball(publisher)
            .and_then(|t| t.file().map(str::to_string))
            .ok_or_else(|| format!("the mirror has no npm {publisher} to repack with"))?;
        fetch(npm, &npm_name, &cli_file, from, &inputs.join("npm.tgz"))?;
        let out = work.join("out");
        fs::create_dir_all(&out).map_err(|e| e.to_string())?;
        let node = self.node.to_string_lossy().into_owned();
        let script = format!(
            "mkdir /tmp/npm /tmp/src && tar -xzf /in/npm.tgz -C /tmp/npm && tar -xzf /in/package.tgz -C /tmp/src && cd \"$(ls -d /tmp/src/*/ | head -1)\" && exec {node} /tmp/npm/package/bin/npm-cli.js pack --ignore-scripts --pack-destination /out"
        );
        let exit = sandbox::run(
            &self.bwrap,
            &[
                Mount {
                    host: inputs,
                    inside: "/in",
                    writable: false,
                },
                Mount {
                    host: out.clone(),
                    inside: "/out",
                    writable: true,
                },
            ],
            &[
                ("npm_config_cache", "/tmp/npm-cache".into()),
                ("npm_config_update_notifier", "false".into()),
                ("npm_config_fund", "false".into()),
                ("npm_config_audit", "false".into()),
                ("npm_config_offline", "true".into()),
            ],
            "/tmp",
            &["/bin/sh", "-c", &script],
            &work.join("build.log"),
            self.timeout,
        )?;
        if let Some(why) = exit.failure("repack", self.timeout) {
            result.failure = why;
            return Ok(result);
        }
        let Some(rebuilt) = sandbox::only_output(&out, "tgz")? else {
            result.failure = "the repack did not produce exactly one tarball".into();
            return Ok(result);
        };
        let rebuilt = &rebuilt;
        let upstream_tgz = work.join("in/package.tgz");
        let compared = (|| {
            let upstream_entries = entries(&upstream_tgz, ArchiveKind::NpmTarball)?;
            let rebuilt_entries = entries(rebuilt, ArchiveKind::NpmTarball)?;
            let upstream_tar = gunzipped_digest(&upstream_tgz)?;
            let rebuilt_tar = gunzipped_digest(rebuilt)?;
            compare(
                (upstream_tar, &upstream_entries),
                (rebuilt_tar, &rebuilt_entries),
            )
            .map(|c| (c, rebuilt_tar))
            .map_err(|e| e.to_string())
        })();
        let (comparison, rebuilt_tar) = match compared {
            Ok(done) => done,
            Err(why) => {
                result.failure = format!("the tarballs cannot be compared: {why}");
                return Ok(result);
            }
        };
        result.rebuilt = Some(rebuilt_tar);
        result.stabilized = Some(comparison.rebuilt_stabilized);
        result.verdict = comparison.verdict.in_log();
        result.diff = encode_diff(&comparison.diff);
        Ok(result)
    }
}

/// Fetches a tarball through the npm mirror (checked against the packument's integrity) and
/// copies it to `to`. Returns its sha256.
fn fetch(
    npm: &Npm,
    name: &NpmName<'_>,
    file: &str,
    from: FileSource,
    to: &Path,
) -> Result<Digest, String> {
    let PackageBlob { digest, mut blob } = npm
        .tarball_via(name, file, from)
        .map_err(|e| format!("{file}: {e}"))?;
    let mut out = File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    io::copy(&mut blob.file, &mut out).map_err(|e| format!("{}: {e}", to.display()))?;
    Ok(digest)
}
