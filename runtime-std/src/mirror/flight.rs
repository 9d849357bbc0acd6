//! One download per blob, however many clients ask for it at once: from peers that hold it
//! when the P2P network runs, from the upstream otherwise (or for the rest, when the peers could
//! not deliver all of it).
//!
//! The first request for a missing blob starts a [`Flight`]: a thread that downloads into the
//! store's temp file while hashing. Every request for that blob — the first included — reads
//! the temp file as it grows. The last byte is held back until the digest has been checked, so
//! no client ever receives a complete body that failed verification; on a failure every reader
//! gets an error and its connection is aborted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyrsia_core::digest::{Digest, servable_before_verification};

use crate::metrics::Metrics;
use crate::peers::{FetchHint, PeerFetch, PieceFetcher, Shelf};
use crate::store::{BlobKind, Store, StoreError};
use crate::upstream::{Upstream, UpstreamError};

use super::read_ahead::{Filled, ReadAhead};

/// Attempts per download; later attempts resume with a `Range` request.
const ATTEMPTS: u32 = 3;
/// Pause before the second and third attempt.
const BACKOFF: [Duration; 2] = [Duration::from_millis(250), Duration::from_secs(1)];
/// Bytes read from the upstream before they go on to the temp file (which hashes them) and
/// the readers.
const CHUNK: usize = 256 * 1024;

/// The downloads in progress, by digest and source: a request joins only a download of the
/// same blob from the same registry host and repository, so a peer that names another source
/// for a digest (one that is slow, or lacks it) never holds up a local pull of it.
#[derive(Default)]
pub(super) struct Flights {
    active: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    /// Blobs whose bytes from peers failed their digest lately, and when: fetched from the
    /// upstream only for [`SKIP_PEERS_FOR`].
    peers_failed: Arc<Mutex<HashMap<Digest, Instant>>>,
}

/// How long a blob whose bytes from peers failed the digest is fetched from the upstream only.
const SKIP_PEERS_FOR: Duration = Duration::from_secs(600);
/// The most blobs remembered as failed from peers (the memory is cleared beyond).
const PEER_FAILURES_KEPT: usize = 4096;

/// What identifies a download: the blob and where it comes from.
type FlightKey = (Digest, FetchHint);

/// How a download ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still downloading (or verified and being made durable).
    Running,
    /// Verified and in the store.
    Stored,
    /// Failed; nothing was stored.
    Failed(FlightError),
}

/// How the peer part of a download ended.
enum FromPeers {
    /// Every byte came in; these peers served some (blamed if the digest does not match).
    Done(Vec<String>),
    /// The rest comes from the upstream, from the offset reached.
    Upstream,
}

/// Why copying from a source stopped early.
enum CopyError {
    /// The source failed: another source may continue from where it stopped.
    Source(String),
    /// The store failed: the download is over.
    Store(FlightError),
}

/// Why a download failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum FlightError {
    /// The upstream could not deliver.
    Upstream(UpstreamError),
    /// The bytes did not match the digest.
    Mismatch,
    /// The local store failed (disk full, ...).
    Store(String),
}

impl std::fmt::Display for FlightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlightError::Upstream(e) => e.fmt(f),
            FlightError::Mismatch => {
                f.write_str("upstream blob does not match its digest; discarded")
            }
            FlightError::Store(e) => write!(f, "store failure: {e}"),
        }
    }
}

struct State {
    temp_path: Option<PathBuf>,
    size: Option<u64>,
    written: u64,
    /// Every byte is in and matched the digest: readers may have all of them, whatever
    /// happens to the store afterwards.
    verified: bool,
    outcome: Outcome,
    /// Bytes from peers did not match the digest: the next flight for this blob goes to the
    /// upstream.
    peers_failed: bool,
}

/// One blob download that any number of readers follow.
pub(super) struct Flight {
    digest: Digest,
    origin: FetchHint,
    state: Mutex<State>,
    changed: Condvar,
    /// Pieces from peers received but not yet written (a download from peers): served to
    /// other peers from memory meanwhile.
    shelf: Mutex<Option<Arc<Shelf>>>,
}

