//! The node's command-line options, shared by `pyrsia node` and `pyrsia-lite`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use pyrsia_core::reference::Host;
use pyrsia_std::consensus::{Byzantine, MemberConfig};
use pyrsia_std::mirror::MirrorConfig;
use pyrsia_std::store::ScrubConfig;
use pyrsia_std::upstream::Timeouts;

/// Run a Pyrsia node: a registry mirror on --http (default 127.0.0.1:7888) that pulls through
/// from Docker Hub (or --upstream) and keeps serving what it cached when the upstream is down.
#[derive(FromArgs, Debug, Clone)]
#[argh(subcommand, name = "node")]
pub struct NodeOptions {
    /// read node options from this TOML file (default: config.toml in the platform's config
    /// dir, e.g. ~/.config/pyrsia/config.toml, if it exists; PYRSIA_CONFIG also names one);
    /// a flag beats a PYRSIA_* environment variable, which beats the file
    #[argh(option)]
    pub config: Option<PathBuf>,

    /// where the store lives (default: the platform's user data dir, e.g. ~/.local/share/pyrsia)
    #[argh(option)]
    pub data_dir: Option<PathBuf>,

    /// the HTTP listen address (default 127.0.0.1:7888)
    #[argh(option, default = "default_http()")]
    pub http: SocketAddr,

    /// serve the mirror port over TLS with this PEM certificate chain (needs --tls-key); the
    /// files are read again on SIGHUP, so a renewed certificate needs no restart
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,

    /// the PEM private key of --tls-cert
    #[argh(option)]
    pub tls_key: Option<PathBuf>,

    /// upstream for docker.io as URL, or HOST=URL for another registry host (repeatable)
    #[argh(option)]
    pub upstream: Vec<String>,

    /// another registry host this node may fetch from, at https://HOST (repeatable); without
    /// it only docker.io and the --upstream hosts are ever contacted, whatever a client's
    /// ?ns=, a peer or a member asks
    #[argh(option, from_str_fn(parse_host))]
    pub allow_upstream: Vec<Host>,

    /// the PyPI simple index that /pypi/simple/ pulls through (default
    /// https://pypi.org/simple/; may carry a path, e.g. a devpi index's /root/pypi/+simple/)
    #[argh(option, default = "String::from(pyrsia_std::pypi::PYPI_SIMPLE_URL)")]
    pub pypi_upstream: String,

    /// the npm registry that /npm/ pulls through (default https://registry.npmjs.org/)
    #[argh(option, default = "String::from(pyrsia_std::npm::NPM_REGISTRY_URL)")]
    pub npm_upstream: String,

    /// the Maven repository that /maven2/ pulls through (default
    /// https://repo.maven.apache.org/maven2/)
    #[argh(option, default = "String::from(pyrsia_std::maven::MAVEN_CENTRAL_URL)")]
    pub maven_upstream: String,

    /// seconds a PyPI project page, npm packument or maven-metadata.xml fetched from the upstream is answered
    /// from memory before it is asked again (default 60; 0 asks every time)
    #[argh(option, default = "pyrsia_std::ttl_cache::DOCUMENT_TTL.as_secs()")]
    pub index_ttl: u64,

    /// never contact an upstream: serve only what is cached
    #[argh(switch)]
    pub offline: bool,

    /// keep the store under this size (e.g. 20G, 512M); least recently used blobs are evicted
    #[argh(option, from_str_fn(parse_size))]
    pub max_disk: Option<u64>,

    /// re-hash stored blobs against bit rot at most this many bytes per second (default 16M;
    /// 0 turns scrubbing off); a blob that no longer matches its digest is quarantined and
    /// fetched again on its next request
    #[argh(option, from_str_fn(parse_size), default = "16 << 20")]
    pub scrub_rate: u64,

    /// seconds between the starts of two scrub passes over the store (default 86400; the
    /// first pass starts 10 minutes after start, or after this, if shorter)
    #[argh(option, default = "86400")]
    pub scrub_every: u64,

    /// seconds to wait for an upstream connection (default 10)
    #[argh(option, default = "10")]
    pub upstream_connect_timeout: u64,

    /// seconds an upstream may stay silent mid-request before it is given up (default 30)
    #[argh(option, default = "30")]
    pub upstream_read_timeout: u64,

    /// HTTP worker threads, i.e. requests served at once (default 128)
    #[argh(option, default = "128")]
    pub http_workers: usize,

    /// the network's genesis file (entry 0 of its log); without it the node starts a
    /// standalone network of its own key (n=1) and commits what it verifies
    #[argh(option)]
    pub genesis: Option<PathBuf>,

