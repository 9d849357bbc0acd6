//! The registry mirror: answers the pull API from the local store, pulling through from the
//! upstream on a miss, and from the last observations when the upstream is down.
//!
//! Every rule about names, digests and content negotiation comes from `pyrsia-core`; this
//! module only decides where bytes come from and moves them.

mod blob;
mod flight;
mod manifest;
mod read_ahead;
mod serve;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyrsia_core::reference::{Host, Name, RepositoryPath};
use pyrsia_core::registry::{Code, OciError};

use crate::metrics::Metrics;
use crate::peers::{PeerFetch, PeerNetwork};
use crate::store::{ScrubConfig, ScrubOutcome, Store, StoreError};
use crate::upstream::{DOCKER_HUB_URL, Timeouts, Upstream, UpstreamError};

pub use blob::{BlobReader, BlobReply};
pub use flight::FlightReader;
pub use manifest::ManifestReply;

/// How a mirror is set up.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Upstream URL per registry host (`--upstream`); `docker.io` defaults to Docker Hub.
    pub upstreams: Vec<(Host, String)>,
    /// More registry hosts this node may fetch from, at `https://<host>`
    /// (`--allow-upstream`). No other host is ever contacted: not for a client's `?ns=`, not
    /// for a peer's fetch hint, not for a member's build request.
    pub allowed_upstreams: Vec<Host>,
    /// Never contact an upstream: serve only what is cached.
    pub offline: bool,
    /// Keep the store under this many bytes (LRU eviction).
    pub max_disk_bytes: Option<u64>,
    /// Upstream connect and read timeouts.
    pub timeouts: Timeouts,
    /// How stored blobs are re-hashed against bit rot.
    pub scrub: ScrubConfig,
    /// Requests that may wait on (or stream) a download at once; beyond, 429. Set it below
    /// the HTTP worker count so that cached content and health checks always find a worker,
    /// however slow an upstream.
    pub max_download_waiters: usize,
}

impl MirrorConfig {
    /// A configuration with Docker Hub as the only upstream.
    pub fn new(data_dir: PathBuf) -> Self {
        MirrorConfig {
            data_dir,
            upstreams: Vec::new(),
            allowed_upstreams: Vec::new(),
            offline: false,
            max_disk_bytes: None,
            timeouts: Timeouts::default(),
            scrub: ScrubConfig::default(),
            max_download_waiters: usize::MAX,
        }
    }
}

/// A summary of the mirror's state for `pyrsia status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MirrorStatus {
    /// Blobs and manifests stored.
    pub blobs: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// The disk budget, if any.
    pub max_bytes: Option<u64>,
    /// Requests served from the store.
    pub hits: u64,
    /// Requests that needed a fetch.
    pub misses: u64,
    /// Whether the node runs with `--offline`.
    pub offline: bool,
    /// Whether the last upstream request succeeded (`None`: none made yet).
    pub upstream_up: Option<bool>,
    /// The upstreams by host: every registry host this node fetches from, and nothing else.
    pub upstreams: Vec<(String, String)>,
}

/// The mirror service. Share it between HTTP workers with an `Arc`.
pub struct Mirror {
    store: Store,
    config: MirrorConfig,
    /// The allowlist: one client per registry host this node may fetch from.
    upstreams: HashMap<Host, Arc<Upstream>>,
    flights: flight::Flights,
    metrics: Arc<Metrics>,
    upstream_used: std::sync::atomic::AtomicBool,
    peers: std::sync::OnceLock<Arc<dyn PeerNetwork>>,
    piece_roots: std::sync::OnceLock<PieceRoots>,
    tag_resolver: std::sync::OnceLock<TagResolver>,
    piece_hashes: Mutex<HashMap<pyrsia_core::digest::Digest, Arc<Vec<pyrsia_core::tlog::Hash>>>>,
    /// Requests waiting on or streaming a download now.
    download_waiters: Arc<std::sync::atomic::AtomicUsize>,
}

/// A request's place among those that wait on a download ([`MirrorConfig::max_download_waiters`]);
/// freed when dropped.
pub struct DownloadSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Resolves `registry/repository` and a tag to the digest the transparency log last observed.
pub type TagResolver = Arc<dyn Fn(&str, &str) -> Option<pyrsia_core::digest::Digest> + Send + Sync>;

/// Looks up the committed piece root of a blob (the node's transparency log).
pub type PieceRoots =
    Arc<dyn Fn(&pyrsia_core::digest::Digest) -> Option<pyrsia_core::tlog::Hash> + Send + Sync>;

