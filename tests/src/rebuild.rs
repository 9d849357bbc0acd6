//! Packages for the rebuild tests (issue 16), built here reproducibly with the pinned
//! `flit_core` wheel and npm CLI `scripts/test` fetched (`target/test-tools/wheels`,
//! `target/test-tools/tarballs`), and altered the ways an attacker or a sloppy release process
//! would: re-zipped with other times, a module injected after the build, a file added to a
//! packed tarball, a build backend that tries to leave its sandbox.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned `flit_core` wheel: the test upstream serves it (rebuilders fetch it through
/// the node's mirror) and the tests build with it.
pub fn flit_core_wheel() -> PathBuf {
    let wheel = crate::target_dir().join("test-tools/wheels/flit_core-3.9.0-py3-none-any.whl");
    assert!(
        wheel.exists(),
        "{} is missing: run scripts/test (it installs the test tools)",
        wheel.display()
    );
    wheel
}

/// Runs a Python script with the system interpreter (the one rebuilds use) and `flit_core`
/// importable; panics with its output when it fails.
fn python(script: &str, args: &[&str], envs: &[(&str, &str)]) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", flit_core_wheel())
        .envs(envs.iter().copied())
        .output()
        .expect("python3");
    assert!(out.status.success(), "python: {out:?}");
}

/// Builds the sdist and wheel of project `name` (one module, `name` with `_`) at `version`
/// with flit_core and `SOURCE_DATE_EPOCH` = `epoch`, into `dist`; extra source files
/// `extra` (path, content) go into the project tree. Returns (sdist, wheel).
pub fn flit_build(
    dist: &Path,
    name: &str,
    version: &str,
    epoch: u64,
    extra: &[(&str, &str)],
) -> (PathBuf, PathBuf) {
    let module = name.replace('-', "_");
    let tree = dist.join(format!("tree-{name}-{version}"));
    std::fs::create_dir_all(tree.join(&module)).unwrap();
    std::fs::write(
        tree.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"flit_core >=3.2,<4\"]\nbuild-backend = \"flit_core.buildapi\"\n\n[project]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"A package the rebuild tests build\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        tree.join(&module).join("__init__.py"),
        format!("\"\"\"{name}.\"\"\"\nVERSION = {version:?}\n"),
    )
    .unwrap();
    for (path, content) in extra {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let script = r#"
import os, sys
from flit_core import buildapi
tree, dist = sys.argv[1:3]
os.chdir(tree)
print(buildapi.build_sdist(dist))
print(buildapi.build_wheel(dist))
"#;
    let epoch = epoch.to_string();
    python(
        script,
        &[tree.to_str().unwrap(), dist.to_str().unwrap()],
        &[("SOURCE_DATE_EPOCH", &epoch)],
    );
    let sdist = dist.join(format!("{module}-{version}.tar.gz"));
    let wheel = dist.join(format!("{module}-{version}-py2.py3-none-any.whl"));
    assert!(
        sdist.exists() && wheel.exists(),
        "flit built no {sdist:?} or {wheel:?}"
    );
    (sdist, wheel)
}

/// Rewrites `wheel` in place with every entry's time set to `date_time` (year, month, day,
/// hour, minute, second) and the entries in reverse order: the same contents, other bytes.
pub fn restamp_wheel(wheel: &Path, date_time: (u16, u8, u8, u8, u8, u8)) {
    let (y, mo, d, h, mi, s) = date_time;
    let script = r#"
import sys, zipfile
path = sys.argv[1]
when = tuple(int(x) for x in sys.argv[2:8])
with zipfile.ZipFile(path) as old:
    entries = [(i, old.read(i)) for i in old.infolist()]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
    for info, data in reversed(entries):
        entry = zipfile.ZipInfo(info.filename, date_time=when)
        entry.external_attr = info.external_attr
        entry.compress_type = zipfile.ZIP_DEFLATED
        new.writestr(entry, data)
"#;
    let args: Vec<String> = [
        u64::from(y),
        u64::from(mo),
        u64::from(d),
        u64::from(h),
        u64::from(mi),
        u64::from(s),
    ]
    .iter()
    .map(u64::to_string)
    .collect();
    let mut all = vec![wheel.to_str().unwrap()];
    all.extend(args.iter().map(String::as_str));
    python(script, &all, &[]);
}

/// Adds `path` with `content` to `wheel` after its build, listed in its `RECORD` as a
/// release process that injected it would (the injected-package attack).
pub fn inject_into_wheel(wheel: &Path, path: &str, content: &str) {
    let script = r#"
import base64, hashlib, sys, zipfile
wheel, path, content = sys.argv[1:4]
with zipfile.ZipFile(wheel) as old:
    entries = [(i, old.read(i)) for i in old.infolist()]
data = content.encode()
digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as new:
    for info, body in entries:
        if info.filename.endswith(".dist-info/RECORD"):
            body = body + f"{path},sha256={digest},{len(data)}\n".encode()
            new.writestr(zipfile.ZipInfo(path, date_time=info.date_time), data)
        new.writestr(info, body)
"#;
    python(script, &[wheel.to_str().unwrap(), path, content], &[]);
}

/// An sdist of `name` `version` whose in-tree build backend tries to connect to
/// 127.0.0.1:`port` and to write `escape_file` (a host path); when either works it builds
/// a wheel, as a backend that got out would; when both fail it raises. Returns its path.
pub fn escaping_sdist(
    dist: &Path,
    name: &str,
    version: &str,
    port: u16,
    escape_file: &Path,
) -> PathBuf {
    let module = name.replace('-', "_");
    let backend = format!(
        r#"import os, socket, zipfile
def _escape():
    out = []
    try:
        s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
        s.sendall(b"escaped from the rebuild sandbox")
        s.close()
        out.append("socket")
    except OSError:
        pass
    try:
        with open({escape:?}, "w") as f:
            f.write("escaped from the rebuild sandbox")
        out.append("file")
    except OSError:
        pass
    return out
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if not _escape():
        raise RuntimeError("the sandbox held: no network, no write outside the build directory")
    name = "{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as w:
        w.writestr("{module}/__init__.py", "")
    return name
def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("no sdist")
"#,
        escape = escape_file.to_str().unwrap()
    );
    let pyproject =
        "[build-system]\nrequires = []\nbuild-backend = \"evil_backend\"\nbackend-path = [\".\"]\n";
    let script = r#"
import io, sys, tarfile
out, top, pyproject, backend = sys.argv[1:5]
with tarfile.open(out, "w:gz") as tar:
    for name, text in (("pyproject.toml", pyproject), ("evil_backend.py", backend),
                       ("PKG-INFO", "Metadata-Version: 2.1\nName: x\nVersion: 0\n")):
        data = text.encode()
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size = len(data)
        info.mtime = 1700000000
        tar.addfile(info, io.BytesIO(data))
"#;
    let sdist = dist.join(format!("{module}-{version}.tar.gz"));
    let top = format!("{module}-{version}");
    python(
        script,
        &[sdist.to_str().unwrap(), &top, pyproject, &backend],
        &[],
    );
    sdist
}

/// The pinned npm CLI's tarball: the test registry serves it (rebuilders repack with the npm
/// that published a version) and the tests publish with it.
pub fn npm_cli_tarball() -> PathBuf {
    let tarball = crate::target_dir().join("test-tools/tarballs/npm-11.19.1.tgz");
    assert!(
        tarball.exists(),
        "{} is missing: run scripts/test (it installs the test tools)",
        tarball.display()
    );
    tarball
}

/// The pinned npm CLI unpacked into `dir`, as a command (`node …/npm-cli.js`) whose
/// publishes record its version as the publisher's.
pub fn pinned_npm(dir: &Path) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(npm_cli_tarball())
        .arg("-C")
        .arg(dir)
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar: {out:?}");
    let mut npm = Command::new("node");
    npm.arg(dir.join("package/bin/npm-cli.js"));
    npm
}

