//! A Pyrsia node (`pyrsia node`) as a separate process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binary;
use crate::process::{Daemon, free_port, wait_http_ok};

/// A running node with its data dir and log.
pub struct Node {
    daemon: Daemon,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its P2P port on 127.0.0.1 (`pyrsia` only; the lite mirror has none).
    pub p2p_port: Option<u16>,
    /// The address its HTTP port is on (127.0.0.1, or a lab host's management address).
    http_host: String,
    /// The address its P2P port is on (127.0.0.1, or a lab host's address).
    p2p_host: String,
}

impl Node {
    /// Starts `pyrsia node` with data in `dir`, on a free port, with `args` added (e.g.
    /// `--upstream URL`, `--offline`).
    pub fn start(dir: &Path, args: &[&str]) -> Node {
        Self::start_binary("pyrsia", dir, free_port(), args)
    }

    /// Starts a node binary (`pyrsia` or `pyrsia-lite`) on `port`.
    pub fn start_binary(name: &str, dir: &Path, port: u16, args: &[&str]) -> Node {
        Self::start_with_p2p(name, dir, port, (name == "pyrsia").then(free_port), args)
    }

    /// Starts a node binary on `port`, with its P2P network on 127.0.0.1:`p2p_port` (mDNS off:
    /// nodes of parallel tests must not find each other) unless `args` set it.
    pub fn start_with_p2p(
        name: &str,
        dir: &Path,
        port: u16,
        p2p_port: Option<u16>,
        args: &[&str],
    ) -> Node {
        let node = Self::spawn(name, dir, port, p2p_port, args);
        wait_http_ok(
            &format!("{}/healthz", node.url()),
            Duration::from_secs(20),
            &|| node.log(),
        );
        node
    }

    /// Starts `pyrsia node` serving its mirror port over TLS with `cert` and `key` (PEM), on
    /// `port`; waits until curl, trusting only the CA certificate `ca`, gets its /healthz.
    pub fn start_tls(
        dir: &Path,
        port: u16,
        (cert, key, ca): (&Path, &Path, &Path),
        args: &[&str],
    ) -> Node {
        let (cert, key) = (cert.to_str().expect("path"), key.to_str().expect("path"));
        let mut all = vec!["--tls-cert", cert, "--tls-key", key];
        all.extend_from_slice(args);
        let node = Self::spawn("pyrsia", dir, port, Some(free_port()), &all);
        crate::process::wait_until(
            "the node answers over TLS",
            Duration::from_secs(20),
            &|| node.log(),
            || {
                crate::tls::curl_with_ca(&format!("{}/healthz", node.https_url()), ca)
                    .status
                    .success()
            },
        );
        node
    }