impl Mirror {
    /// Opens the store (recovering from any crash) and prepares the upstream clients.
    pub fn open(config: MirrorConfig) -> Result<Mirror, StoreError> {
        let store = Store::open(&config.data_dir, config.max_disk_bytes)?;
        let mut upstreams = HashMap::new();
        upstreams.insert(
            Host::docker_hub(),
            Arc::new(Upstream::new(DOCKER_HUB_URL, config.timeouts)),
        );
        for host in &config.allowed_upstreams {
            upstreams.insert(
                host.clone(),
                Arc::new(Upstream::new(&format!("https://{host}"), config.timeouts)),
            );
        }
        for (host, url) in &config.upstreams {
            upstreams.insert(host.clone(), Arc::new(Upstream::new(url, config.timeouts)));
        }
        let metrics = Arc::new(Metrics::new());
        let (scrubbed, quarantined) = (
            metrics.scrubbed_bytes.clone(),
            metrics.scrub_quarantined.clone(),
        );
        store.spawn_scrubber(config.scrub, move |outcome, size| match outcome {
            ScrubOutcome::Intact => {
                scrubbed.inc_by(size);
            }
            ScrubOutcome::Quarantined => {
                scrubbed.inc_by(size);
                quarantined.inc();
            }
            ScrubOutcome::Skipped => {}
        })?;
        Ok(Mirror {
            store,
            config,
            upstreams,
            flights: flight::Flights::default(),
            metrics,
            upstream_used: std::sync::atomic::AtomicBool::new(false),
            peers: std::sync::OnceLock::new(),
            piece_roots: std::sync::OnceLock::new(),
            tag_resolver: std::sync::OnceLock::new(),
            piece_hashes: Mutex::new(HashMap::new()),
            download_waiters: Arc::default(),
        })
    }

    /// Lets misses be fetched from other nodes before the upstream (set once, by the full
    /// node when its P2P network runs).
    pub fn set_peer_network(&self, network: Arc<dyn PeerNetwork>) {
        let _ = self.peers.set(network);
    }

    /// Where committed piece roots come from (set once, by the node, from its log).
    pub fn set_piece_roots(&self, roots: PieceRoots) {
        let _ = self.piece_roots.set(roots);
    }

    /// Where tags resolve when the upstream cannot be asked and this node never observed them
    /// (set once, by the node, from its log).
    pub fn set_tag_resolver(&self, resolver: TagResolver) {
        let _ = self.tag_resolver.set(resolver);
    }

    fn peer_network(&self) -> Option<Arc<dyn PeerNetwork>> {
        self.peers.get().cloned()
    }

    /// The peers holding `digest`, as a reader over it (pieces checked against the committed
    /// piece root when the log has one), with the network for blame; `None` without a P2P
    /// network, when no peer holds it, or when the holders disagree on its size. For files
    /// that have no registry host (package files): no peer is asked to fetch them for the
    /// network.
    pub(crate) fn peer_holders(
        &self,
        digest: &pyrsia_core::digest::Digest,
    ) -> Option<(u64, crate::peers::PieceFetcher, Arc<dyn PeerNetwork>)> {
        let PeerFetch {
            network,
            piece_root,
            ..
        } = self.peer_fetch(digest)?;
        let (total, fetcher) =
            crate::peers::PieceFetcher::lookup(network.clone(), *digest, 0, piece_root).found()?;
        Some((total, fetcher, network))
    }

    /// How a flight for `digest` may use the peers.
    fn peer_fetch(&self, digest: &pyrsia_core::digest::Digest) -> Option<PeerFetch> {
        Some(PeerFetch {
            network: self.peer_network()?,
            piece_root: self.piece_roots.get().and_then(|roots| roots(digest)),
            serving_others: false,
        })
    }

    /// The store, for inspection.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics, for `/metrics` and request accounting.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The upstream for a registry host, if this node fetches from it: Docker Hub, hosts
    /// mapped with `--upstream` and hosts listed with `--allow-upstream`. Every path that
    /// contacts an upstream (client pulls, peers' fetch hints, member builds) goes through here.
    fn upstream(&self, host: &Host) -> Result<Arc<Upstream>, UpstreamError> {
        self.upstreams
            .get(host)
            .cloned()
            .ok_or_else(|| UpstreamError::NotAllowed(host.to_string()))
    }

    /// The mirror's configuration.
    pub fn config(&self) -> &MirrorConfig {
        &self.config
    }

    /// A place among the requests that wait on a download, if one is free.
    pub(crate) fn download_slot(&self) -> Result<DownloadSlot, UpstreamError> {
        use std::sync::atomic::Ordering;
        let waiting = self.download_waiters.fetch_add(1, Ordering::SeqCst);
        let slot = DownloadSlot(self.download_waiters.clone());
        if waiting >= self.config.max_download_waiters {
            tracing::warn!(waiting, "too many requests wait on downloads; refusing one");
            return Err(UpstreamError::Busy);
        }
        Ok(slot)
    }

