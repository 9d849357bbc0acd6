//! Fetching a blob from other nodes: the providers of its digest (found by the P2P network)
//! each serve pieces of it; [`PieceFetcher`] asks several of them in parallel, a bounded window
//! of pieces at a time, re-requests a piece elsewhere when its peer fails, stalls or answers
//! badly, and yields the bytes in order as a [`Read`]. The flight that reads it hashes every
//! byte and stores nothing unless the whole blob matches its digest.
//!
//! The network itself is behind [`PeerNetwork`] so that the mirror needs no libp2p (the full
//! node's `pyrsia-net` implements it) and the scheduling is unit-tested without one.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_core::piece_schedule::{
    Filed, Have, PieceAnswer as CoreAnswer, PieceSchedule, ScheduleConfig, answer_fault,
};
use pyrsia_core::time::{Duration as CoreDuration, Instant as CoreInstant};
use pyrsia_core::tlog::{Hash, leaf_hash};

/// Bytes per piece.
pub const PIECE_LEN: u32 = pyrsia_core::pieces::PIECE_LEN;
/// Pieces requested or waiting to be read, at most: bounds memory per download.
pub const WINDOW: usize = 8;
/// Pieces one peer is asked for at once.
pub const PER_PEER: usize = 3;
/// A peer that has not answered a piece in this long is dropped and its pieces go elsewhere.
pub const PIECE_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for the node fetching from the upstream for the network: its pieces wait for the
/// upstream's bytes.
pub const UPSTREAM_PIECE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to look for providers before giving up on peers.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// A request for part of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceRequest {
    /// The blob.
    pub digest: Digest,
    /// First byte.
    pub offset: u64,
    /// Bytes wanted (at most [`PIECE_LEN`]).
    pub len: u32,
    /// Ask for the blob's piece hash list instead of bytes (`offset` and `len` unused).
    pub hashes: bool,
}

/// A peer's answer to a [`PieceRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceAnswer {
    /// The bytes, and the blob's total size.
    Data {
        /// The blob's size.
        total: u64,
        /// The piece.
        bytes: Vec<u8>,
    },
    /// The leaf hash of every piece, in order (answers a request with `hashes` set).
    Hashes(Vec<Hash>),
    /// The peer does not hold the blob (any more).
    Missing,
}

/// A reply delivered to the fetcher that asked.
#[derive(Clone, Debug)]
pub struct PieceReply {
    /// The tag the fetcher gave the request.
    pub tag: u64,
    /// The answer, or why the request failed (timeout, disconnect, malformed frame).
    pub result: Result<PieceAnswer, String>,
}

/// Where a blob comes from upstream: sent along with a piece request to the node chosen to
/// fetch it for the network, so that it can start that fetch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FetchHint {
    /// The registry host (`docker.io`).
    pub host: String,
    /// The repository on it (`library/alpine`).
    pub repository: String,
}

/// What the mirror needs from the P2P network.
pub trait PeerNetwork: Send + Sync {
    /// This node's peer id.
    fn local_id(&self) -> String;
    /// The peers connected now.
    fn live_peers(&self) -> Vec<String>;
    /// Peers that announced `digest`, found within `timeout` (never this node).
    fn providers(&self, digest: &Digest, timeout: Duration) -> Vec<String>;
    /// Sends `request` to `peer` (with `hint` when the peer should fetch what it lacks); the
    /// reply (or failure) arrives on `reply` with `tag`.
    fn request_piece(
        &self,
        peer: &str,
        request: PieceRequest,
        hint: Option<&FetchHint>,
        tag: u64,
        reply: Sender<PieceReply>,
    );
    /// Counts a misbehaviour against `peer` (the network blocks repeat offenders).
    fn penalise(&self, peer: &str, why: &str);
    /// How long to wait before asking for `bytes` more from peers (`--max-download-rate`);
    /// charged to the budget. The wait is taken before the request is sent, so it never
    /// counts against the peer's timeout.
    fn download_delay(&self, bytes: u64) -> Duration {
        let _ = bytes;
        Duration::ZERO
    }
}

/// Bytes from peers failed the whole-file check of `digest`: the peer that served them is
/// penalised when it alone did (core's `pieces::blame_for_mismatch`: with several, which one
/// lied is unknown and nobody is blamed). For blobs and package files alike.
pub fn blame_bad_bytes(network: &dyn PeerNetwork, contributors: &[String], digest: &Digest) {
    match pyrsia_core::pieces::blame_for_mismatch(contributors) {
        Some(culprit) => network.penalise(culprit, "served bytes that did not match the digest"),
        None => {
            tracing::warn!(%digest, ?contributors, "bytes from peers did not match the digest; one of them lied, which is unknown")
        }
    }
}