    /// serve only artifacts committed to the transparency log (others get 404 until
    /// verified; verification is requested on the first pull)
    #[argh(switch)]
    pub verified_only: bool,

    /// serve only what --verified-only serves and, of an ecosystem the network rebuilds
    /// (PyPI's pure-Python wheels), only releases whose rebuild from source reproduced the
    /// upstream's wheel (also spelled --verified-only=reproduced)
    #[argh(switch)]
    pub reproduced_only: bool,

    /// rebuild what this node verifies (or, as a member, is selected to rebuild) in a
    /// bubblewrap sandbox without network and attest whether it reproduces the upstream's
    /// artifact: a pure-Python wheel from the release's sdist (`pypi-rebuild/v1`, needs
    /// python3 with pip), an npm tarball repacked by the npm that published it
    /// (`npm-rebuild/v1`, needs node); needs bwrap
    #[argh(switch)]
    pub rebuild: bool,

    /// the Python interpreter rebuilds run with (default /usr/bin/python3)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/python3\")")]
    pub rebuild_python: PathBuf,

    /// the Node.js interpreter npm repacks run with (default /usr/bin/node)
    #[argh(option, default = "PathBuf::from(\"/usr/bin/node\")")]
    pub rebuild_node: PathBuf,

    /// how long one rebuild may run, in seconds (default 300)
    #[argh(option, default = "300")]
    pub rebuild_timeout: u64,

    /// follow the transparency log of the node at this URL over HTTP (needs --genesis): how
    /// a lite mirror verifies through a full node
    #[argh(option)]
    pub log_from: Option<String>,

    /// the P2P listen address (default /ip4/0.0.0.0/tcp/44000; `pyrsia` only, the lite mirror
    /// has no P2P network)
    #[argh(option, default = "String::from(DEFAULT_P2P_LISTEN)")]
    pub p2p_listen: String,

    /// a peer to connect to at start, as a multiaddr with or without /p2p/<id> (repeatable;
    /// more can be listed in the data dir's `peers` file, one per line)
    #[argh(option)]
    pub peer: Vec<String>,

    /// an address at which peers reach this node, for an operator who knows it (a public IP,
    /// a forwarded port), as a multiaddr (repeatable): advertised to peers as confirmed,
    /// without waiting for AutoNAT to test it
    #[argh(option)]
    pub external_addr: Vec<String>,

    /// serve as a relay for nodes behind NATs (on a public node): at most 128 reservations
    /// and 16 circuits, each circuit at most 2 minutes and 128 KiB, enough to coordinate a
    /// hole punch and never a blob
    #[argh(switch)]
    pub relay_server: bool,

    /// do not look for peers on the LAN with mDNS
    #[argh(switch)]
    pub no_mdns: bool,

    /// speak TCP only: by default the node also listens for QUIC on the UDP port of the same
    /// number as --p2p-listen's and dials peers beyond its own network over QUIC first
    #[argh(switch)]
    pub no_quic: bool,

    /// dial peers at loopback, private and link-local addresses over QUIC first too: by
    /// default they are dialled over TCP first, which costs less CPU per byte on a LAN
    #[argh(switch)]
    pub quic_on_lan: bool,

    /// carry piece bytes over libp2p only: by default a node also serves pieces on piece
    /// links, TLS connections beside libp2p's on a port of their own (named to peers over
    /// identify), which cost about half the CPU per byte
    #[argh(switch)]
    pub no_piece_links: bool,

    /// the TCP port piece links listen on, at --p2p-listen's IP (default 0: a free port picked
    /// at start, named to peers over identify); set one to open it in a firewall beside the
    /// libp2p port. The node does not start when it cannot listen on the port chosen
    #[argh(option, default = "0")]
    pub piece_link_port: u16,

    /// serve peers at most this many piece bytes per second in all (e.g. 10M; default
    /// unlimited); a piece that would wait over 2 s is refused, and the peer asks elsewhere
    #[argh(option, from_str_fn(parse_size))]
    pub max_upload_rate: Option<u64>,

    /// fetch at most this many piece bytes per second from peers in all (e.g. 50M; default
    /// unlimited)
    #[argh(option, from_str_fn(parse_size))]
    pub max_download_rate: Option<u64>,

    /// connections to peers established at once (default 1024)
    #[argh(option)]
    pub max_peers: Option<u32>,

    /// serve the edge protocol to edge caches on this TCP address (for example 0.0.0.0:7890;
    /// off by default): checkpoints, commit proofs and pieces, all verifiable by the asker
    #[argh(option)]
    pub edge_listen: Option<SocketAddr>,