/// Packs the package in `package_dir` with `npm` into `dist`; returns the tarball.
pub fn npm_pack(mut npm: Command, package_dir: &Path, dist: &Path) -> PathBuf {
    std::fs::create_dir_all(dist).unwrap();
    let out = npm
        .arg("pack")
        .arg(package_dir)
        .arg("--pack-destination")
        .arg(dist)
        .args(["--ignore-scripts", "--silent"])
        .output()
        .expect("npm pack");
    assert!(out.status.success(), "npm pack: {out:?}");
    let name = String::from_utf8_lossy(&out.stdout)
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    dist.join(name)
}

/// Adds `path` (under the tarball's `package/`) with `content` to a packed npm tarball, as a
/// release process that altered it after packing would.
pub fn add_to_tarball(tarball: &Path, path: &str, content: &str) {
    let script = r#"
import gzip, io, sys, tarfile
path, member, content = sys.argv[1:4]
with tarfile.open(path, "r:gz") as old:
    entries = [(i, old.extractfile(i).read() if i.isfile() else None) for i in old.getmembers()]
buffer = io.BytesIO()
with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as new:
    for info, data in entries:
        new.addfile(info, io.BytesIO(data) if data is not None else None)
    data = content.encode()
    info = tarfile.TarInfo(f"package/{member}")
    info.size = len(data)
    info.mtime = entries[0][0].mtime
    info.mode = 0o644
    new.addfile(info, io.BytesIO(data))
with open(path, "wb") as out:
    out.write(gzip.compress(buffer.getvalue(), mtime=0))
"#;
    python(script, &[tarball.to_str().unwrap(), path, content], &[]);
}