/// What a request gets when it joins a flight.
pub(super) enum Joined {
    /// The blob is stored now: read it from the store.
    Stored,
    /// Follow the download: total size and a reader positioned at `offset`.
    Following(u64, FlightReader),
    /// The download failed.
    Failed(FlightError),
}

impl Flights {
    /// Joins the download of `digest` from `origin`, starting it if none is running; `origin`
    /// names the blob's registry host and repository (for the upstream, and for the peer that
    /// may fetch it for the network).
    pub(super) fn join(
        &self,
        store: &Store,
        upstream: Arc<Upstream>,
        peers: Option<PeerFetch>,
        metrics: Arc<Metrics>,
        origin: FetchHint,
        digest: Digest,
    ) -> Arc<Flight> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let key = (digest, origin.clone());
        if let Some(flight) = active.get(&key) {
            return flight.clone();
        }
        let peers = peers.filter(|_| !self.peers_failed_lately(&digest));
        let flight = Arc::new(Flight {
            digest,
            origin: origin.clone(),
            state: Mutex::new(State {
                temp_path: None,
                size: None,
                written: 0,
                verified: false,
                outcome: Outcome::Running,
                peers_failed: false,
            }),
            changed: Condvar::new(),
            shelf: Mutex::new(None),
        });
        active.insert(key.clone(), flight.clone());
        drop(active);
        let (store, worker, registry) = (store.clone(), flight.clone(), self.active.clone());
        let peers_failed = self.peers_failed.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("fetch-{}", &digest.hex().as_str()[..12]))
            .spawn(move || {
                let ended = FlightEnded {
                    flight: worker,
                    registry,
                    peers_failed,
                };
                ended
                    .flight
                    .run(&store, &upstream, peers, &metrics, &origin);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a download thread");
            self.active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            flight.update(|s| {
                s.outcome = Outcome::Failed(FlightError::Store(format!("no download thread: {e}")))
            });
        }
        flight
    }
}

impl Flights {
    /// The download of `digest` running now, from whatever source (the one furthest along
    /// when there are several): what this node serves peers before it holds the whole blob.
    pub(super) fn running(&self, digest: &Digest) -> Option<Arc<Flight>> {
        let active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active
            .iter()
            .filter(|((d, _), _)| d == digest)
            .map(|(_, flight)| flight)
            .max_by_key(|flight| flight.lock().written)
            .cloned()
    }

    /// Whether bytes from peers failed `digest` within [`SKIP_PEERS_FOR`].
    fn peers_failed_lately(&self, digest: &Digest) -> bool {
        let mut failed = self.peers_failed.lock().unwrap_or_else(|p| p.into_inner());
        match failed.get(digest) {
            Some(at) if at.elapsed() < SKIP_PEERS_FOR => true,
            Some(_) => {
                failed.remove(digest);
                false
            }
            None => false,
        }
    }
}

/// Ends a flight when its thread does, however it does: a flight still running (its thread
/// panicked) fails, so its readers get an error instead of waiting forever, and the next
/// request for the digest reads the store or starts afresh.
struct FlightEnded {
    flight: Arc<Flight>,
    registry: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    peers_failed: Arc<Mutex<HashMap<Digest, Instant>>>,
}

impl Drop for FlightEnded {
    fn drop(&mut self) {
        if self.flight.lock().peers_failed {
            let mut failed = self.peers_failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.len() >= PEER_FAILURES_KEPT {
                failed.clear();
            }
            failed.insert(self.flight.digest, Instant::now());
        }
        if self.flight.lock().outcome == Outcome::Running {
            tracing::error!(digest = %self.flight.digest, "a download thread ended without an outcome; failing its readers");
            self.flight.update(|s| {
                s.outcome = Outcome::Failed(FlightError::Store("the download thread failed".into()))
            });
        }
        let key = (self.flight.digest, self.flight.origin.clone());
        let mut active = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if active
            .get(&key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            active.remove(&key);
        }
    }
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The blob's size and how many bytes from the first a peer may have now: those written,
    /// all of them only once the digest matched. `None` before the size is known.
    pub(super) fn held(&self) -> Option<(u64, u64)> {
        let state = self.lock();
        let size = state.size?;
        let held = match state.outcome {
            Outcome::Stored => size,
            _ if state.verified => size,
            Outcome::Running => servable_before_verification(size, state.written),
            Outcome::Failed(_) => return None,
        };
        Some((size, held))
    }