    /// a member's first consensus round timeout in milliseconds; later rounds wait longer
    /// (default 3000)
    #[argh(option, default = "3000")]
    pub round_timeout_ms: u64,

    /// how long the builders selected for a request have before more are asked, in seconds
    /// (default 300)
    #[argh(option, default = "300")]
    pub build_timeout: u64,

    /// builds (and rebuilds) this member runs at once when the network selects it (default
    /// 4); further selections queue, fairly across requesters
    #[argh(
        option,
        default = "pyrsia_core::consensus::limits::MAX_CONCURRENT_BUILDS"
    )]
    pub max_builds: usize,

    /// re-sign (sole member) or re-order (members) the latest checkpoint when it is older
    /// than this many seconds, so that light clients' freshness checks pass on a quiet log
    /// (default 3600)
    #[argh(option, default = "3600")]
    pub checkpoint_refresh: u64,

    /// TESTING ONLY: make this member misbehave (`wrong-digest`: attest a wrong digest for
    /// every build; `split-votes`: propose and vote for two batches per round; `flood`: send
    /// junk proposals, votes, requests and endorsements at full rate; `forge-tags`: point
    /// tags elsewhere on its own word and vouch for every tag query unseen), to check that
    /// the network tolerates it
    #[argh(option, from_str_fn(parse_byzantine))]
    pub test_byzantine: Option<Byzantine>,
}

fn parse_host(text: &str) -> Result<Host, String> {
    Host::parse(text).map_err(|e| format!("--allow-upstream {text}: {e}"))
}

fn parse_byzantine(text: &str) -> Result<Byzantine, String> {
    match text {
        "wrong-digest" => Ok(Byzantine::WrongDigest),
        "split-votes" => Ok(Byzantine::SplitVotes),
        "flood" => Ok(Byzantine::Flood),
        "forge-tags" => Ok(Byzantine::ForgeTags),
        _ => Err(format!(
            "unknown misbehaviour {text:?} (known: wrong-digest, split-votes, flood, forge-tags)"
        )),
    }
}

/// The default P2P listen address.
pub const DEFAULT_P2P_LISTEN: &str = "/ip4/0.0.0.0/tcp/44000";

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7888))
}

/// Parses `512M`, `20G`, `1T`, `1048576` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    let multiplier: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("invalid size unit in {text:?} (use K, M, G or T)")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

impl NodeOptions {
    /// The TLS files of the mirror port, if it serves TLS; an error if only one is given.
    pub fn tls_files(&self) -> Result<Option<crate::tls::TlsFiles>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => Err("--tls-key needs --tls-cert".into()),
        }
    }

    /// How this node runs as a member of a multi-member network.
    pub fn member_config(&self) -> MemberConfig {
        MemberConfig {
            round_timeout: Duration::from_millis(self.round_timeout_ms.max(1)),
            build_timeout: Duration::from_secs(self.build_timeout.max(1)),
            checkpoint_refresh: Duration::from_secs(self.checkpoint_refresh.max(1)),
            max_builds: self.max_builds.max(1),
            byzantine: self.test_byzantine,
        }
    }

    /// The mirror configuration these options describe.
    pub fn mirror_config(&self) -> Result<MirrorConfig, String> {
        let data_dir = match &self.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir()?,
        };
        let mut config = MirrorConfig::new(data_dir);
        for spec in &self.upstream {
            let (host, url) = match spec.split_once('=') {
                Some((host, url)) => (
                    Host::parse(host).map_err(|e| format!("--upstream {spec}: {e}"))?,
                    url,
                ),
                None => (Host::docker_hub(), spec.as_str()),
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "--upstream {spec}: the URL must start with http:// or https://"
                ));
            }
            config.upstreams.push((host, url.to_string()));
        }
        config.allowed_upstreams = self.allow_upstream.clone();
        config.scrub = ScrubConfig {
            bytes_per_second: self.scrub_rate,
            every: Duration::from_secs(self.scrub_every.max(1)),
        };
        config.max_download_waiters = download_waiters(self.http_workers);
        config.offline = self.offline;
        config.max_disk_bytes = self.max_disk;
        config.timeouts = Timeouts {
            connect: Duration::from_secs(self.upstream_connect_timeout),
            read: Duration::from_secs(self.upstream_read_timeout),
        };
        Ok(config)
    }
}

/// How many of `workers` HTTP workers may wait on downloads at once: all but an eighth (at
/// least one), which stay free for cached content, health checks and status.
pub fn download_waiters(workers: usize) -> usize {
    let workers = workers.max(1);
    workers.saturating_sub((workers / 8).max(1)).max(1)
}

