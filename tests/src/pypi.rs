//! PyPI parts for the package tests: wheels built here deterministically, pypiserver as the
//! upstream index, and pip as the client. Both tools live in the venv `scripts/test` makes
//! (`target/test-tools/pyvenv`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{Daemon, free_port, wait_http_ok};

/// The venv holding pypiserver and pip.
pub fn venv() -> PathBuf {
    let target = crate::target_dir();
    let venv = target.join("test-tools/pyvenv");
    assert!(
        venv.join("bin/pypi-server").exists(),
        "{} lacks pypiserver: run scripts/test (it installs the test tools)",
        venv.display()
    );
    venv
}

/// Writes the wheel `{name}-{version}-py3-none-any.whl` of a pure-Python package into `dir`:
/// one module `{name}` (dashes as underscores) whose `VERSION` is `version`, requiring
/// `requires`. The same arguments give the same bytes. Returns its path.
pub fn make_wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) -> PathBuf {
    make_wheel_for_python(dir, name, version, requires, None)
}

/// [`make_wheel`], declaring `Requires-Python: {requires_python}` when given.
pub fn make_wheel_for_python(
    dir: &Path,
    name: &str,
    version: &str,
    requires: &[&str],
    requires_python: Option<&str>,
) -> PathBuf {
    std::fs::create_dir_all(dir).expect("wheel dir");
    let module = name.replace('-', "_");
    let file = dir.join(format!("{module}-{version}-py3-none-any.whl"));
    let script = r#"
import base64, hashlib, sys, zipfile
path, name, module, version = sys.argv[1:5]
requires = sys.argv[5:]
info = f"{module}-{version}.dist-info"
import os
metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
    f"Requires-Dist: {r}\n" for r in requires)
if os.environ.get("REQUIRES_PYTHON"):
    metadata += f"Requires-Python: {os.environ['REQUIRES_PYTHON']}\n"
files = {
    f"{module}/__init__.py": f"VERSION = {version!r}\n",
    f"{info}/METADATA": metadata,
    f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: pyrsia-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for member, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += f"{member},sha256={digest},{len(data)}\n"
files[f"{info}/RECORD"] = record + f"{info}/RECORD,,\n"
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
    for member, text in files.items():
        entry = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        wheel.writestr(entry, text)
"#;
    let out = Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .arg(&file)
        .args([name, &module, version])
        .args(requires)
        .env("REQUIRES_PYTHON", requires_python.unwrap_or(""))
        .output()
        .expect("python");
    assert!(out.status.success(), "make_wheel: {out:?}");
    file
}

/// pypiserver serving the packages in a directory, as a PEP 503 index at `/simple/`.
pub struct PypiServer {
    daemon: Daemon,
    port: u16,
}

impl PypiServer {
    /// Serves `packages` (never redirecting to the public index for what it lacks).
    pub fn start(packages: &Path, log_dir: &Path) -> PypiServer {
        let port = free_port();
        let mut command = Command::new(venv().join("bin/pypi-server"));
        command
            .args(["run", "-v", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "--disable-fallback",
                "--hash-algo",
                "sha256",
                "-a",
                ".",
                "-P",
                ".",
            ])
            .arg(packages);
        let daemon = Daemon::spawn(command, &log_dir.join("pypiserver.log"));
        let server = PypiServer { daemon, port };
        wait_http_ok(
            &format!("{}/simple/", server.url_base()),
            Duration::from_secs(20),
            &|| server.daemon.log_text(),
        );
        server
    }

    fn url_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The simple index URL, for `--pypi-upstream`.
    pub fn simple_url(&self) -> String {
        format!("{}/simple/", self.url_base())
    }

    /// Stops the server (the upstream goes down).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Where the server logs (readable after it stopped).
    pub fn log_file(&self) -> PathBuf {
        self.daemon.log.clone()
    }
}

/// `pip install` into `target` from the index at `index_url`, with `args` (requirements,
/// options); pip's own config, cache and the public index are never used.
pub fn pip_install(index_url: &str, target: &Path, args: &[&str]) -> Output {
    Command::new(venv().join("bin/pip"))
        .args(["install", "--no-cache-dir", "--disable-pip-version-check"])
        .args(["--no-input", "--timeout", "20", "--retries", "0"])
        .args(["--index-url", index_url, "--target"])
        .arg(target)
        .args(args)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .output()
        .expect("pip")
}

/// `uv pip install ARGS` into `target` from `index_url`, with no cache and no user config.
pub fn uv_pip_install(index_url: &str, target: &Path, args: &[&str]) -> Output {
    Command::new(venv().join("bin/uv"))
        .args([
            "pip",
            "install",
            "--no-cache",
            "--no-config",
            "--python",
            "/usr/bin/python3",
        ])
        .args(["--index-url", index_url, "--target"])
        .arg(target)
        .args(args)
        .env_remove("UV_INDEX_URL")
        .env_remove("UV_EXTRA_INDEX_URL")
        .env("UV_HTTP_TIMEOUT", "20")
        .output()
        .expect("uv")
}

/// The sha256 (hex) of a file.
pub fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read file");
    pyrsia_core::digest::Digest::sha256(&bytes)
        .hex()
        .as_str()
        .to_string()
}