    /// The pieces received from peers and not yet written, when the download is from peers.
    pub(super) fn shelf(&self) -> Option<Arc<Shelf>> {
        self.shelf.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the size is known or the download ended, then opens a reader at `offset`.
    pub(super) fn follow(self: &Arc<Self>, offset: u64) -> Joined {
        let mut state = self.lock();
        loop {
            match &state.outcome {
                Outcome::Stored => return Joined::Stored,
                Outcome::Failed(e) => return Joined::Failed(e.clone()),
                Outcome::Running => {}
            }
            // The temp file may have been renamed into the store between our checks; then
            // this fails and the next wake-up sees the outcome.
            if let (Some(size), Some(path)) = (state.size, &state.temp_path)
                && let Ok(file) = File::open(path)
            {
                let reader = FlightReader {
                    flight: self.clone(),
                    file,
                    position: offset,
                    whole_verified_first: false,
                };
                return Joined::Following(size, reader);
            }
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(500))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// The download itself, on its own thread.
    fn run(
        &self,
        store: &Store,
        upstream: &Upstream,
        peers: Option<PeerFetch>,
        metrics: &Metrics,
        hint: &FetchHint,
    ) {
        let repository = hint.repository.as_str();
        store.announce_download(self.digest, true);
        let outcome = match self.download(store, upstream, peers, metrics, hint) {
            Ok(source) => {
                metrics.activity.fetched(self.digest, source);
                tracing::info!(digest = %self.digest, %repository, "blob fetched from {source} and verified");
                Outcome::Stored
            }
            Err(e) => {
                if e == FlightError::Mismatch {
                    metrics.verification_failures.inc();
                }
                metrics.upstream_errors.inc();
                metrics
                    .activity
                    .failed(format!("blob {} of {repository}: {e}", self.digest));
                tracing::warn!(digest = %self.digest, %repository, error = %e, "blob fetch failed; nothing stored");
                store.announce_download(self.digest, false);
                Outcome::Failed(e)
            }
        };
        self.update(|s| s.outcome = outcome);
    }

    /// Downloads from peers when any holds the blob, else (or for what they could not
    /// deliver) from the upstream, resuming where the bytes stopped. Returns the source.
    fn download(
        &self,
        store: &Store,
        upstream: &Upstream,
        peers: Option<PeerFetch>,
        metrics: &Metrics,
        hint: &FetchHint,
    ) -> Result<&'static str, FlightError> {
        let repository = hint.repository.as_str();
        let mut writer = store
            .writer(self.digest, BlobKind::Blob)
            .map_err(|e| FlightError::Store(e.to_string()))?;
        let temp_path = writer.temp_path().to_path_buf();
        self.update(|s| s.temp_path = Some(temp_path));
        // Peers that hold it; else the node chosen to fetch it from the upstream for the
        // network (the one nearest the digest in the DHT), which serves it as it arrives;
        // either way with the nodes downloading it too, for the pieces they hold. When the
        // holders disagree on its size, no peer is trusted with it: the upstream.
        if let Some(peers) = peers {
            match self.download_from_peers(&peers, hint, &mut writer, metrics)? {
                FromPeers::Done(contributors) => {
                    return match self.finish_download(writer) {
                        Ok(()) => Ok("peers"),
                        Err(FlightError::Mismatch) => {
                            // Without per-piece hashes the culprit is one of the contributors:
                            // blamed only when there is one. Either way the next request for
                            // this blob skips the peers.
                            crate::peers::blame_bad_bytes(
                                &*peers.network,
                                &contributors,
                                &self.digest,
                            );
                            self.lock().peers_failed = true;
                            Err(FlightError::Mismatch)
                        }
                        Err(e) => Err(e),
                    };
                }
                FromPeers::Upstream => {}
            }
        }
        metrics.upstream_fetches.inc();
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(BACKOFF[attempt as usize - 1]);
                tracing::info!(digest = %self.digest, offset = writer.written(), attempt, "resuming blob download");
            }
            let body = match upstream.get_blob(repository, &self.digest, writer.written()) {
                Ok(body) => body,
                Err(e @ (UpstreamError::NotFound | UpstreamError::Denied(_))) => {
                    return Err(FlightError::Upstream(e));
                }
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            if attempt == 0 || self.lock().size.is_none() {
                let total = body.len.map(|len| len + writer.written());
                self.update(|s| s.size = total);
            }
            let mut ahead = ReadAhead::start(body.reader, CHUNK);
            loop {
                let (chunk, n, end) = ahead.next();
                if n > 0 {
                    writer
                        .write_shared(Arc::new(chunk), 0..n)
                        .map_err(|e| FlightError::Store(e.to_string()))?;
                    metrics.upstream_bytes.inc_by(n as u64);
                    let written = writer.written();
                    if self.lock().size.is_some_and(|size| written > size) {
                        return Err(FlightError::Upstream(UpstreamError::Protocol(
                            "blob longer than announced".into(),
                        )));
                    }
                    self.update(|s| s.written = written);
                } else {
                    crate::buffers::give(chunk);
                }
                match end {
                    Filled::Full => {}
                    Filled::Ended => return self.finish_download(writer).map(|()| "upstream"),
                    Filled::Broke(e) => {
                        last_error =
                            Some(UpstreamError::Unreachable(format!("transfer broke: {e}")));
                        break;
                    }
                }
            }
        }
        Err(FlightError::Upstream(last_error.unwrap_or_else(|| {
            UpstreamError::Unreachable("no attempt made".into())
        })))
    }