/// How a flight may use the peers: the network, and the blob's committed piece root if the
/// log has one (then every piece is checked on arrival).
#[derive(Clone)]
pub struct PeerFetch {
    /// The P2P network.
    pub network: Arc<dyn PeerNetwork>,
    /// The committed piece root of the blob, if any.
    pub piece_root: Option<Hash>,
}

/// What serves pieces to peers: the mirror (stored blobs, and with a hint, blobs it fetches
/// for the network as their bytes arrive). Blocking: the network calls it off its own thread.
pub trait PieceSource: Send + Sync {
    /// The piece, or [`PieceAnswer::Missing`].
    fn piece(&self, request: &PieceRequest, hint: Option<&FetchHint>) -> PieceAnswer;
}

/// The node that fetches `digest` from the upstream for the whole network: the rendezvous
/// winner among this node and its live peers. `None` when it is this node.
pub fn upstream_fetcher(network: &dyn PeerNetwork, digest: &Digest) -> Option<String> {
    let local = network.local_id();
    let peers = network.live_peers();
    let candidates = peers.iter().map(String::as_bytes).chain([local.as_bytes()]);
    let winner = pyrsia_core::rendezvous::winner(digest.as_bytes(), candidates)?;
    (winner != local.as_bytes()).then(|| String::from_utf8_lossy(winner).into_owned())
}

/// What looking for a blob among the peers found.
pub enum PeerLookup {
    /// Providers answered: the blob's size and a reader over it.
    Found(u64, Box<PieceFetcher>),
    /// No peer holds it (or none answered).
    NotFound,
    /// Providers disagree on its size and nothing proves who is right: fetch it from the
    /// upstream, blaming nobody.
    Disputed,
}

impl PeerLookup {
    /// The size and reader, if found.
    pub fn found(self) -> Option<(u64, PieceFetcher)> {
        match self {
            PeerLookup::Found(total, fetcher) => Some((total, *fetcher)),
            PeerLookup::NotFound | PeerLookup::Disputed => None,
        }
    }
}

/// Tags of the requests made before the schedule exists (hash list, first piece, size
/// check): far above the schedule's own, so the two never meet.
const HANDSHAKE_TAGS: u64 = 1 << 63;

/// An in-order reader over a blob fetched in pieces from several peers: the IO around core's
/// [`PieceSchedule`], which decides what to ask of whom, what an answer is worth and whom to
/// blame. Before it can, this reader learns the blob's size from a first piece (and, for a
/// blob whose piece root the log commits, the piece hash list).
pub struct PieceFetcher {
    network: Arc<dyn PeerNetwork>,
    digest: Digest,
    total: u64,
    /// Every provider found, and whether the handshake gave it up.
    ids: Vec<String>,
    dropped: Vec<bool>,
    /// The schedule, once the size is known; its peers are `scheduled[i]` of `ids`.
    schedule: Option<PieceSchedule>,
    scheduled: Vec<usize>,
    /// Pieces in, by index, waiting to be read.
    ready: BTreeMap<u32, Vec<u8>>,
    /// Offset of the next byte to hand out, and the piece being handed out.
    position: u64,
    current: Vec<u8>,
    current_at: usize,
    next_handshake_tag: u64,
    replies: Receiver<PieceReply>,
    sender: Sender<PieceReply>,
    /// Who served each piece (for blame when the whole blob does not match).
    served_by: BTreeMap<u32, usize>,
    hint: Option<FetchHint>,
    timeout: Duration,
    /// Every piece's leaf hash, checked against the committed piece root: each piece is
    /// checked on arrival, and a bad one costs its peer, not the blob.
    expected: Option<Vec<Hash>>,
    /// The schedule's clock: core instants are microseconds since this.
    epoch: Instant,
}

impl PieceFetcher {
    /// Finds providers of `digest` and starts fetching from `offset`. `None` when no peer has
    /// it or none answers the first piece.
    pub fn open(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
    ) -> Option<(u64, PieceFetcher)> {
        Self::open_checked(network, digest, offset, None)
    }

    /// [`PieceFetcher::open`] for a blob whose piece root the log commits: the piece hash list
    /// is taken from the first provider whose list hashes to `root`, and every piece is checked
    /// against it on arrival.
    pub fn open_checked(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        root: Option<Hash>,
    ) -> Option<(u64, PieceFetcher)> {
        Self::lookup(network, digest, offset, root).found()
    }