    fn spawn(name: &str, dir: &Path, port: u16, p2p_port: Option<u16>, args: &[&str]) -> Node {
        let data_dir = dir.join("data");
        let mut command = Command::new(binary(name));
        command
            .arg("node")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--http")
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--upstream-connect-timeout",
                "2",
                "--upstream-read-timeout",
                "5",
            ])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PYRSIA_LAB_LOG")
                    .unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into()),
            );
        if let Some(p2p) = p2p_port
            && !args.contains(&"--p2p-listen")
        {
            command
                .args(["--p2p-listen", &format!("/ip4/127.0.0.1/tcp/{p2p}")])
                .arg("--no-mdns");
        }
        let daemon = Daemon::spawn(command, &dir.join(format!("{name}.log")));
        Node {
            daemon,
            port,
            data_dir,
            p2p_port,
            http_host: "127.0.0.1".into(),
            p2p_host: "127.0.0.1".into(),
        }
    }

    /// Starts `pyrsia node` on a lab host (in its network namespace): HTTP on the host's
    /// management address, P2P on its lab address only (TCP, and QUIC unless `args` say
    /// `--no-quic`), mDNS off.
    pub fn start_on(host: &crate::netns::Host, dir: &Path, args: &[&str]) -> Node {
        Self::start_on_port(host, dir, free_port(), args)
    }

    /// [`Node::start_on`] with the P2P port chosen (to name the node's addresses in `args`,
    /// e.g. `--external-addr`).
    pub fn start_on_port(host: &crate::netns::Host, dir: &Path, p2p: u16, args: &[&str]) -> Node {
        let port = free_port();
        let data_dir = dir.join("data");
        let mut command = host.command(&binary("pyrsia").to_string_lossy());
        command
            .arg("node")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--http", &format!("{}:{port}", host.mgmt_ip)])
            .args(["--p2p-listen", &format!("/ip4/{}/tcp/{p2p}", host.ip)])
            .arg("--no-mdns")
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("PYRSIA_LAB_LOG")
                    .unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into()),
            );
        let node = Node {
            daemon: Daemon::spawn(command, &dir.join("pyrsia.log")),
            port,
            data_dir,
            p2p_port: Some(p2p),
            http_host: host.mgmt_ip.clone(),
            p2p_host: host.ip.clone(),
        };
        wait_http_ok(
            &format!("{}/healthz", node.url()),
            Duration::from_secs(20),
            &|| node.log(),
        );
        node
    }

    /// Restarts the node with new arguments on the same port and data.
    pub fn restart(mut self, dir: &Path, args: &[&str]) -> Node {
        assert!(
            self.daemon.terminate(),
            "node did not stop cleanly:\n{}",
            self.log()
        );
        Self::start_with_p2p("pyrsia", dir, self.port, self.p2p_port, args)
    }

    /// The multiaddr other nodes dial this one on, with its peer id.
    pub fn p2p_address(&self) -> String {
        self.p2p_address_on("tcp")
    }

    /// The node's QUIC P2P address on 127.0.0.1 (`/udp/<port>/quic-v1/p2p/<id>`: the same
    /// port number as TCP, which a node listens on unless started with `--no-quic`).
    pub fn quic_address(&self) -> String {
        self.p2p_address_on("udp")
            .replacen("/p2p/", "/quic-v1/p2p/", 1)
    }

    fn p2p_address_on(&self, transport: &str) -> String {
        let port = self.p2p_port.expect("a pyrsia node with P2P");
        let peers = crate::http::get(&format!("{}/peers", self.url())).expect("GET /peers");
        let status: serde_json::Value =
            serde_json::from_str(&peers.small_body).expect("peers JSON");
        format!(
            "/ip4/{}/{transport}/{port}/p2p/{}",
            self.p2p_host,
            status["peer_id"].as_str().expect("peer id")
        )
    }

    /// Starts a node in `dir` that joins `leader`'s network over P2P: the leader's genesis
    /// (saved to `dir/genesis.bin`) and `--peer` the leader, then `args`.
    pub fn start_follower(dir: &Path, leader: &Node, args: &[&str]) -> Node {
        std::fs::create_dir_all(dir).expect("follower dir");
        let genesis = dir.join("genesis.bin");
        leader.save_genesis(&genesis);
        let peer = leader.p2p_address();
        let mut all = vec!["--genesis", genesis.to_str().unwrap(), "--peer", &peer];
        all.extend_from_slice(args);
        Node::start(dir, &all)
    }

    /// Saves the node's genesis entry (`/pyrsia/log/genesis`) to `path`, for `--genesis`.
    pub fn save_genesis(&self, path: &Path) {
        let status = Command::new("curl")
            .args(["-sf", "-o"])
            .arg(path)
            .arg(format!("{}/pyrsia/log/genesis", self.url()))
            .status()
            .expect("curl");
        assert!(status.success(), "GET /pyrsia/log/genesis failed");
    }

    /// A counter from `/metrics` (`pyrsia_<name>_total`), 0 when absent.
    pub fn metric(&self, name: &str) -> u64 {
        let body = crate::http::get(&format!("{}/metrics", self.url()))
            .map(|f| f.small_body)
            .unwrap_or_default();
        body.lines()
            .find(|l| l.starts_with(&format!("pyrsia_{name}_total ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// A gauge from `/metrics` (`pyrsia_<name>`), `None` when absent.
    pub fn gauge(&self, name: &str) -> Option<i64> {
        let body = crate::http::get(&format!("{}/metrics", self.url()))
            .map(|f| f.small_body)
            .unwrap_or_default();
        body.lines()
            .find(|l| l.starts_with(&format!("pyrsia_{name} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// Waits (up to 30 s) until `peer_id` is connected to this node.
    pub fn wait_connected(&self, peer_id: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.connected_peers().iter().any(|p| p == peer_id) {
            assert!(
                std::time::Instant::now() < deadline,
                "{peer_id} never connected\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The peer ids connected to this node.
    pub fn connected_peers(&self) -> Vec<String> {
        let status = self.peers_status();
        status["peers"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `/peers` as JSON (`Null` when the node does not answer).
    pub fn peers_status(&self) -> serde_json::Value {
        crate::http::get(&format!("{}/peers", self.url()))
            .ok()
            .and_then(|peers| serde_json::from_str(&peers.small_body).ok())
            .unwrap_or_default()
    }

    /// `/peers`' `piece_links`: the port, links open and pieces carried and refused.
    pub fn piece_links(&self) -> serde_json::Value {
        self.peers_status()["piece_links"].clone()
    }

    /// TCP connections this node has secured by TLS and by noise so far (`/peers`'
    /// `secured`).
    pub fn secured_connections(&self) -> (u64, u64) {
        let secured = &self.peers_status()["secured"];
        let count = |by: &str| secured[by].as_u64().unwrap_or(0);
        (count("tls"), count("noise"))
    }

    /// The peer ids this node has blocked (`/peers`' `blocked` list).
    pub fn blocked_peers(&self) -> Vec<String> {
        let status = self.peers_status();
        status["blocked"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect()
    }

    /// The addresses this node is connected to `peer_id` on (`/udp/…/quic-v1` for QUIC),
    /// empty when it is not connected.
    pub fn peer_addresses(&self, peer_id: &str) -> Vec<String> {
        let status = self.peers_status();
        status["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["peer_id"].as_str() == Some(peer_id))
            .flat_map(|p| p["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.http_host, self.port)
    }

    /// `https://127.0.0.1:<port>`, for a node started with [`Node::start_tls`].
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Sends the node a signal by name (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// `127.0.0.1:<port>`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.http_host, self.port)
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        self.daemon.log_text()
    }

    /// SIGTERM; true when it stopped cleanly.
    pub fn terminate(&mut self) -> bool {
        self.daemon.terminate()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Whether the node was not killed.
    pub fn is_running(&self) -> bool {
        self.daemon.is_running()
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Files under the blob store (name = hex digest).
    pub fn stored_blobs(&self) -> Vec<String> {
        std::fs::read_dir(self.data_dir.join("blobs/sha256"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (up to 10 s) until a blob is in the store: a blob is served as soon as it is
    /// verified and becomes durable just after. Returns whether it arrived.
    pub fn wait_stored(&self, digest: &pyrsia_core::digest::Digest) -> bool {
        let hex = digest.hex().to_string();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.stored_blobs().contains(&hex) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (up to 30 s) until the node's log commits `name@digest` (`name` canonical, e.g.
    /// `docker.io/library/small`); returns the commit's log index.
    pub fn wait_committed(&self, name: &str, digest: &pyrsia_core::digest::Digest) -> Option<u64> {
        self.wait_committed_within(name, digest, Duration::from_secs(30))
    }

    /// [`Node::wait_committed`] with another time limit.
    pub fn wait_committed_within(
        &self,
        name: &str,
        digest: &pyrsia_core::digest::Digest,
        limit: Duration,
    ) -> Option<u64> {
        let url = format!(
            "{}/pyrsia/log/lookup?name={name}&digest={digest}",
            self.url()
        );
        wait_commit_at(&url, limit)
    }

    /// Waits up to `limit` until the node's log commits version `version` of the package
    /// `name` of `ecosystem` (`npm`, `pypi`); returns the commit's log index.
    pub fn wait_package_committed(
        &self,
        ecosystem: &str,
        name: &str,
        version: &str,
        limit: Duration,
    ) -> Option<u64> {
        let url = format!("{}&version={version}", self.package_lookup(ecosystem, name));
        wait_commit_at(&url, limit)
    }

    /// The log lookup URL of package `name` of `ecosystem` (its subject, query-escaped).
    fn package_lookup(&self, ecosystem: &str, name: &str) -> String {
        let subject = format!("{ecosystem}:{name}")
            .replace(':', "%3A")
            .replace('@', "%40")
            .replace('/', "%2F");
        format!("{}/pyrsia/log/lookup?name={subject}", self.url())
    }

    /// The version the log's latest observation of package tag `tag` of `name` (`npm`
    /// dist-tag, Maven `release`/`latest`) names, if the log observed it.
    pub fn package_tag(&self, ecosystem: &str, name: &str, tag: &str) -> Option<String> {
        let url = format!("{}&tag={tag}", self.package_lookup(ecosystem, name));
        let answer: serde_json::Value = crate::http::get(&url)
            .map(|r| serde_json::from_str(&r.small_body).unwrap_or_default())
            .unwrap_or_default();
        answer["tag_observation"].as_u64()?;
        answer["version"].as_str().map(str::to_string)
    }

    /// Waits up to `limit` until the log's latest observation of package tag `tag` of
    /// `name` names `version`; false when it never did.
    pub fn wait_package_tag(
        &self,
        ecosystem: &str,
        name: &str,
        tag: &str,
        version: &str,
        limit: Duration,
    ) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.package_tag(ecosystem, name, tag).as_deref() == Some(version) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The node's latest final checkpoint (`/pyrsia/log/checkpoint`), parsed; panics when it
    /// has none.
    pub fn checkpoint(&self) -> pyrsia_core::tlog::checkpoint::SignedCheckpoint {
        let text = crate::http::get(&format!("{}/pyrsia/log/checkpoint", self.url()))
            .expect("GET /pyrsia/log/checkpoint")
            .small_body;
        pyrsia_core::tlog::checkpoint::SignedCheckpoint::parse(&text)
            .unwrap_or_else(|e| panic!("not a signed checkpoint ({e}): {text}"))
    }

    /// The node's `/status` `log` object.
    pub fn log_status(&self) -> serde_json::Value {
        crate::http::get(&format!("{}/status", self.url()))
            .ok()
            .and_then(|f| serde_json::from_str::<serde_json::Value>(&f.small_body).ok())
            .map(|s| s["log"].clone())
            .unwrap_or_default()
    }

    /// This node's peer id (the last part of [`Node::p2p_address`]).
    pub fn peer_id(&self) -> String {
        let address = self.p2p_address();
        address.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// Files left in the temp directory.
    pub fn temp_files(&self) -> usize {
        std::fs::read_dir(self.data_dir.join("tmp")).map_or(0, Iterator::count)
    }
}

/// Waits (up to 60 s) until every node in `nodes` is connected to every other.
pub fn wait_mesh(nodes: &[&Node]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while nodes
        .iter()
        .any(|n| n.connected_peers().len() < nodes.len() - 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mesh of {} nodes did not form\n{}",
            nodes.len(),
            nodes[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls the log lookup at `url` for up to `limit` until it names a commit; returns its index.
fn wait_commit_at(url: &str, limit: Duration) -> Option<u64> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(found) = crate::http::get(url) {
            let answer: serde_json::Value =
                serde_json::from_str(&found.small_body).unwrap_or_default();
            if let Some(index) = answer["commit"].as_u64() {
                return Some(index);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
