//! What the package mirrors (PyPI, npm) share: their errors, the index documents they keep in
//! the store for when the upstream is down, the upstream requests, and one download per file
//! however many requests want it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use pyrsia_core::digest::Digest;

use crate::metrics::Metrics;
use crate::mirror::Mirror;
use crate::store::{BlobKind, BlobWriter, Store, StoreError, TagObservation, now_ms};

/// Why a package request failed; each maps to an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageError {
    /// The upstream does not know the package or file (404).
    NotFound(String),
    /// The upstream cannot be reached and nothing is cached (503).
    Unavailable(String),
    /// The upstream answered something unusable: an unreadable index, a file without a hash
    /// this node can check, bytes that fail it (502).
    BadUpstream(String),
    /// Too many requests wait on downloads (429).
    Busy,
    /// The node's store failed (500).
    Store(String),
}

impl PackageError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            PackageError::NotFound(_) => 404,
            PackageError::Unavailable(_) => 503,
            PackageError::BadUpstream(_) => 502,
            PackageError::Busy => 429,
            PackageError::Store(_) => 500,
        }
    }
}

impl std::fmt::Display for PackageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageError::NotFound(what) => write!(f, "{what} not found"),
            PackageError::Unavailable(why) => write!(f, "the upstream is unavailable: {why}"),
            PackageError::BadUpstream(why) => write!(f, "the upstream misbehaved: {why}"),
            PackageError::Busy => f.write_str("too many downloads in progress; retry"),
            PackageError::Store(why) => write!(f, "store failure: {why}"),
        }
    }
}

impl std::error::Error for PackageError {}

/// Where a package file missing from the store may come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// The peers that hold it, else the upstream: what clients get.
    PeersThenUpstream,
    /// The upstream only: a builder of a multi-member network, which never takes the bytes
    /// it attests from another node.
    UpstreamOnly,
}

/// A checked file of a package, open in the store, with the sha256 it is stored under.
pub struct PackageBlob {
    /// The file's sha256.
    pub digest: Digest,
    /// The stored file.
    pub blob: crate::store::StoredBlob,
}

/// A successful upstream GET, its status checked.
pub(crate) struct Fetched {
    /// The `Content-Type` it came with.
    pub(crate) content_type: Option<String>,
    response: ureq::http::Response<ureq::Body>,
}

impl Fetched {
    /// The whole body, at most `limit` bytes.
    pub(crate) fn read_all(mut self, url: &str, limit: u64) -> Result<Vec<u8>, PackageError> {
        self.response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| PackageError::Unavailable(format!("reading {url}: {e}")))
    }

    /// Streams the body into `sink`; a full disk is the store's failure, anything else the
    /// upstream's. Returns the bytes copied.
    pub(crate) fn copy_to(
        mut self,
        url: &str,
        sink: &mut impl Write,
        metrics: &Metrics,
    ) -> Result<u64, PackageError> {
        let copied = io::copy(&mut self.response.body_mut().as_reader(), sink).map_err(|e| {
            if e.kind() == io::ErrorKind::StorageFull {
                PackageError::Store(e.to_string())
            } else {
                metrics.upstream_errors.inc();
                PackageError::Unavailable(format!("reading {url}: {e}"))
            }
        })?;
        metrics.upstream_bytes.inc_by(copied);
        Ok(copied)
    }
}

/// GETs `url` (with `accept`, if any): 200 is a [`Fetched`], 404 and 410 are
/// [`PackageError::NotFound`] (of `what`), anything else the upstream being unavailable.
pub(crate) fn get(
    agent: &ureq::Agent,
    metrics: &Metrics,
    url: &str,
    accept: Option<&str>,
    what: &str,
) -> Result<Fetched, PackageError> {
    let mut request = agent.get(url);
    if let Some(accept) = accept {
        request = request.header("Accept", accept);
    }
    let response = request.call().map_err(|e| {
        metrics.upstream_errors.inc();
        PackageError::Unavailable(format!("{url}: {e}"))
    })?;
    match response.status().as_u16() {
        200 => Ok(Fetched {
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            response,
        }),
        404 | 410 => Err(PackageError::NotFound(what.to_string())),
        status => {
            metrics.upstream_errors.inc();
            Err(PackageError::Unavailable(format!(
                "{url} answered {status}"
            )))
        }
    }
}