    /// [`PieceFetcher::open_checked`], telling apart no provider from providers that
    /// disagree on the blob's size (then no peer should be trusted to fetch it either).
    pub fn lookup(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        root: Option<Hash>,
    ) -> PeerLookup {
        let providers = network.providers(&digest, LOOKUP_TIMEOUT);
        let Some(mut fetcher) = Self::new(network, digest, offset, providers, None, PIECE_TIMEOUT)
        else {
            return PeerLookup::NotFound;
        };
        if let Some(root) = root {
            match fetcher.hash_list(root) {
                Some(list) => fetcher.expected = Some(list),
                None => return PeerLookup::NotFound,
            }
        }
        fetcher.first_piece()
    }

    /// Fetches from `fetcher`, the node chosen to fetch `digest` from the upstream for the
    /// network, which serves the bytes as they arrive there ([`upstream_fetcher`]).
    pub fn through(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        fetcher: String,
        hint: FetchHint,
    ) -> Option<(u64, PieceFetcher)> {
        Self::new(
            network,
            digest,
            0,
            vec![fetcher],
            Some(hint),
            UPSTREAM_PIECE_TIMEOUT,
        )?
        .first_piece()
        .found()
    }

    fn new(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        providers: Vec<String>,
        hint: Option<FetchHint>,
        timeout: Duration,
    ) -> Option<PieceFetcher> {
        if providers.is_empty() {
            return None;
        }
        let (sender, replies) = mpsc::channel();
        Some(PieceFetcher {
            network,
            digest,
            total: 0,
            dropped: vec![false; providers.len()],
            ids: providers,
            schedule: None,
            scheduled: Vec::new(),
            ready: BTreeMap::new(),
            position: offset,
            current: Vec::new(),
            current_at: 0,
            next_handshake_tag: HANDSHAKE_TAGS,
            replies,
            sender,
            served_by: BTreeMap::new(),
            hint,
            timeout,
            expected: None,
            epoch: Instant::now(),
        })
    }

