//! devpi-server as a PyPI upstream: a private index with no bases (nothing from the public
//! index), filled with wheels by devpi-client. Unlike pypiserver it serves PEP 691 JSON pages
//! (with relative file URLs) and lives under a path (`/root/dev/+simple/`), as company
//! indexes do. Both tools live in a venv of their own that `scripts/test` makes
//! (`target/test-tools/devpi-venv`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{Daemon, free_port, wait_http_ok};

/// The venv holding devpi-server and devpi-client.
fn venv() -> PathBuf {
    let venv = crate::target_dir().join("test-tools/devpi-venv");
    assert!(
        venv.join("bin/devpi-server").exists(),
        "{} lacks devpi-server: run scripts/test (it installs the test tools)",
        venv.display()
    );
    venv
}

/// A devpi-server on 127.0.0.1 with one index, `root/dev`.
pub struct Devpi {
    daemon: Daemon,
    port: u16,
}

impl Devpi {
    /// Starts a server keeping its state in `dir` and uploads every wheel in `packages` to
    /// `root/dev`.
    pub fn start(dir: &Path, packages: &Path) -> Devpi {
        let bin = venv().join("bin");
        let server_dir = dir.join("server");
        run(Command::new(bin.join("devpi-init"))
            .arg("--serverdir")
            .arg(&server_dir)
            .arg("--no-root-pypi"));
        let port = free_port();
        let mut command = Command::new(bin.join("devpi-server"));
        command.arg("--serverdir").arg(&server_dir).args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]);
        let daemon = Daemon::spawn(command, &dir.join("devpi.log"));
        let devpi = Devpi { daemon, port };
        wait_http_ok(&devpi.base(), Duration::from_secs(60), &|| {
            devpi.daemon.log_text()
        });
        let client = |args: &[&str]| {
            run(Command::new(bin.join("devpi"))
                .arg("--clientdir")
                .arg(dir.join("client"))
                .args(args))
        };
        client(&["use", &devpi.base()]);
        client(&["login", "root", "--password", ""]);
        client(&["index", "-c", "dev", "bases=", "volatile=True"]);
        client(&["use", "root/dev"]);
        client(&[
            "upload",
            "--from-dir",
            packages.to_str().expect("UTF-8 path"),
        ]);
        devpi
    }

    /// Starts a server keeping its state in `dir` whose `root/pypi` mirrors the public index
    /// (for benchmarks only: tests never reach the internet). It trusts the system's CA
    /// bundle, so it works behind a TLS-inspecting egress proxy.
    pub fn start_public_mirror(dir: &Path) -> Devpi {
        let bin = venv().join("bin");
        let server_dir = dir.join("server");
        run(Command::new(bin.join("devpi-init"))
            .arg("--serverdir")
            .arg(&server_dir));
        let port = free_port();
        let mut command = Command::new(bin.join("devpi-server"));
        command.arg("--serverdir").arg(&server_dir).args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]);
        let bundle = "/etc/ssl/certs/ca-certificates.crt";
        if Path::new(bundle).exists() {
            command
                .env("SSL_CERT_FILE", bundle)
                .env("REQUESTS_CA_BUNDLE", bundle);
        }
        let daemon = Daemon::spawn(command, &dir.join("devpi.log"));
        let devpi = Devpi { daemon, port };
        wait_http_ok(&devpi.base(), Duration::from_secs(60), &|| {
            devpi.daemon.log_text()
        });
        devpi
    }

    /// The public mirror's simple URL ([`Devpi::start_public_mirror`]).
    pub fn mirror_simple_url(&self) -> String {
        format!("{}/root/pypi/+simple/", self.base())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The index's simple URL, with its path, for `--pypi-upstream`.
    pub fn simple_url(&self) -> String {
        format!("{}/root/dev/+simple/", self.base())
    }

    /// Stops the server (the upstream goes down).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// Where the server logs (readable after it stopped).
    pub fn log_file(&self) -> PathBuf {
        self.daemon.log.clone()
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("devpi tool");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