    /// The peer part of a download: from the peers [`PieceFetcher::find`] names, and when
    /// they stop delivering after some progress (the node fetching the blob for the network
    /// died, say), from those it names then, starting at the offset reached: the next node in
    /// line for the upstream resumes there with a `Range` request, and the others follow it.
    /// How many rounds, and when to give up on the peers, is core's rule
    /// ([`pyrsia_core::rendezvous::ask_peers_again`]).
    fn download_from_peers(
        &self,
        peers: &PeerFetch,
        hint: &FetchHint,
        writer: &mut crate::store::BlobWriter,
        metrics: &Metrics,
    ) -> Result<FromPeers, FlightError> {
        let mut contributors: Vec<String> = Vec::new();
        for round in 0..pyrsia_core::rendezvous::TAKEOVER_ROUNDS {
            let offset = writer.written();
            let found = PieceFetcher::find(
                peers.network.clone(),
                self.digest,
                peers.piece_root,
                hint.clone(),
                offset,
                peers.serving_others,
            );
            let Some((total, mut fetcher)) = found.found() else {
                if round > 0 {
                    tracing::info!(digest = %self.digest, offset, "no peer serves the rest now (this node is next in line for the upstream, or none answers); resuming from the upstream at the offset reached");
                }
                return Ok(FromPeers::Upstream);
            };
            if round == 0 {
                metrics.peer_fetches.inc();
            } else if self.lock().size != Some(total) {
                tracing::info!(digest = %self.digest, total, "peers now claim another size; the rest from the upstream");
                return Ok(FromPeers::Upstream);
            }
            *self.shelf.lock().unwrap_or_else(|p| p.into_inner()) = Some(fetcher.shelf());
            self.update(|s| s.size = Some(total));
            let copied = self.copy(&mut fetcher, writer, &metrics.peer_bytes);
            contributors.extend(fetcher.contributors());
            match copied {
                Ok(()) => {
                    contributors.sort();
                    contributors.dedup();
                    return Ok(FromPeers::Done(contributors));
                }
                Err(CopyError::Store(e)) => return Err(e),
                Err(CopyError::Source(e)) => {
                    let progressed = writer.written() > offset;
                    if !pyrsia_core::rendezvous::ask_peers_again(round, progressed) {
                        tracing::info!(digest = %self.digest, offset = writer.written(), error = %e, "peers could not deliver the rest; resuming from the upstream");
                        return Ok(FromPeers::Upstream);
                    }
                    tracing::info!(digest = %self.digest, offset = writer.written(), error = %e, "peers stopped delivering; asking who holds or fetches the rest now");
                }
            }
        }
        Ok(FromPeers::Upstream)
    }

