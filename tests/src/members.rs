//! A multi-member network of node processes on 127.0.0.1: keys made by `pyrsia key`, the
//! genesis written by `pyrsia genesis`, every member dialling the first one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::node::{Node, wait_mesh};
use crate::process::free_port;
use crate::pyrsia;

/// The log name of test networks.
pub const ORIGIN: &str = "test.invalid/consensus";

/// Member options that keep tests short: half-second rounds, 20 s build deadlines.
pub const FAST: [&str; 4] = ["--round-timeout-ms", "500", "--build-timeout", "20"];

/// The members of a test network.
pub struct Members {
    /// The running members, in genesis order.
    pub nodes: Vec<Node>,
    /// Their directories (each node's data is in `dir/data`).
    pub dirs: Vec<PathBuf>,
    /// The genesis file.
    pub genesis: PathBuf,
    /// The options every member was started with.
    pub args: Vec<String>,
    /// Each member's HTTP and P2P port, to restart it on the same ones.
    pub ports: Vec<(u16, u16)>,
}

/// Creates the key of a node whose data will be in `dir/data`; returns its public key (hex).
pub fn node_key(dir: &Path) -> String {
    let out = pyrsia(&["key", "--data-dir", dir.join("data").to_str().unwrap()]);
    assert!(out.status.success(), "pyrsia key failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Members {
    /// Starts `n` members pulling from `upstream`; `extra(i)` adds options to member `i`.
    pub fn start(
        work: &Path,
        upstream: &str,
        n: usize,
        extra: &dyn Fn(usize) -> Vec<String>,
    ) -> Members {
        let dirs: Vec<PathBuf> = (0..n).map(|i| work.join(format!("member{i}"))).collect();
        let keys: Vec<String> = dirs.iter().map(|d| node_key(d)).collect();
        let genesis = work.join("genesis.bin");
        let mut args = vec![
            "genesis",
            "--origin",
            ORIGIN,
            "--out",
            genesis.to_str().unwrap(),
        ];
        for key in &keys {
            args.extend(["--member", key.as_str()]);
        }
        let out = pyrsia(&args);
        assert!(out.status.success(), "pyrsia genesis failed: {out:?}");
        let mut common: Vec<String> = vec![
            "--upstream".into(),
            upstream.into(),
            "--genesis".into(),
            genesis.to_str().unwrap().into(),
        ];
        common.extend(FAST.iter().map(|s| s.to_string()));
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut members = Members {
            nodes: Vec::new(),
            dirs,
            genesis,
            args: common,
            ports,
        };
        for i in 0..n {
            let node = members.start_member(i, &extra(i));
            members.nodes.push(node);
        }
        let refs: Vec<&Node> = members.nodes.iter().collect();
        wait_mesh(&refs);
        members
    }

    /// Starts member `i` (again) on its ports with the common options and `extra`, dialling
    /// every other member that runs (not killed).
    pub fn start_member(&self, i: usize, extra: &[String]) -> Node {
        let mut args = self.args.clone();
        args.extend(extra.iter().cloned());
        let (http, p2p) = self.ports[i];
        // Every other running member, so that the mesh forms at once.
        for (_, peer) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, peer)| *j != i && peer.is_running())
        {
            args.push("--peer".into());
            args.push(peer.p2p_address());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start_with_p2p("pyrsia", &self.dirs[i], http, Some(p2p), &refs)
    }

    /// `pyrsia verify` of `image` against `node`, trusting only this network's genesis
    /// (checkpoint quorum, inclusion, every digest); panics with its output and every
    /// member's log when it fails.
    pub fn verify(&self, node: &Node, image: &str) {
        // A tag is observed in the log once its digest is committed: in the commit's batch
        // or a later one, so a verification by tag may wait for it a little.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.verify_output(&node.url(), image);
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success()
                && stdout.contains("was never observed in the log")
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(250));
                continue;
            }
            assert!(
                out.status.success(),
                "pyrsia verify {image} against {}: {}\n{}\n{}",
                node.url(),
                stdout,
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            return;
        }
    }

    /// What `pyrsia verify` of `image` through `node_url` prints, trusting only this network's
    /// genesis (for tests that expect it to refuse).
    pub fn verify_output(&self, node_url: &str, image: &str) -> std::process::Output {
        pyrsia(&[
            "verify",
            "docker",
            "--image",
            image,
            "--genesis",
            self.genesis.to_str().unwrap(),
            "--node",
            node_url,
        ])
    }

    /// Every member's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("===== member {i}\n{}", n.log()))
            .collect()
    }

    /// Waits until every member in `which` holds a tag observation of `name:tag` at `digest`
    /// (ordered once f+1 members vouched for it and the digest is committed).
    pub fn wait_tag_observed(
        &self,
        which: &[usize],
        name: &str,
        tag: &str,
        digest: &pyrsia_core::digest::Digest,
    ) {
        for &i in which {
            let url = format!(
                "{}/pyrsia/log/lookup?name={name}&tag={tag}",
                self.nodes[i].url()
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let answer: serde_json::Value = crate::http::get(&url)
                    .map(|r| serde_json::from_str(&r.small_body).unwrap_or_default())
                    .unwrap_or_default();
                if answer["tag_observation"].is_u64() && answer["digest"] == digest.to_string() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "member {i} never observed {name}:{tag} at {digest}: {answer}\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Waits until every member in `which` committed `name@digest`.
    pub fn wait_committed(
        &self,
        which: &[usize],
        name: &str,
        digest: &pyrsia_core::digest::Digest,
    ) {
        for &i in which {
            self.nodes[i]
                .wait_committed_within(name, digest, Duration::from_secs(90))
                .unwrap_or_else(|| {
                    panic!("member {i} did not commit {name}@{digest}\n{}", self.logs())
                });
        }
    }
}
