//! The real clients: skopeo, podman (as root, vfs storage, a registries.conf mirror) and
//! containerd's ctr (a private containerd, `--hosts-dir` with a hosts.toml).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pyrsia_core::digest::Digest;

use crate::process::Daemon;

/// Runs a command, panicking with its output if it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Asserts that a client command succeeded; on failure shows its stderr and `log` (the
/// node's log, usually).
pub fn assert_succeeded(out: &Output, what: &str, log: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}\n--- node log ---\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manifest digest of `repository:tag` on a registry (`127.0.0.1:port`), per skopeo.
pub fn remote_digest(registry: &str, reference: &str) -> Digest {
    let output = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{registry}/{reference}"),
    ]));
    Digest::parse(String::from_utf8_lossy(&output.stdout).trim()).expect("skopeo printed a digest")
}

/// `skopeo copy docker://<registry>/<reference> dir:<dest>`; returns the output (not checked).
pub fn skopeo_copy(registry: &str, reference: &str, dest: &Path) -> Output {
    let _ = std::fs::remove_dir_all(dest);
    Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--retry-times",
            "0",
        ])
        .arg(format!("docker://{registry}/{reference}"))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("skopeo")
}

/// podman as root with its own storage (vfs) and a registries.conf whose docker.io mirror is
/// the node: pulls `docker.io/...` exactly as a configured machine would.
pub struct Podman {
    root: PathBuf,
}

impl Podman {
    /// Sets podman up under `dir` with `mirror` (`127.0.0.1:port`) for docker.io.
    pub fn new(dir: &Path, mirror: &str) -> Podman {
        std::fs::create_dir_all(dir).expect("podman dir");
        std::fs::write(
            dir.join("registries.conf"),
            format!(
                "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n\
                 [[registry.mirror]]\nlocation = \"{mirror}\"\ninsecure = true\n"
            ),
        )
        .expect("registries.conf");
        std::fs::write(
            dir.join("policy.json"),
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("policy");
        Podman {
            root: dir.to_path_buf(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.root.join("registries.conf"),
            )
            .env("XDG_RUNTIME_DIR", self.root.join("xdg"))
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--cgroup-manager",
                "cgroupfs",
            ]);
        command
    }

    /// `podman pull docker.io/<reference>`; returns the output (not checked).
    pub fn pull(&self, reference: &str) -> Output {
        self.command()
            .args(["pull", "--signature-policy"])
            .arg(self.root.join("policy.json"))
            .arg(format!("docker.io/{reference}"))
            .output()
            .expect("podman")
    }

    /// Removes every image, so the next pull fetches again.
    pub fn remove_all(&self) {
        let _ = self.command().args(["rmi", "--all", "--force"]).output();
    }
}

/// A private containerd (root, state and socket in a temp dir; CRI disabled) and ctr pulling
/// through the node via `--hosts-dir`.
pub struct Containerd {
    dir: PathBuf,
    _daemon: Daemon,
}

impl Containerd {
    /// Starts containerd under `dir` with `mirror` (`127.0.0.1:port`) as docker.io's host.
    pub fn start(dir: &Path, mirror: &str) -> Containerd {
        std::fs::create_dir_all(dir.join("hosts/docker.io")).expect("containerd dir");
        std::fs::write(
            dir.join("hosts/docker.io/hosts.toml"),
            format!("server = \"https://registry-1.docker.io\"\n\n[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .expect("hosts.toml");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{d}/containerd.sock\"\n",
                d = dir.display()
            ),
        )
        .expect("config.toml");
        let mut command = Command::new("containerd");
        command.arg("--config").arg(dir.join("config.toml"));
        let daemon = Daemon::spawn(command, &dir.join("containerd.log"));
        let containerd = Containerd {
            dir: dir.to_path_buf(),
            _daemon: daemon,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !containerd
            .ctr()
            .args(["version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    fn ctr(&self) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.dir.join("containerd.sock"));
        command
    }

    /// `ctr images pull --hosts-dir … docker.io/<reference>`; returns the output.
    pub fn pull(&self, reference: &str) -> Output {
        self.ctr()
            .args(["images", "pull", "--snapshotter", "native", "--hosts-dir"])
            .arg(self.dir.join("hosts"))
            .arg(format!("docker.io/{reference}"))
            .output()
            .expect("ctr")
    }

    /// Removes the image and its content, so the next pull fetches again.
    pub fn remove(&self, reference: &str) {
        let _ = self
            .ctr()
            .args(["images", "rm", "--sync"])
            .arg(format!("docker.io/{reference}"))
            .output();
        let output = self
            .ctr()
            .args(["content", "ls", "-q"])
            .output()
            .expect("ctr");
        for digest in String::from_utf8_lossy(&output.stdout).lines() {
            let _ = self.ctr().args(["content", "rm", digest]).output();
        }
    }
}