/// The data dir a node uses without `--data-dir`: the user's data directory's `pyrsia`.
pub fn default_data_dir() -> Result<PathBuf, String> {
    dirs::data_dir()
        .map(|dir| dir.join("pyrsia"))
        .ok_or_else(|| "no user data directory on this platform; pass --data-dir".to_string())
}

/// The command line with `--verified-only=reproduced` spelled as argh reads it
/// (`--reproduced-only`; `--verified-only=committed` is `--verified-only`), then parsed as
/// `argh::from_env` does: `--help` prints and exits 0, an error prints and exits 1.
pub fn from_env_with_spellings<T: argh::TopLevelCommand>() -> T {
    let args = spelled(std::env::args());
    let program = args.first().map_or("pyrsia", String::as_str);
    let command = std::path::Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    T::from_args(&[command], &rest).unwrap_or_else(|early| {
        std::process::exit(match early.status {
            Ok(()) => {
                println!("{}", early.output);
                0
            }
            Err(()) => {
                eprintln!(
                    "{}\nRun {command} --help for more information.",
                    early.output
                );
                1
            }
        })
    })
}

/// The arguments with the `--verified-only=…` spellings argh cannot read replaced by the
/// switches they mean.
pub(crate) fn spelled(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|arg| match arg.as_str() {
        "--verified-only=reproduced" => "--reproduced-only".to_string(),
        "--verified-only=committed" => "--verified-only".to_string(),
        _ => arg,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("20G"), Ok(20 << 30));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("3 KiB"), Ok(3 << 10));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn upstreams() {
        let options = NodeOptions {
            config: None,
            data_dir: Some("/tmp/x".into()),
            http: default_http(),
            tls_cert: None,
            tls_key: None,
            upstream: vec![
                "http://127.0.0.1:5000".into(),
                "ghcr.io=http://127.0.0.1:5001".into(),
            ],
            allow_upstream: vec![parse_host("quay.io").unwrap()],
            pypi_upstream: pyrsia_std::pypi::PYPI_SIMPLE_URL.into(),
            npm_upstream: pyrsia_std::npm::NPM_REGISTRY_URL.into(),
            maven_upstream: pyrsia_std::maven::MAVEN_CENTRAL_URL.into(),
            index_ttl: 60,
            offline: false,
            max_disk: None,
            scrub_rate: 16 << 20,
            scrub_every: 86400,
            upstream_connect_timeout: 1,
            upstream_read_timeout: 2,
            http_workers: 4,
            genesis: None,
            verified_only: false,
            reproduced_only: false,
            rebuild: false,
            rebuild_python: PathBuf::from("/usr/bin/python3"),
            rebuild_node: PathBuf::from("/usr/bin/node"),
            rebuild_timeout: 300,
            log_from: None,
            p2p_listen: DEFAULT_P2P_LISTEN.into(),
            peer: Vec::new(),
            external_addr: Vec::new(),
            relay_server: false,
            no_mdns: false,
            no_quic: false,
            quic_on_lan: false,
            no_piece_links: false,
            piece_link_port: 0,
            max_upload_rate: None,
            max_download_rate: None,
            max_peers: None,
            edge_listen: None,
            round_timeout_ms: 3000,
            build_timeout: 300,
            max_builds: 4,
            checkpoint_refresh: 3600,
            test_byzantine: None,
        };
        let config = options.mirror_config().unwrap();
        assert_eq!(config.upstreams[0].0.as_str(), "docker.io");
        assert_eq!(config.upstreams[1].0.as_str(), "ghcr.io");
        assert_eq!(config.upstreams[1].1, "http://127.0.0.1:5001");
        assert_eq!(config.allowed_upstreams[0].as_str(), "quay.io");
        assert_eq!(config.max_download_waiters, 3, "4 workers keep one free");
        assert_eq!(download_waiters(128), 112);
        assert_eq!(download_waiters(1), 1);
        assert!(parse_host("not a host").is_err());
        let bad = NodeOptions {
            upstream: vec!["ftp://x".into()],
            ..options
        };
        assert!(bad.mirror_config().is_err());
    }

    #[test]
    fn verified_only_equals_reproduced_is_the_reproduced_only_switch() {
        let args = ["pyrsia", "node", "--verified-only=reproduced", "--rebuild"];
        assert_eq!(
            super::spelled(args.iter().map(|a| a.to_string())),
            ["pyrsia", "node", "--reproduced-only", "--rebuild"]
        );
    }
}
