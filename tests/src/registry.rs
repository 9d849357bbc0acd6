//! Debian's `docker-registry` (CNCF distribution 2.8) as the upstream, on 127.0.0.1 (or on a
//! lab host, `Registry::start_in`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Daemon, free_port, wait_http_ok};
use crate::token::{ISSUER, SERVICE, TokenServer};

/// A running distribution registry with its storage in a directory of the test's.
pub struct Registry {
    daemon: Daemon,
    /// Its port on 127.0.0.1 (or on the lab host).
    pub port: u16,
    /// Where the test process reaches it: 127.0.0.1, or a lab host's management address.
    host: String,
}

impl Registry {
    /// Starts a registry storing under `dir` (kept across restarts of the same directory).
    pub fn start(dir: &Path) -> Registry {
        Self::start_on(dir, free_port())
    }

    /// Starts a registry on a given port (to bring one back where it was).
    pub fn start_on(dir: &Path, port: u16) -> Registry {
        Self::start_with(dir, port, None)
    }

    /// Starts a registry that demands Bearer tokens from `tokens`, like Docker Hub.
    pub fn start_with_token_auth(dir: &Path, port: u16, tokens: &TokenServer) -> Registry {
        Self::start_with(dir, port, Some(tokens))
    }

    /// Starts a registry on the lab host `host` (in its namespace), listening on every
    /// address there: the test pushes to it at [`Registry::authority`] (the management
    /// address), nodes in the lab fetch from [`Registry::lab_url`].
    pub fn start_in(dir: &Path, host: &crate::netns::Host) -> Registry {
        Self::start_where(dir, free_port(), None, Some(host))
    }

    /// `http://<lab address>:<port>`, for nodes in the lab.
    pub fn lab_url(&self, host: &crate::netns::Host) -> String {
        format!("http://{}:{}", host.ip, self.port)
    }

    fn start_with(dir: &Path, port: u16, tokens: Option<&TokenServer>) -> Registry {
        Self::start_where(dir, port, tokens, None)
    }

    fn start_where(
        dir: &Path,
        port: u16,
        tokens: Option<&TokenServer>,
        lab_host: Option<&crate::netns::Host>,
    ) -> Registry {
        std::fs::create_dir_all(dir.join("storage")).expect("registry dir");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {listen}:{port}\n{auth}",
                dir.join("storage").display(),
                listen = if lab_host.is_some() { "0.0.0.0" } else { "127.0.0.1" },
                auth = tokens.map_or(String::new(), |t| format!(
                    "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    t.realm,
                    t.cert_path.display()
                )),
            ),
        )
        .expect("registry config");
        let mut command = match lab_host {
            Some(host) => host.command("docker-registry"),
            None => Command::new("docker-registry"),
        };
        command.arg("serve").arg(&config);
        let daemon = Daemon::spawn(command, &dir.join("registry.log"));
        let host = lab_host.map_or("127.0.0.1".to_string(), |h| h.mgmt_ip.clone());
        let registry = Registry { daemon, port, host };
        // With token auth /v2/ answers 401 until a token is shown; the root answers either way.
        wait_http_ok(
            &format!("{}/", registry.url()),
            Duration::from_secs(20),
            &|| {
                let log = registry.daemon.log_text();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            },
        );
        registry
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// `127.0.0.1:<port>`, as skopeo names it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Stops the registry (the upstream goes down).
    pub fn stop(&mut self) {
        self.daemon.kill();
    }

    /// How many `GET` requests for this blob's path the registry has answered (access log).
    pub fn blob_gets(&self, digest: &str) -> usize {
        let needle = format!("/blobs/{digest} ");
        self.daemon
            .log_text()
            .lines()
            .filter(|l| l.contains("\"GET ") && l.contains(&needle))
            .count()
    }
}