    /// Whether this node fetches from `host` (see [`MirrorConfig::allowed_upstreams`]).
    pub fn allows_upstream(&self, host: &Host) -> bool {
        self.upstreams.contains_key(host)
    }

    /// The upstream URL used for a registry host (what commits record as their source);
    /// `None` for a host this node does not fetch from.
    pub fn upstream_url(&self, host: &Host) -> Option<String> {
        Some(self.upstream(host).ok()?.base_url().to_string())
    }

    /// Notes the outcome of an upstream request for health reporting and metrics.
    fn upstream_result<T>(&self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        match &result {
            Err(UpstreamError::NotAllowed(host)) => {
                tracing::info!(%host, "refused: not an upstream of this node");
                return result;
            }
            Err(UpstreamError::Busy) => return result,
            _ => {}
        }
        self.upstream_used
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match &result {
            Ok(_) | Err(UpstreamError::NotFound) => {
                self.metrics.upstream_up.set(1);
            }
            Err(UpstreamError::Unreachable(why)) => {
                self.metrics.upstream_up.set(0);
                self.metrics.upstream_errors.inc();
                tracing::warn!(error = %why, "upstream unreachable");
            }
            Err(e) => {
                self.metrics.upstream_errors.inc();
                tracing::warn!(error = %e, "upstream error");
            }
        }
        result
    }

    /// The mirror's state.
    pub fn status(&self) -> MirrorStatus {
        let stats = self.store.stats();
        let used = self
            .upstream_used
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut listed: Vec<(String, String)> = self
            .upstreams
            .iter()
            .map(|(host, u)| (host.to_string(), u.base_url().to_string()))
            .collect();
        listed.sort();
        MirrorStatus {
            blobs: stats.blobs,
            bytes: stats.bytes,
            max_bytes: stats.max_bytes,
            hits: self.metrics.cache_hits.get(),
            misses: self.metrics.cache_misses.get(),
            offline: self.config.offline,
            upstream_up: used.then(|| self.metrics.upstream_up.get() == 1),
            upstreams: listed,
        }
    }

    /// The metrics in Prometheus text format, with store gauges refreshed.
    pub fn render_metrics(&self) -> String {
        let stats = self.store.stats();
        self.metrics
            .store_blobs
            .set(i64::try_from(stats.blobs).unwrap_or(i64::MAX));
        self.metrics
            .store_bytes
            .set(i64::try_from(stats.bytes).unwrap_or(i64::MAX));
        self.metrics.render()
    }

    /// `tags/list`: passed through from the upstream; offline, the tags this node observed.
    pub fn tags(&self, host: &Host, name: Name<'_>, query: &str) -> Result<Vec<u8>, OciError> {
        let repository = RepositoryPath::new(host, name).to_string();
        if !self.config.offline {
            let listed = self.download_slot().and_then(|_slot| {
                self.upstream(host)
                    .and_then(|upstream| upstream.tags_list(&repository, query))
            });
            match self.upstream_result(listed) {
                Ok(body) => return Ok(body),
                Err(UpstreamError::NotFound) => {
                    return Err(OciError::new(
                        Code::NameUnknown,
                        "repository not found upstream",
                    ));
                }
                Err(_) => {}
            }
        }
        let tags = self.store.observed_tags(host.as_str(), &repository);
        if tags.is_empty() {
            return Err(OciError::new(
                Code::NameUnknown,
                "no tags cached for this repository",
            ));
        }
        let body = serde_json::json!({ "name": name.as_str(), "tags": tags });
        Ok(body.to_string().into_bytes())
    }
}

/// The OCI error for an upstream failure when nothing cached can stand in.
fn upstream_error(e: &UpstreamError, not_found: OciError) -> OciError {
    match e {
        UpstreamError::NotFound => not_found,
        UpstreamError::Denied(_) => {
            OciError::new(Code::Denied, "the upstream registry denied access")
        }
        UpstreamError::Busy => OciError::new(
            Code::TooManyRequests,
            "too many requests are waiting on upstream downloads; retry shortly",
        ),
        UpstreamError::NotAllowed(_) => OciError::new(
            Code::Denied,
            "this node does not fetch from that registry host (its operator can add it with --allow-upstream HOST)",
        ),
        UpstreamError::TooManyRequests => OciError::new(
            Code::TooManyRequests,
            "the upstream registry is rate-limiting this node",
        ),
        UpstreamError::Unreachable(_) => OciError::new(
            Code::Unavailable,
            "not cached, and the upstream registry is unreachable",
        ),
        UpstreamError::Protocol(_) => OciError::new(
            Code::Unavailable,
            "not cached, and the upstream registry answered badly",
        )
        .with_status(502),
    }
}
