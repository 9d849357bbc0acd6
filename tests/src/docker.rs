//! Debian's Docker daemon (`dockerd` from `docker.io`) as a client of the node: its own data
//! root, exec root and socket in a temp dir, vfs storage, no bridge and no iptables, and the
//! node as its `registry-mirrors` entry in its own daemon.json — the setting Pyrsia's
//! getting-started tells users to make. Its HTTP(S) proxy is a dead port on 127.0.0.1, so a
//! fallback to Docker Hub fails at once and never leaves the machine: a pull that succeeds
//! was served by the mirror.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::process::Daemon;

/// A running dockerd.
pub struct DockerDaemon {
    dir: PathBuf,
    daemon: Daemon,
}

impl DockerDaemon {
    /// Starts dockerd under `dir` with `mirror` (e.g. `http://127.0.0.1:7888`) as Docker
    /// Hub's mirror; waits until it answers.
    pub fn start(dir: &Path, mirror: &str) -> DockerDaemon {
        std::fs::create_dir_all(dir).expect("docker dir");
        let config = serde_json::json!({
            "registry-mirrors": [mirror],
            "storage-driver": "vfs",
            "data-root": dir.join("root"),
            "exec-root": dir.join("exec"),
            "pidfile": dir.join("docker.pid"),
            "hosts": [format!("unix://{}", dir.join("docker.sock").display())],
            "bridge": "none",
            "iptables": false,
            "ip6tables": false,
        });
        std::fs::write(
            dir.join("daemon.json"),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("daemon.json");
        let mut command = Command::new("dockerd");
        command
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost");
        let daemon = Daemon::spawn(command, &dir.join("dockerd.log"));
        let docker = DockerDaemon {
            dir: dir.to_path_buf(),
            daemon,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !docker
            .docker()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline && docker.daemon.is_running(),
                "dockerd did not start:\n{}",
                docker.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command
            .arg("--host")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()));
        command
    }

    /// `docker pull <reference>`; returns the output (not checked).
    pub fn pull(&self, reference: &str) -> Output {
        self.docker()
            .args(["pull", reference])
            .output()
            .expect("docker")
    }

    /// The repository digests Docker recorded for a pulled image (`name@sha256:…`).
    pub fn repo_digests(&self, reference: &str) -> Vec<String> {
        let out = self
            .docker()
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                reference,
            ])
            .output()
            .expect("docker");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Removes every image, so the next pull fetches everything again.
    pub fn remove_all_images(&self) {
        let out = self
            .docker()
            .args(["image", "ls", "--quiet", "--no-trunc"])
            .output()
            .expect("docker");
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        if !ids.is_empty() {
            let _ = self
                .docker()
                .args(["image", "rm", "--force"])
                .args(&ids)
                .output();
        }
    }

    /// dockerd's log so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// Stops dockerd (SIGTERM, so it stops its containerd too).
    pub fn stop(mut self) {
        self.daemon.terminate();
    }
}

impl Drop for DockerDaemon {
    fn drop(&mut self) {
        self.daemon.terminate();
    }
}
