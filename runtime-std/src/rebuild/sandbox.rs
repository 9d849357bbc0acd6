//! The rebuild sandbox: a build runs under bubblewrap with no network at all (a fresh network
//! namespace with only loopback, on which nothing listens), the system's `/usr` (and the
//! `/bin`, `/lib` links to it) read-only, nothing else of the host visible, a fresh `/tmp`,
//! and one fresh working directory it may write. Its requirements were fetched before it
//! starts, through the node's own mirror; what it builds is read back from the working
//! directory. It is killed at its deadline and when the node dies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a sandboxed build ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxExit {
    /// It exited with this status code (0: success).
    Exited(i32),
    /// It was killed by a signal.
    Killed,
    /// It ran past its deadline and was killed.
    TimedOut,
}

impl SandboxExit {
    /// Why `what` (the build, the repack) failed, in the words every honest rebuilder uses;
    /// `None` when it succeeded.
    pub fn failure(&self, what: &str, timeout: Duration) -> Option<String> {
        match self {
            SandboxExit::Exited(0) => None,
            SandboxExit::Exited(code) => Some(format!("the {what} exited with status {code}")),
            SandboxExit::Killed => Some(format!("the {what} was killed by a signal")),
            SandboxExit::TimedOut => Some(format!(
                "the {what} ran longer than {} s",
                timeout.as_secs()
            )),
        }
    }
}

/// The one file with extension `extension` a build left in `dir`; `None` when it left none
/// or several.
pub fn only_output(dir: &Path, extension: &str) -> Result<Option<PathBuf>, String> {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    Ok(match found.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// The environment every build gets, before its own variables.
const BASE_ENV: [(&str, &str); 5] = [
    ("PATH", "/usr/bin:/bin"),
    ("HOME", "/tmp"),
    ("TMPDIR", "/tmp"),
    ("TZ", "UTC"),
    ("LC_ALL", "C.UTF-8"),
];

/// A host directory the sandbox sees, and where.
#[derive(Clone, Debug)]
pub struct Mount {
    /// The host path.
    pub host: PathBuf,
    /// Where the build sees it.
    pub inside: &'static str,
    /// Whether the build may write it.
    pub writable: bool,
}

/// Runs `argv` in the sandbox with `mounts`, the environment [`BASE_ENV`] and `env` only (no
/// variable of the node's leaks in), umask 022, in the directory `cwd` (inside). Standard output and error go
/// to `log` (a host file) so the operator can read why a build failed.
pub fn run(
    bwrap: &Path,
    mounts: &[Mount],
    env: &[(&str, String)],
    cwd: &str,
    argv: &[&str],
    log: &Path,
    timeout: Duration,
) -> Result<SandboxExit, String> {
    let mut command = Command::new(bwrap);
    command
        .args(["--unshare-all", "--die-with-parent", "--new-session"])
        .args(["--ro-bind", "/usr", "/usr"])
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        match std::fs::read_link(&host) {
            Ok(target) => {
                command.arg("--symlink").arg(target).arg(&host);
            }
            Err(_) if host.is_dir() => {
                command.arg("--ro-bind").arg(&host).arg(&host);
            }
            Err(_) => {}
        }
    }
    for mount in mounts {
        let flag = if mount.writable {
            "--bind"
        } else {
            "--ro-bind"
        };
        command.arg(flag).arg(&mount.host).arg(mount.inside);
    }
    command.arg("--clearenv");
    for (name, value) in BASE_ENV {
        command.arg("--setenv").arg(name).arg(value);
    }
    for (name, value) in env {
        command.arg("--setenv").arg(name).arg(value);
    }
    command
        .args([
            "--chdir",
            cwd,
            "--",
            "/bin/sh",
            "-c",
            "umask 022 && exec \"$@\"",
            "sh",
        ])
        .args(argv);
    let output = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
        .map_err(|e| format!("cannot start the sandbox ({}): {e}", bwrap.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => {
                return Ok(status
                    .code()
                    .map_or(SandboxExit::Killed, SandboxExit::Exited));
            }
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(SandboxExit::TimedOut);
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