/// Looks up the tags of a package (by its name in the ecosystem) the log observed: (tag,
/// version). What a packument or metadata document made from the log sets.
pub type ObservedTags = std::sync::Arc<dyn Fn(&str) -> Vec<(String, String)> + Send + Sync>;

/// The stored file whose sha256 is recorded under the tag `key` (a cache hit), if any.
pub(crate) fn stored_under(mirror: &Mirror, key: &str) -> Option<PackageBlob> {
    let store = mirror.store();
    let digest = store.tag(key)?.digest;
    let blob = store.open_blob(&digest)?;
    mirror.metrics().cache_hits.inc();
    Some(PackageBlob { digest, blob })
}

/// The file recorded under the tag `key` (`what` names it in errors): from the store, else
/// `download` runs (once, however many requests want it; it records the tag) unless the node
/// is offline.
pub(crate) fn fetch_under(
    mirror: &Mirror,
    downloads: &Downloads,
    key: &str,
    what: &str,
    download: impl FnOnce() -> Result<(), PackageError>,
) -> Result<PackageBlob, PackageError> {
    if let Some(file) = stored_under(mirror, key) {
        return Ok(file);
    }
    if mirror.config().offline {
        return Err(PackageError::NotFound(format!(
            "{what} (offline, not cached)"
        )));
    }
    let _slot = mirror.download_slot().map_err(|_| PackageError::Busy)?;
    let store = mirror.store();
    downloads.once(
        mirror,
        key,
        || {
            store
                .tag(key)
                .is_some_and(|t| store.record(&t.digest).is_some())
        },
        download,
    )?;
    stored_under(mirror, key)
        .ok_or_else(|| PackageError::Store(format!("{what} vanished after it was stored")))
}

/// A package file's bytes from the peers that hold it, written to `sink` as they arrive
/// (the sink checks them: the store's writer against the sha256, an integrity checker).
/// Returns the sink once the peers delivered every byte; `None` when no peer holds it or they
/// could not deliver all of it, and the caller fetches from the upstream instead. A failed
/// check after delivery is the caller's to see ([`blame_peers`]).
pub(crate) fn from_peers<W: Write>(
    mirror: &Mirror,
    digest: &Digest,
    mut sink: W,
) -> Option<(W, Vec<String>, Arc<dyn crate::peers::PeerNetwork>)> {
    let (total, mut fetcher, network) = mirror.peer_holders(digest)?;
    let metrics = mirror.metrics();
    metrics.peer_fetches.inc();
    match io::copy(&mut fetcher, &mut sink) {
        Ok(copied) if copied == total => {
            metrics.peer_bytes.inc_by(copied);
            Some((sink, fetcher.contributors(), network))
        }
        Ok(copied) => {
            tracing::info!(%digest, copied, total, "peers delivered part of a package file; fetching it from the upstream");
            None
        }
        Err(e) => {
            tracing::info!(%digest, error = %e, "peers could not deliver a package file; fetching it from the upstream");
            None
        }
    }
}

/// Whether the peers delivered the file `digest` (a `what`, for the log) and it is stored,
/// checked against that digest; a peer whose bytes fail it is struck.
pub(crate) fn stored_from_peers(
    mirror: &Mirror,
    digest: Digest,
    what: &str,
) -> Result<bool, PackageError> {
    let writer = mirror
        .store()
        .writer(digest, BlobKind::Blob)
        .map_err(|e| PackageError::Store(e.to_string()))?;
    let Some((writer, contributors, network)) = from_peers(mirror, &digest, writer) else {
        return Ok(false);
    };
    match writer.commit() {
        Ok(()) => {
            tracing::info!(%digest, "{what} fetched from peers and verified");
            Ok(true)
        }
        Err(StoreError::Mismatch { .. }) => {
            mirror.metrics().verification_failures.inc();
            crate::peers::blame_bad_bytes(&*network, &contributors, &digest);
            Ok(false)
        }
        Err(e) => Err(PackageError::Store(e.to_string())),
    }
}