    /// Writes the fetcher's bytes into the temp file until they end (each piece written and
    /// hashed from the buffer it arrived in, without a copy), publishing progress to readers.
    fn copy(
        &self,
        source: &mut PieceFetcher,
        writer: &mut crate::store::BlobWriter,
        counter: &prometheus_client::metrics::counter::Counter,
    ) -> Result<(), CopyError> {
        loop {
            match source.next_shared() {
                Ok(None) => return Ok(()),
                Ok(Some((bytes, range))) => {
                    let n = range.len();
                    writer
                        .write_shared(bytes, range)
                        .map_err(|e| CopyError::Store(FlightError::Store(e.to_string())))?;
                    counter.inc_by(n as u64);
                    let written = writer.written();
                    if self.lock().size.is_some_and(|size| written > size) {
                        return Err(CopyError::Source("longer than announced".into()));
                    }
                    self.update(|s| s.written = written);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Source(e.to_string())),
            }
        }
    }

    fn finish_download(&self, writer: crate::store::BlobWriter) -> Result<(), FlightError> {
        let written = writer.written();
        let size = self.lock().size;
        if size.is_some_and(|size| size != written) {
            return Err(FlightError::Upstream(UpstreamError::Unreachable(format!(
                "blob ended after {written} of {} bytes",
                size.unwrap_or_default()
            ))));
        }
        let verified = match writer.verify() {
            Ok(verified) => verified,
            Err(StoreError::Mismatch { .. }) => return Err(FlightError::Mismatch),
            Err(e) => return Err(FlightError::Store(e.to_string())),
        };
        // Readers may have the last byte as soon as the digest matched; durability (fsync,
        // rename) need not delay them.
        self.update(|s| {
            s.size = Some(written);
            s.verified = true;
        });
        verified
            .persist()
            .map_err(|e| FlightError::Store(e.to_string()))
    }
}

/// Reads a blob from its growing temp file, never past what has been written, and never its
/// last byte before the digest has been verified. Reads are positional (`pread`), so the
/// same reader can hand spans of its file to `sendfile(2)` ([`FlightReader::next_span`]).
pub struct FlightReader {
    flight: Arc<Flight>,
    file: File,
    position: u64,
    /// Serve nothing before the whole blob is verified (for ranges, which the client cannot
    /// check against the digest itself).
    whole_verified_first: bool,
}

impl FlightReader {
    /// Moves to byte `offset` and serves nothing until the whole blob has been verified: for
    /// a range, whose bytes the client cannot check against the digest itself.
    pub(super) fn seek_to_verified_range(&mut self, offset: u64) {
        self.position = offset;
        self.whole_verified_first = true;
    }

    /// Waits until bytes past the reader's position may be served, then returns how many
    /// (0 at the end of the blob). Errors when the download failed.
    fn wait_readable(&self) -> io::Result<u64> {
        let mut state = self.flight.lock();
        loop {
            let size = state.size.unwrap_or(u64::MAX);
            let readable = match &state.outcome {
                _ if state.verified => size,
                Outcome::Failed(e) => return Err(io::Error::other(e.to_string())),
                Outcome::Stored => size,
                Outcome::Running if self.whole_verified_first => 0,
                Outcome::Running => servable_before_verification(size, state.written),
            };
            if self.position >= size {
                return Ok(0);
            }
            if self.position < readable {
                return Ok(readable - self.position);
            }
            state = self
                .flight
                .changed
                .wait_timeout(state, Duration::from_millis(500))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Waits for servable bytes and returns where they are: the temp file, the offset of the
    /// first and how many (at most `max`); `None` at the end of the blob. For senders that
    /// copy file to socket in the kernel (`sendfile(2)`); they report what they sent with
    /// [`FlightReader::advance`]. Errors when the download failed.
    pub fn next_span(&mut self, max: u64) -> io::Result<Option<(&File, u64, u64)>> {
        match self.wait_readable()?.min(max) {
            0 => Ok(None),
            len => Ok(Some((&self.file, self.position, len))),
        }
    }

    /// Moves past `sent` bytes of the span [`FlightReader::next_span`] returned.
    pub fn advance(&mut self, sent: u64) {
        self.position += sent;
    }
}

impl Read for FlightReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.wait_readable()?)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.position)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "download file shorter than recorded",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}