    fn now(&self) -> CoreInstant {
        CoreInstant::from_micros(
            u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// Asks provider `i` for `request` outside the schedule and waits for that answer alone
    /// (`None`: no answer within the timeout).
    fn ask(&mut self, i: usize, request: PieceRequest) -> Option<Result<PieceAnswer, String>> {
        // --max-download-rate holds for these pieces too.
        let wait = self.network.download_delay(u64::from(request.len));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let tag = self.next_handshake_tag;
        self.next_handshake_tag += 1;
        let id = self.ids[i].clone();
        self.network
            .request_piece(&id, request, self.hint.as_ref(), tag, self.sender.clone());
        loop {
            match self.replies.recv_timeout(self.timeout) {
                Ok(reply) if reply.tag == tag => return Some(reply.result),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// The piece hash list from the first provider whose list hashes to `root`; providers
    /// with another list are penalised.
    fn hash_list(&mut self, root: Hash) -> Option<Vec<Hash>> {
        for i in 0..self.ids.len() {
            let request = PieceRequest {
                digest: self.digest,
                offset: 0,
                len: 0,
                hashes: true,
            };
            match self.ask(i, request) {
                Some(Ok(PieceAnswer::Hashes(list)))
                    if pyrsia_core::pieces::piece_root(&list) == root =>
                {
                    return Some(list);
                }
                Some(Ok(PieceAnswer::Hashes(_))) => {
                    self.network.penalise(
                        &self.ids[i],
                        "piece hash list does not match the committed root",
                    );
                    self.dropped[i] = true;
                }
                _ => self.dropped[i] = true,
            }
        }
        None
    }

    /// Fetches the first piece, which tells the size, asking providers one by one until one
    /// answers it well; then starts the schedule with every provider still usable.
    fn first_piece(mut self) -> PeerLookup {
        let piece = u32::try_from(self.position / u64::from(PIECE_LEN)).unwrap_or(u32::MAX);
        let offset = u64::from(piece) * u64::from(PIECE_LEN);
        for i in 0..self.ids.len() {
            if self.dropped[i] {
                continue;
            }
            let request = PieceRequest {
                digest: self.digest,
                offset,
                len: PIECE_LEN,
                hashes: false,
            };
            let (total, bytes) = match self.ask(i, request) {
                Some(Ok(PieceAnswer::Data { total, bytes })) => (total, bytes),
                Some(Ok(PieceAnswer::Hashes(_))) => {
                    self.reject(i, offset, "answered bytes with hashes", true);
                    continue;
                }
                Some(Err(why)) => {
                    tracing::info!(peer = %self.ids[i], digest = %self.digest, why, "first piece failed; asking another peer");
                    continue;
                }
                Some(Ok(PieceAnswer::Missing)) => {
                    self.dropped[i] = true;
                    continue;
                }
                None => {
                    tracing::info!(peer = %self.ids[i], digest = %self.digest, "first piece stalled; its peer is given up, another asked");
                    self.dropped[i] = true;
                    continue;
                }
            };
            let answer = CoreAnswer {
                total,
                len: bytes.len() as u64,
                leaf: leaf_if_checked(self.expected.is_some(), &bytes),
            };
            if let Some(fault) = answer_fault(piece, None, &answer, self.expected.as_deref()) {
                self.reject(i, offset, fault.why, fault.blame);
                continue;
            }
            self.total = total;
            if self.expected.is_none() && !self.size_confirmed(i) {
                return PeerLookup::Disputed;
            }
            self.start_schedule(piece, i, bytes);
            return PeerLookup::Found(self.total, Box::new(self));
        }
        PeerLookup::NotFound
    }

    fn reject(&mut self, i: usize, offset: u64, why: &str, blame: bool) {
        if blame {
            self.network.penalise(&self.ids[i], why);
        }
        self.dropped[i] = true;
        tracing::info!(peer = %self.ids[i], digest = %self.digest, offset, why, "piece failed; asking another peer");
    }

    /// The schedule over the usable providers, with the first piece (from provider `from`) in.
    fn start_schedule(&mut self, piece: u32, from: usize, bytes: Vec<u8>) {
        self.scheduled = (0..self.ids.len()).filter(|&i| !self.dropped[i]).collect();
        let peers = self.scheduled.iter().map(|_| Have::All).collect();
        let config = ScheduleConfig {
            window: WINDOW,
            per_peer: PER_PEER,
            timeout: CoreDuration::from_micros(
                u64::try_from(self.timeout.as_micros()).unwrap_or(u64::MAX),
            ),
        };
        // Tie-breaks differ between nodes and downloads (std's per-process random keys).
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write(self.digest.as_bytes());
            hasher.finish()
        };
        let mut schedule =
            PieceSchedule::new(self.total, piece, peers, self.expected.clone(), config)
                .with_seed(seed);
        schedule.accept_outside(piece);
        self.schedule = Some(schedule);
        self.ready.insert(piece, bytes);
        self.served_by.insert(piece, from);
    }

    /// Without a piece list nothing proves the size the first answer claimed, and every reader
    /// is told that size at once: so one more provider (if there is one) is asked for the
    /// first byte, and when the two disagree the peers are given up for this blob and nobody
    /// is blamed (either may be the liar). `first` is the provider that answered first.
    fn size_confirmed(&mut self, first: usize) -> bool {
        let Some(other) = (0..self.ids.len()).find(|&j| j != first && !self.dropped[j]) else {
            return true;
        };
        let request = PieceRequest {
            digest: self.digest,
            offset: 0,
            len: 1,
            hashes: false,
        };
        match self.ask(other, request) {
            Some(Ok(PieceAnswer::Data { total, .. })) if total != self.total => {
                tracing::info!(digest = %self.digest, claimed = self.total, other = total, peer = %self.ids[first], other_peer = %self.ids[other], "peers disagree on the blob's size; not fetching it from peers");
                false
            }
            _ => true,
        }
    }

    /// The peers that served at least one piece (to blame when the blob does not match).
    pub fn contributors(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .served_by
            .values()
            .map(|&i| self.ids[i].clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Sends what the schedule asks for now, each after the download budget allows it.
    fn fill(&mut self) {
        let now = self.now();
        let Some(schedule) = self.schedule.as_mut() else {
            return;
        };
        let requests = schedule.next_requests(now);
        for request in requests {
            // --max-download-rate: wait for the budget before the request leaves; the
            // schedule's timeout counts from when it does.
            let wait = self.network.download_delay(u64::from(request.len));
            if !wait.is_zero() {
                std::thread::sleep(wait);
                let now = self.now();
                if let Some(schedule) = self.schedule.as_mut() {
                    schedule.sent(request.tag, now);
                }
            }
            let id = &self.ids[self.scheduled[request.peer]];
            self.network.request_piece(
                id,
                PieceRequest {
                    digest: self.digest,
                    offset: request.offset,
                    len: request.len,
                    hashes: false,
                },
                self.hint.as_ref(),
                request.tag,
                self.sender.clone(),
            );
        }
    }

    /// Waits for one reply (or the next deadline) and files it with the schedule.
    fn wait_one(&mut self) -> io::Result<()> {
        let Some(schedule) = self.schedule.as_ref() else {
            return Err(io::Error::other("no peer could deliver the blob"));
        };
        if schedule.is_stuck() {
            return Err(io::Error::other("no peer could deliver the blob"));
        }
        let wait = schedule
            .next_deadline()
            .map(|deadline| {
                Duration::from_micros(deadline.saturating_since(self.now()).as_micros())
            })
            .unwrap_or(self.timeout);
        match self.replies.recv_timeout(wait) {
            Ok(reply) if reply.tag >= HANDSHAKE_TAGS => Ok(()),
            Ok(reply) => {
                self.file(reply);
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = self.now();
                if let Some(schedule) = self.schedule.as_mut() {
                    for tag in schedule.handle_timeout(now) {
                        tracing::info!(digest = %self.digest, tag, "piece stalled; its peer is given up, the piece asked elsewhere");
                    }
                }
                Ok(())
            }
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("network gone")),
        }
    }

    /// Files one reply with the schedule, keeping the bytes of a good piece and penalising
    /// a peer the schedule blames.
    fn file(&mut self, reply: PieceReply) {
        let Some(schedule) = self.schedule.as_mut() else {
            return;
        };
        let tag = reply.tag;
        let blamed = match reply.result {
            Ok(PieceAnswer::Data { total, bytes }) => {
                let answer = CoreAnswer {
                    total,
                    len: bytes.len() as u64,
                    leaf: leaf_if_checked(self.expected.is_some(), &bytes),
                };
                match schedule.handle_piece(tag, answer) {
                    Filed::Accepted { piece, peer, .. } => {
                        self.served_by.insert(piece, self.scheduled[peer]);
                        self.ready.insert(piece, bytes);
                        None
                    }
                    Filed::Rejected { peer, blame } => {
                        let why = blame.unwrap_or("claims another blob size");
                        tracing::info!(peer = %self.ids[self.scheduled[peer]], digest = %self.digest, why, "piece failed; asking another peer");
                        blame.map(|why| (peer, why))
                    }
                    Filed::Unknown => None,
                }
            }
            Ok(PieceAnswer::Hashes(_)) => schedule
                .handle_failure(tag, true)
                .map(|peer| (peer, "answered bytes with hashes")),
            Ok(PieceAnswer::Missing) => {
                schedule.handle_missing(tag);
                None
            }
            Err(why) => {
                if let Some(peer) = schedule.handle_failure(tag, false) {
                    tracing::info!(peer = %self.ids[self.scheduled[peer]], digest = %self.digest, why, "piece failed; asking another peer");
                }
                None
            }
        };
        if let Some((peer, why)) = blamed {
            self.network.penalise(&self.ids[self.scheduled[peer]], why);
        }
    }
}

/// The leaf hash of a piece's bytes when a piece hash list will check it (hashing 1 MiB
/// costs); otherwise a placeholder the schedule never looks at.
fn leaf_if_checked(checked: bool, bytes: &[u8]) -> Hash {
    if checked {
        leaf_hash(bytes)
    } else {
        Hash::default()
    }
}

impl Read for PieceFetcher {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current_at < self.current.len() {
                let n = buf.len().min(self.current.len() - self.current_at);
                buf[..n].copy_from_slice(&self.current[self.current_at..self.current_at + n]);
                self.current_at += n;
                self.position += n as u64;
                return Ok(n);
            }
            if self.position >= self.total {
                return Ok(0);
            }
            let piece = u32::try_from(self.position / u64::from(PIECE_LEN)).unwrap_or(u32::MAX);
            if let Some(bytes) = self.ready.remove(&piece) {
                if let Some(schedule) = self.schedule.as_mut() {
                    let delivered = schedule.take_deliverable();
                    debug_assert_eq!(delivered, Some(piece));
                }
                // A read may start inside the piece (a resumed download).
                let skip = (self.position - u64::from(piece) * u64::from(PIECE_LEN)) as usize;
                self.current = bytes;
                self.current_at = skip.min(self.current.len());
                continue;
            }
            self.fill();
            self.wait_one()?;
        }
    }
}

#[cfg(test)]
mod tests;