/// A stored file's bytes, or `None` when it is longer than `limit`; the file is left at its
/// start.
pub(crate) fn read_small(
    file: &PackageBlob,
    limit: usize,
) -> Result<Option<Vec<u8>>, PackageError> {
    use std::io::{Seek, SeekFrom};
    if file.blob.record.size > limit as u64 {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    let mut handle = &file.blob.file;
    handle
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .and_then(|_| handle.seek(SeekFrom::Start(0)))
        .map_err(|e| PackageError::Store(format!("reading {}: {e}", file.digest)))?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// A check of a file's bytes against what its registry publishes for it (an npm integrity, a
/// Maven checksum file), fed as they stream.
pub(crate) trait StreamCheck {
    /// Feeds the next bytes.
    fn update(&mut self, bytes: &[u8]);
    /// Whether the bytes fed match.
    fn matches(self) -> bool;
}

impl StreamCheck for pyrsia_core::package::npm_registry::IntegrityChecker {
    fn update(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
    fn matches(self) -> bool {
        self.matches()
    }
}

impl StreamCheck for pyrsia_core::package::maven_checksum::ChecksumChecker {
    fn update(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
    fn matches(self) -> bool {
        self.matches()
    }
}

/// Bytes written to the store and fed to a check at once.
pub(crate) struct Checked<C> {
    /// Where the bytes are stored.
    pub(crate) writer: BlobWriter,
    /// What they are checked against.
    pub(crate) checker: C,
}

impl<C: StreamCheck> Write for Checked<C> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer.write(buf)?;
        self.checker.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Records that the stored file `digest` is the one under the tag `key`.
pub(crate) fn record_file(store: &Store, key: &str, digest: Digest) -> Result<(), PackageError> {
    store
        .record_tag(
            key,
            TagObservation {
                digest,
                observed_ms: now_ms(),
            },
        )
        .map_err(|e| PackageError::Store(e.to_string()))
}

/// Downloads `url` into the store, checking its bytes with `checker` as they stream, and
/// records it under the tag `key` only when they match; `what` names the file in logs and
/// `against` what it is checked against in errors. Nothing is stored on a mismatch.
pub(crate) fn download_checked<C: StreamCheck>(
    mirror: &Mirror,
    agent: &ureq::Agent,
    url: &str,
    checker: C,
    key: &str,
    what: &str,
    against: &str,
) -> Result<(), PackageError> {
    let metrics = mirror.metrics();
    let fetched = get(agent, metrics, url, None, url)?;
    let store = mirror.store();
    let mut checked = Checked {
        writer: store
            .writer_computing(BlobKind::Blob)
            .map_err(|e| PackageError::Store(e.to_string()))?,
        checker,
    };
    let copied = fetched.copy_to(url, &mut checked, metrics)?;
    let Checked { writer, checker } = checked;
    let matched = checker.matches();
    if !matched {
        metrics.verification_failures.inc();
        tracing::warn!(%url, "{what} does not match {against}; discarded");
    }
    match writer.commit_computed(matched) {
        Ok(digest) => {
            tracing::info!(%digest, %url, bytes = copied, "{what} fetched from upstream and verified");
            record_file(store, key, digest)
        }
        Err(StoreError::Io(_)) if !matched => Err(PackageError::BadUpstream(format!(
            "{url} does not match {against}; nothing stored"
        ))),
        Err(e) => Err(PackageError::Store(e.to_string())),
    }
}

/// Keeps `bytes` (an index document as fetched) in the store and records it under `key`, for
/// when the upstream cannot be asked.
pub(crate) fn keep_document(store: &Store, key: &str, bytes: &[u8]) -> Result<(), String> {
    let digest = Digest::sha256(bytes);
    if store.record(&digest).is_none() {
        store
            .put_bytes(digest, bytes, BlobKind::Blob)
            .map_err(|e| e.to_string())?;
    }
    store
        .record_tag(
            key,
            TagObservation {
                digest,
                observed_ms: now_ms(),
            },
        )
        .map_err(|e| e.to_string())
}

/// The document last kept under `key`, at most `limit` bytes.
pub(crate) fn kept_document(store: &Store, key: &str, limit: u64) -> Option<Vec<u8>> {
    let blob = store.open_blob(&store.tag(key)?.digest)?;
    let mut bytes = Vec::new();
    (&blob.file).take(limit).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// A download's gate: held by the request that downloads; what its failure was, for the
/// requests that waited on it.
type Gate = Arc<Mutex<Option<PackageError>>>;

/// One download per file at a time: later requests wait for it, then read the store (or
/// share its failure rather than trying again at once). A download the upstream failed is
/// remembered for [`FAILED_DOWNLOAD_MEMORY`], so that requests arriving just after it (ones
/// the HTTP server had queued while it ran) get its answer instead of asking a dead or
/// stalling host again.
#[derive(Default)]
pub(crate) struct Downloads {
    gates: Mutex<HashMap<String, Gate>>,
    failed: Mutex<HashMap<String, (std::time::Instant, PackageError)>>,
}

/// How long a download the upstream failed (unreachable, stalled, or serving bytes that fail
/// their check) answers later requests for the same file with the same error.
pub(crate) const FAILED_DOWNLOAD_MEMORY: std::time::Duration = std::time::Duration::from_secs(2);

impl Downloads {
    /// Makes sure the file under `key` is stored: returns at once if `stored()` says it is,
    /// else runs `download` unless a request is already running it, in which case it waits
    /// for that one and shares its outcome. The caller holds a download place
    /// ([`Mirror::download_slot`]) while it waits, so waiting requests cannot take every worker.
    pub(crate) fn once(
        &self,
        mirror: &Mirror,
        key: &str,
        stored: impl Fn() -> bool,
        download: impl FnOnce() -> Result<(), PackageError>,
    ) -> Result<(), PackageError> {
        if let Some(failure) = self.recent_failure(key) {
            return Err(failure);
        }
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let mut turn = gate.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match turn.clone() {
            Some(failed) => Err(failed),
            None if stored() => Ok(()),
            None => {
                mirror.metrics().cache_misses.inc();
                mirror.metrics().upstream_fetches.inc();
                let downloaded = download();
                if let Err(e) = &downloaded {
                    *turn = Some(e.clone());
                    self.remember_failure(key, e);
                }
                downloaded
            }
        };
        drop(turn);
        // The last request done with the gate removes it, so that a later one starts afresh.
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        if gates.get(key).is_some_and(|g| Arc::strong_count(g) <= 2) {
            gates.remove(key);
        }
        outcome
    }

    /// The upstream's failure of `key` within the last [`FAILED_DOWNLOAD_MEMORY`], if any.
    fn recent_failure(&self, key: &str) -> Option<PackageError> {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.retain(|_, (at, _)| at.elapsed() < FAILED_DOWNLOAD_MEMORY);
        failed.get(key).map(|(_, e)| e.clone())
    }

    /// Remembers a failure that was the upstream's (not this node's: a busy node or a full
    /// disk is not the file's fault).
    fn remember_failure(&self, key: &str, error: &PackageError) {
        if matches!(
            error,
            PackageError::Unavailable(_) | PackageError::BadUpstream(_)
        ) {
            self.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string(), (std::time::Instant::now(), error.clone()));
        }
    }
}
