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
    Filed, Have, PieceAnswer as CoreAnswer, PieceSchedule, ScheduleConfig, answer_fault, handshake,
};
use pyrsia_core::source_search::{Action, Asking, Holding, Provider, SearchConfig, SourceSearch};
use pyrsia_core::time::{Duration as CoreDuration, Instant as CoreInstant};
use pyrsia_core::tlog::{Hash, leaf_hash};

mod stalls;
pub use stalls::StallMemory;

/// Bytes per piece.
pub const PIECE_LEN: u32 = pyrsia_core::pieces::PIECE_LEN;
/// Pieces requested or waiting to be read while the peers' pipelines are short (core's rule,
/// which the simulation runs too; they grow to `piece_schedule::MAX_WINDOW`, the memory
/// bound per download).
pub const WINDOW: usize = pyrsia_core::piece_schedule::WINDOW;
/// Pieces one peer is asked for at once at first (core's rule; up to
/// `piece_schedule::MAX_PER_PEER` while it keeps up).
pub const PER_PEER: usize = pyrsia_core::piece_schedule::PER_PEER;
/// A peer that has not answered a piece in this long is dropped and its pieces go elsewhere.
pub const PIECE_TIMEOUT: Duration = Duration::from_secs(5);
/// The same for the node fetching from the upstream for the network: its pieces wait for the
/// upstream's bytes.
pub const UPSTREAM_PIECE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to look for providers before giving up on peers.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What a [`PieceRequest`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Bytes `offset..offset+len`.
    Bytes,
    /// The blob's piece hash list (`offset` and `len` unused).
    Hashes,
    /// What the peer holds of the blob now, and how busy it is (`offset` and `len` unused).
    Have,
}

/// A request for part of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceRequest {
    /// The blob.
    pub digest: Digest,
    /// First byte.
    pub offset: u64,
    /// Bytes wanted (at most [`PIECE_LEN`]).
    pub len: u32,
    /// Bytes, the hash list, or what the peer holds.
    pub ask: Ask,
    /// For bytes: whether the peer must send them even if it sent this piece to others
    /// lately (else it may answer [`PieceAnswer::Elsewhere`]). True unless the schedule says
    /// otherwise ([`PieceRequest::insisting`]).
    pub insist: bool,
}

impl PieceRequest {
    /// A request for bytes `offset..offset+len` of `digest`.
    pub fn bytes(digest: Digest, offset: u64, len: u32) -> PieceRequest {
        PieceRequest {
            digest,
            offset,
            len,
            ask: Ask::Bytes,
            insist: true,
        }
    }

    /// The same request, insisting or not ([`PieceRequest::insist`]): what core's schedule
    /// says for the piece.
    pub fn insisting(self, insist: bool) -> PieceRequest {
        PieceRequest { insist, ..self }
    }

    /// A request for something about `digest` other than bytes.
    pub fn about(digest: Digest, ask: Ask) -> PieceRequest {
        PieceRequest {
            digest,
            offset: 0,
            len: 0,
            ask,
            insist: true,
        }
    }
}

/// A peer's answer to a [`PieceRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PieceAnswer {
    /// The bytes, and the blob's total size.
    Data {
        /// The blob's size.
        total: u64,
        /// The piece (shared with the shelf when served from a download in progress).
        bytes: crate::piece_bytes::PieceBytes,
    },
    /// The leaf hash of every piece, in order (answers [`Ask::Hashes`]).
    Hashes(Vec<Hash>),
    /// What the peer holds (answers [`Ask::Have`]): the blob's size, how many pieces from
    /// the first it holds (a node still downloading holds a prefix; one that stores the blob
    /// holds them all), and how many answers it is preparing for anyone now.
    Have {
        /// The blob's size.
        total: u64,
        /// Pieces held, from the first.
        pieces: u32,
        /// Answers being prepared (0 when the mirror answers; the network fills it in).
        load: u32,
        /// Pieces beyond the first `pieces` it holds too (at most [`MAX_AHEAD`]).
        ahead: Vec<u32>,
    },
    /// The peer does not hold the blob (any more).
    Missing,
    /// The peer takes no more piece requests now (its upload is full): ask another holder,
    /// or this one again after [`pyrsia_core::piece_schedule::BUSY_BACKOFF`].
    Busy,
    /// The peer sent this piece to these peers (ids) lately and keeps its upload for what
    /// others do not hold yet: ask them, then ask for the piece insisting. Only the network
    /// answers this, to a request that does not insist (never a mirror's own answer).
    Elsewhere(Vec<String>),
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

/// What a piece request asks of a peer that lacks the piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfMissing<'a> {
    /// Nothing: the peer answers [`PieceAnswer::Missing`].
    Nothing,
    /// Fetch the blob from this origin's upstream for the network, when the peer is one of
    /// the nodes chosen to ([`honour_fetch`]).
    FetchForNetwork(&'a FetchHint),
    /// Fetch the blob from the peer's own peers and serve it on: the peer is the relay that
    /// carries the asker's circuit to a source the asker reaches only through it (core's
    /// [`pyrsia_core::reach`]). `asker_circuit` says whether the relay carries a circuit of
    /// the asker now (filled in by the receiving node's network; the asker sends `false`).
    Bridge {
        /// The blob's origin.
        hint: &'a FetchHint,
        /// Whether this node, as a relay, carries a circuit of the asker now.
        asker_circuit: bool,
    },
}

impl<'a> IfMissing<'a> {
    /// The blob's origin, when the request names one.
    pub fn hint(self) -> Option<&'a FetchHint> {
        match self {
            IfMissing::Nothing => None,
            IfMissing::FetchForNetwork(hint) | IfMissing::Bridge { hint, .. } => Some(hint),
        }
    }
}

/// How this node reaches a peer now (core's [`pyrsia_core::reach::Path`], peers named by
/// their ids).
pub type Path = pyrsia_core::reach::Path<String>;

/// What the mirror needs from the P2P network.
pub trait PeerNetwork: Send + Sync {
    /// This node's peer id.
    fn local_id(&self) -> String;
    /// The peers connected now.
    fn live_peers(&self) -> Vec<String>;
    /// Peers that announced `digest`, found within `timeout` (never this node): those that
    /// store it and those downloading it now.
    fn providers(&self, digest: &Digest, timeout: Duration) -> Vec<String>;
    /// The peers nearest `digest` in the DHT, asked of the whole network, and the peers
    /// connected now, with each one's key for [`pyrsia_core::rendezvous::nearest`]; never this
    /// node. By default the live peers, keyed by their ids.
    fn closest_peers(&self, digest: &Digest) -> Vec<(String, Vec<u8>)> {
        let _ = digest;
        self.live_peers()
            .into_iter()
            .map(|id| {
                let key = id.as_bytes().to_vec();
                (id, key)
            })
            .collect()
    }
    /// Whether the last lookup of the peers nearest `digest` ([`Self::closest_peers`]) could
    /// not reach some peers it was told of (at their connection limit, say): the nearest may
    /// be among them. By default no.
    fn view_may_miss_nearest(&self, digest: &Digest) -> bool {
        let _ = digest;
        false
    }
    /// `peer`'s key for [`pyrsia_core::rendezvous::nearest`], as [`Self::closest_peers`] keys
    /// it. By default its id's bytes.
    fn peer_key(&self, peer: &str) -> Vec<u8> {
        peer.as_bytes().to_vec()
    }
    /// This node's key for [`pyrsia_core::rendezvous::nearest`] (its peer id's bytes).
    fn local_key(&self) -> Vec<u8> {
        self.local_id().into_bytes()
    }
    /// How this node reaches `peer` now: directly, only through a relay (which), or not
    /// connected. By default directly.
    fn path(&self, peer: &str) -> Path {
        let _ = peer;
        Path::Direct
    }
    /// Sends `request` to `peer` (with what it should do when it lacks the piece); the
    /// reply (or failure) arrives on `reply` with `tag`.
    fn request_piece(
        &self,
        peer: &str,
        request: PieceRequest,
        if_missing: IfMissing<'_>,
        tag: u64,
        reply: Sender<PieceReply>,
    );
    /// Counts a misbehaviour against `peer` (the network blocks repeat offenders).
    fn penalise(&self, peer: &str, why: &str);
    /// The node's memory of peers that stalled its fetches, shared by all of them: a fetch
    /// asks a peer in it only for pieces nobody else holds. By default none (every fetch
    /// starts afresh).
    fn stalls(&self) -> Option<&StallMemory> {
        None
    }
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
    /// Other nodes asked this node to fetch the blob for the network and wait on it
    /// (core's `SearchConfig::serving_others`).
    pub serving_others: bool,
}

/// What serves pieces to peers: the mirror (stored blobs, and with a hint, blobs it fetches
/// for the network as their bytes arrive). Blocking: the network calls it off its own thread.
pub trait PieceSource: Send + Sync {
    /// The piece, or [`PieceAnswer::Missing`]; `if_missing` says what the asker wants done
    /// when this node lacks it.
    fn piece(&self, request: &PieceRequest, if_missing: IfMissing<'_>) -> PieceAnswer;
}

/// How many nodes are asked in turn to fetch a blob for the network (core's rule).
pub use pyrsia_core::rendezvous::CLAIMANTS;

/// The nodes that fetch `digest` from the upstream for the whole network, in the order they
/// are asked (`None` stands for this node): core's [`pyrsia_core::rendezvous::claimants`]
/// over this node, the peers the DHT finds nearest the digest and the peers connected now.
pub fn upstream_fetchers(network: &dyn PeerNetwork, digest: &Digest) -> Vec<Option<String>> {
    let local = network.local_key();
    let peers = network.closest_peers(digest);
    let keys: Vec<&[u8]> = peers.iter().map(|(_, key)| key.as_slice()).collect();
    pyrsia_core::rendezvous::claimants(digest.as_bytes(), &local, &keys)
        .into_iter()
        .map(|chosen| chosen.map(|i| peers[i].0.clone()))
        .collect()
}

/// The node asked first to fetch `digest` from the upstream for the network
/// ([`upstream_fetchers`]); `None` when it is this node.
pub fn upstream_fetcher(network: &dyn PeerNetwork, digest: &Digest) -> Option<String> {
    upstream_fetchers(network, digest)
        .into_iter()
        .next()
        .flatten()
}

/// What this node does when a peer asks it to fetch `digest` from the upstream for the
/// network (core's [`pyrsia_core::rendezvous::honour`] over [`upstream_fetchers`]): refuse
/// unless it is one of the nodes asked; fetch at once when it is the nearest; else ask the
/// nearer ones first.
pub fn honour_fetch(network: &dyn PeerNetwork, digest: &Digest) -> pyrsia_core::rendezvous::Honour {
    pyrsia_core::rendezvous::honour(&upstream_fetchers(network, digest))
}

/// What a fetch that names the blob's origin sends along with its piece requests: the
/// origin, so that the node chosen to fetch it for the network can; and the bridge, the relay
/// asked to fetch it from its own peers for this node (core's [`pyrsia_core::reach`]).
struct ForNetwork {
    hint: FetchHint,
    bridge: Option<String>,
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

/// Tags of the requests made before the schedule exists (the survey of what providers
/// hold, hash list, first piece, size check): far above the schedule's own, so the two
/// never meet.
const HANDSHAKE_TAGS: u64 = 1 << 63;
/// Tags of the questions what a peer holds, during the fetch: this plus the peer's index in
/// the schedule.
const POLL_TAGS: u64 = 1 << 62;
/// How long the providers found are given to say what they hold.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a round of the fetch's peers (core's `POLLS_PER_ROUND` of them, in turn) is
/// asked what they hold now and how busy they are.
pub const HAVE_POLL: Duration = Duration::from_millis(250);

/// The most pieces a peer names as held beyond its prefix (a fetch holds at most its window
/// there).
pub const MAX_AHEAD: usize = 256;

/// The pieces a fetch has received and checked but not yet handed to its reader: served to
/// peers from memory meanwhile (a node trades the pieces it holds out of order, not only the
/// prefix it has written).
#[derive(Default)]
pub struct Shelf {
    pieces: std::sync::Mutex<BTreeMap<u32, Arc<Vec<u8>>>>,
    /// Told when a piece is put on the shelf.
    arrived: std::sync::Condvar,
}

impl Shelf {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<Vec<u8>>>> {
        self.pieces.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, piece: u32, bytes: Vec<u8>) {
        self.lock().insert(piece, Arc::new(bytes));
        self.arrived.notify_all();
    }

    /// The bytes of `piece`, waiting up to `patience` for them to be put on the shelf.
    pub fn wait_for(&self, piece: u32, patience: std::time::Duration) -> Option<Arc<Vec<u8>>> {
        let until = std::time::Instant::now() + patience;
        let mut pieces = self.lock();
        loop {
            if let Some(bytes) = pieces.get(&piece) {
                return Some(bytes.clone());
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            pieces = self
                .arrived
                .wait_timeout(pieces, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn take(&self, piece: u32) -> Option<Arc<Vec<u8>>> {
        self.lock().remove(&piece)
    }

    /// The bytes of `piece`, if on the shelf.
    pub fn get(&self, piece: u32) -> Option<Arc<Vec<u8>>> {
        self.lock().get(&piece).cloned()
    }

    /// The pieces on the shelf, at most [`MAX_AHEAD`].
    pub fn held(&self) -> Vec<u32> {
        self.lock().keys().copied().take(MAX_AHEAD).collect()
    }
}

/// An in-order reader over a blob fetched in pieces from several peers: the IO around core's
/// [`PieceSchedule`], which decides what to ask of whom, what an answer is worth and whom to
/// blame. Before it can, this reader surveys what the providers hold (nodes that store the
/// blob, and nodes still downloading it, which serve the pieces they have), learns the
/// blob's size from a first piece (and, for a blob whose piece root the log commits, the
/// piece hash list). During the fetch it asks every peer what it holds and how busy it is,
/// and looks for nodes that started downloading the blob since.
pub struct PieceFetcher {
    network: Arc<dyn PeerNetwork>,
    digest: Digest,
    total: u64,
    /// Every provider found, what it holds, and whether the handshake gave it up.
    ids: Vec<String>,
    haves: Vec<Have>,
    dropped: Vec<bool>,
    /// The schedule, once the size is known; its peers are `scheduled[i]` of `ids`.
    schedule: Option<PieceSchedule>,
    scheduled: Vec<usize>,
    /// Pieces in, by index, waiting to be read.
    ready: Arc<Shelf>,
    /// Offset of the next byte to hand out, and the piece being handed out.
    position: u64,
    current: Arc<Vec<u8>>,
    current_at: usize,
    next_handshake_tag: u64,
    replies: Receiver<PieceReply>,
    sender: Sender<PieceReply>,
    /// Who served each piece (for blame when the whole blob does not match).
    served_by: BTreeMap<u32, usize>,
    /// What the fetch asks of peers that lack a piece, when it names the blob's origin.
    asking: Option<ForNetwork>,
    timeout: Duration,
    /// Every piece's leaf hash, checked against the committed piece root: each piece is
    /// checked on arrival, and a bad one costs its peer, not the blob.
    expected: Option<Vec<Hash>>,
    /// The schedule's clock: core instants are microseconds since this.
    epoch: Instant,
    /// Providers found again during the fetch (by a thread that looks ever less often, as
    /// core's `rediscover_wait` says, and stops when this is dropped).
    found: Option<Rediscovery>,
    /// The provider (of `ids`) fetching the blob from the upstream for the network, if one
    /// is asked: it serves pieces as they arrive there, in order.
    streaming: Option<usize>,
    /// Whether the providers download the blob themselves and nobody here fetches it for
    /// them (following downloaders): the schedule waits for them to grow.
    following: bool,
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
    /// disagree on the blob's size (then no peer should be trusted to fetch it either). Some
    /// provider must store the whole blob; those still downloading it help.
    pub fn lookup(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        root: Option<Hash>,
    ) -> PeerLookup {
        Self::search(network, digest, offset, root, None, false)
    }

    /// What a download of a blob from registry `hint` asks of the peers: the providers, when
    /// one stores the whole blob; otherwise the node that fetches it from the upstream for
    /// the network ([`upstream_fetcher`]; it serves the bytes as they arrive there). Nodes
    /// still downloading it serve the pieces they hold either way. `NotFound` when this node
    /// is the one to fetch it from the upstream. The reader starts at `offset` (a download
    /// that resumes after its peers stopped delivering: asked again, they name the node next
    /// in line).
    pub fn find(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        root: Option<Hash>,
        hint: FetchHint,
        offset: u64,
        serving_others: bool,
    ) -> PeerLookup {
        Self::search(network, digest, offset, root, Some(hint), serving_others)
    }

    /// Drives core's [`SourceSearch`] (every decision of where the blob comes from) with
    /// this node's network: lookups, surveys, handshakes and pauses.
    fn search(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        root: Option<Hash>,
        hint: Option<FetchHint>,
        serving_others: bool,
    ) -> PeerLookup {
        let epoch = Instant::now();
        let now = || core_instant(epoch.elapsed());
        let config = SearchConfig {
            serving_others,
            lookup_timeout: core_duration(LOOKUP_TIMEOUT),
            poll: core_duration(HAVE_POLL),
        };
        let mut search = SourceSearch::new(
            digest.as_bytes(),
            &network.local_key(),
            hint.is_some(),
            offset > 0,
            config,
        );
        let mut action = search.start();
        loop {
            action = match action {
                Action::FindProviders { within } => {
                    let within = Duration::from_micros(within.as_micros());
                    let found = network
                        .providers(&digest, within)
                        .into_iter()
                        .map(|peer| Provider {
                            key: network.peer_key(&peer),
                            path: network.path(&peer),
                            peer,
                        })
                        .collect();
                    search.providers_found(found, now())
                }
                Action::Survey { providers } => {
                    let holdings = survey(&*network, &digest, &providers)
                        .into_iter()
                        .map(|(peer, total, pieces, ahead)| Holding {
                            path: network.path(&peer),
                            peer,
                            total,
                            pieces,
                            ahead,
                        })
                        .collect();
                    search.surveyed(holdings, now())
                }
                Action::FindClaimants => {
                    let claimants = upstream_fetchers(&*network, &digest)
                        .into_iter()
                        .map(|c| c.map(|id| (id.clone(), network.path(&id))))
                        .collect();
                    let unreached = network.view_may_miss_nearest(&digest);
                    search.claimants_found(claimants, unreached, now())
                }
                Action::Try { peers, asking } => {
                    log_try(&digest, &peers, &asking);
                    let first = peers[0].0.clone();
                    let found = match (asking, &hint) {
                        (Asking::Holders, _) | (_, None) => {
                            Self::start(network.clone(), digest, offset, peers, None, root)
                        }
                        (Asking::Following, _) => {
                            Self::follow(network.clone(), digest, peers, root)
                        }
                        (asking, Some(hint)) => {
                            let asking = ForNetwork {
                                hint: hint.clone(),
                                bridge: matches!(asking, Asking::Bridge | Asking::BridgeToClaimant)
                                    .then(|| first.clone()),
                            };
                            Self::start(network.clone(), digest, offset, peers, Some(asking), None)
                        }
                    };
                    match found {
                        PeerLookup::NotFound => {
                            tracing::info!(%digest, peer = %first, "the peers asked did not serve the blob");
                            search.none_served(now())
                        }
                        found => return found,
                    }
                }
                Action::Wait { until } => {
                    let until = epoch + Duration::from_micros(until.as_micros());
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                    search.waited(now())
                }
                Action::Upstream => {
                    tracing::debug!(%digest, claimants_asked = search.asked().len(), "no peer serves this blob");
                    return PeerLookup::NotFound;
                }
            };
        }
    }

    /// Follows `holders`, peers downloading the blob from a nearer node this node does not
    /// reach (at its connection limit, say): from the blob's start, waiting for their pieces.
    fn follow(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        holders: Vec<(String, Have)>,
        root: Option<Hash>,
    ) -> PeerLookup {
        let Some(mut fetcher) = Self::new(network, digest, 0, holders, None, PIECE_TIMEOUT) else {
            return PeerLookup::NotFound;
        };
        fetcher.following = true;
        fetcher.handshake(root)
    }

    /// The handshake with `peers` (the first of them holding every piece): the hash list when
    /// `root` is committed, then the first piece; with `hint`, the first is the node fetching
    /// the blob from the upstream for the network, and its pieces may wait for the upstream.
    fn start(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        peers: Vec<(String, Have)>,
        asking: Option<ForNetwork>,
        root: Option<Hash>,
    ) -> PeerLookup {
        let (timeout, root) = match asking {
            Some(_) => (UPSTREAM_PIECE_TIMEOUT, None),
            None => (PIECE_TIMEOUT, root),
        };
        match Self::new(network, digest, offset, peers, asking, timeout) {
            Some(fetcher) => fetcher.handshake(root),
            None => PeerLookup::NotFound,
        }
    }

    /// The hash list when `root` is committed, then the first piece.
    fn handshake(mut self, root: Option<Hash>) -> PeerLookup {
        if let Some(root) = root {
            match self.hash_list(root) {
                Some(list) => self.expected = Some(list),
                None => return PeerLookup::NotFound,
            }
        }
        self.first_piece()
    }

    fn new(
        network: Arc<dyn PeerNetwork>,
        digest: Digest,
        offset: u64,
        providers: Vec<(String, Have)>,
        asking: Option<ForNetwork>,
        timeout: Duration,
    ) -> Option<PieceFetcher> {
        if providers.is_empty() {
            return None;
        }
        let (sender, replies) = mpsc::channel();
        let hint_given = asking.is_some();
        let (ids, haves): (Vec<String>, Vec<Have>) = providers.into_iter().unzip();
        Some(PieceFetcher {
            network,
            digest,
            total: 0,
            dropped: vec![false; ids.len()],
            ids,
            haves,
            schedule: None,
            scheduled: Vec::new(),
            ready: Arc::default(),
            position: offset,
            current: Arc::default(),
            current_at: 0,
            next_handshake_tag: HANDSHAKE_TAGS,
            replies,
            sender,
            served_by: BTreeMap::new(),
            asking,
            timeout,
            expected: None,
            epoch: Instant::now(),
            found: None,
            // With a hint, the first provider is the node fetching for the network.
            streaming: hint_given.then_some(0),
            following: false,
        })
    }

    fn now(&self) -> CoreInstant {
        CoreInstant::from_micros(
            u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// What a request to `peer` asks it to do when it lacks the piece: bridge the blob when
    /// it is this fetch's bridge, fetch it for the network when the fetch names the origin.
    fn if_missing(&self, peer: &str) -> IfMissing<'_> {
        match &self.asking {
            None => IfMissing::Nothing,
            Some(asking) if asking.bridge.as_deref() == Some(peer) => IfMissing::Bridge {
                hint: &asking.hint,
                asker_circuit: false,
            },
            Some(asking) => IfMissing::FetchForNetwork(&asking.hint),
        }
    }

    /// Asks provider `i` for `request` outside the schedule and waits at most `patience` for
    /// that answer alone (`None`: no answer in time). A busy peer is asked again after core's
    /// backoff, within the same patience; `Busy` when it still was at the end.
    fn ask_within(
        &mut self,
        i: usize,
        request: PieceRequest,
        patience: Duration,
    ) -> Option<Result<PieceAnswer, String>> {
        let deadline = Instant::now() + patience;
        loop {
            // --max-download-rate holds for these pieces too.
            let wait = self.network.download_delay(u64::from(request.len));
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let tag = self.next_handshake_tag;
            self.next_handshake_tag += 1;
            let id = self.ids[i].clone();
            self.network.request_piece(
                &id,
                request,
                self.if_missing(&id),
                tag,
                self.sender.clone(),
            );
            let answer = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.replies.recv_timeout(left) {
                    Ok(reply) if reply.tag == tag => break reply.result,
                    Ok(_) => continue,
                    Err(_) => return None,
                }
            };
            if answer != Ok(PieceAnswer::Busy) {
                return Some(answer);
            }
            let rest = Duration::from_micros(pyrsia_core::piece_schedule::BUSY_BACKOFF.as_micros());
            if Instant::now() + rest >= deadline {
                return Some(answer);
            }
            std::thread::sleep(rest);
        }
    }

    /// The piece hash list from the first provider storing the blob whose list hashes to
    /// `root`; providers with another list are penalised. Asked in core's handshake turns,
    /// as the first piece is ([`Self::holders_in_turn`]).
    fn hash_list(&mut self, root: Hash) -> Option<Vec<Hash>> {
        for (i, patience) in self.holders_in_turn(|have| *have == Have::All) {
            if self.dropped[i] {
                continue;
            }
            let request = PieceRequest::about(self.digest, Ask::Hashes);
            match self.handshake_ask(i, request, patience) {
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

    /// The providers as core's handshake sees them: usable when not dropped and their
    /// holdings pass `holds`, and whether the node remembers them stalling.
    fn candidates(&self, holds: impl Fn(&Have) -> bool) -> Vec<handshake::Candidate> {
        let memory = self.network.stalls();
        (0..self.ids.len())
            .map(|i| handshake::Candidate {
                holds: !self.dropped[i] && holds(&self.haves[i]),
                stalled_lately: memory.is_some_and(|m| m.stalled_lately(&self.ids[i])),
            })
            .collect()
    }

    /// The providers whose holdings pass `holds`, in core's handshake turns, each with how
    /// long it is waited for (`handshake::turns`).
    fn holders_in_turn(&self, holds: impl Fn(&Have) -> bool) -> Vec<(usize, Duration)> {
        handshake::turns(&self.candidates(holds), core_duration(self.timeout))
            .into_iter()
            .map(|(i, wait)| (i, std_duration(wait)))
            .collect()
    }

    /// Asks provider `i` for `request` before the schedule starts, waiting `patience`; when
    /// core says the reply earns it (`handshake::remembered_after`: silence), the node
    /// remembers the provider stalling, so that its next fetches ask it last.
    fn handshake_ask(
        &mut self,
        i: usize,
        request: PieceRequest,
        patience: Duration,
    ) -> Option<Result<PieceAnswer, String>> {
        let answer = self.ask_within(i, request, patience);
        let reply = match &answer {
            None => handshake::Reply::Silent,
            Some(Ok(PieceAnswer::Busy)) => handshake::Reply::Busy,
            Some(_) => handshake::Reply::Answered,
        };
        if handshake::remembered_after(reply)
            && let Some(memory) = self.network.stalls()
        {
            let wait = memory.stalled(&self.ids[i]);
            tracing::info!(digest = %self.digest, peer = %self.ids[i], ?wait, "this peer did not answer in time: asked last for a while");
        }
        answer
    }

    /// Fetches the first piece, which tells the size, asking the providers that hold every
    /// piece one by one until one answers it well (when none holds every piece, as when
    /// following downloaders, those holding that piece), in core's handshake turns (those the
    /// node remembers stalling last, each but the last for a quarter of the timeout; one that
    /// stays silent is remembered). Then starts the schedule with every provider still usable.
    fn first_piece(mut self) -> PeerLookup {
        let piece = u32::try_from(self.position / u64::from(PIECE_LEN)).unwrap_or(u32::MAX);
        let offset = u64::from(piece) * u64::from(PIECE_LEN);
        let any_whole = self.haves.contains(&Have::All);
        let holds = |have: &Have| match any_whole {
            true => *have == Have::All,
            false => have.has(piece),
        };
        for (i, patience) in self.holders_in_turn(holds) {
            if self.dropped[i] {
                continue;
            }
            let request = PieceRequest::bytes(self.digest, offset, PIECE_LEN);
            let (total, bytes) = match self.handshake_ask(i, request, patience) {
                Some(Ok(PieceAnswer::Data { total, bytes })) => (total, bytes.into_vec()),
                Some(Ok(PieceAnswer::Hashes(_) | PieceAnswer::Have { .. })) => {
                    self.reject(i, offset, "answered bytes with something else", true);
                    continue;
                }
                Some(Err(why)) => {
                    tracing::info!(peer = %self.ids[i], digest = %self.digest, why, "first piece failed; asking another peer");
                    continue;
                }
                // (The first piece is asked insisting: a peer sending it elsewhere lacks it.)
                Some(Ok(PieceAnswer::Missing | PieceAnswer::Elsewhere(_))) => {
                    self.dropped[i] = true;
                    continue;
                }
                // (`ask_within` waits out a busy peer within the patience.)
                Some(Ok(PieceAnswer::Busy)) => {
                    tracing::info!(peer = %self.ids[i], digest = %self.digest, "first piece answered busy until the patience ran out; its peer is given up, another asked");
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
        let peers = self
            .scheduled
            .iter()
            .map(|&i| self.haves[i].clone())
            .collect();
        let config = ScheduleConfig {
            window: WINDOW,
            max_window: pyrsia_core::piece_schedule::MAX_WINDOW,
            per_peer: PER_PEER,
            max_per_peer: pyrsia_core::piece_schedule::MAX_PER_PEER,
            timeout: core_duration(self.timeout),
            have_poll: core_duration(HAVE_POLL),
            polls_per_round: pyrsia_core::piece_schedule::POLLS_PER_ROUND,
            busy_backoff: pyrsia_core::piece_schedule::BUSY_BACKOFF,
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
        if self.following {
            schedule = schedule.with_growing_holders(pyrsia_core::piece_schedule::FOLLOW_PATIENCE);
        }
        schedule.accept_outside(piece);
        for (index, &i) in self.scheduled.iter().enumerate() {
            let network = &*self.network;
            Self::mark_slow_if_stalled(network, &mut schedule, index, &self.ids[i], &self.digest);
        }
        if let Some(peer) = self
            .streaming
            .and_then(|id| self.scheduled.iter().position(|&i| i == id))
        {
            // It has sent the first piece asked: it has that far at least.
            schedule.handle_stream(peer, piece.saturating_add(1));
        }
        self.schedule = Some(schedule);
        self.ready.put(piece, bytes);
        self.served_by.insert(piece, from);
        // A blob of a few pieces is in before anyone new could help.
        if schedule_is_long(self.total) {
            self.found = Some(rediscover(self.network.clone(), self.digest));
        }
    }

    /// Marks `peer` (the schedule's peer `index`) slow when the node remembers it stalling.
    fn mark_slow_if_stalled(
        network: &dyn PeerNetwork,
        schedule: &mut PieceSchedule,
        index: usize,
        peer: &str,
        digest: &Digest,
    ) {
        if network.stalls().is_some_and(|m| m.stalled_lately(peer)) {
            tracing::info!(%digest, %peer, "this peer stalled a fetch lately: asked only for pieces nobody else holds");
            schedule.handle_slow(index);
        }
    }

    /// Without a piece list nothing proves the size the first answer claimed, and every reader
    /// is told that size at once: so one more provider (if there is one) is asked for the
    /// first byte, and when the two disagree the peers are given up for this blob and nobody
    /// is blamed (either may be the liar). `first` is the provider that answered first. Who
    /// is asked and for how long is core's (`handshake::size_check`: not a remembered
    /// staller, a quarter of the timeout); when it stays silent the size stands.
    fn size_confirmed(&mut self, first: usize) -> bool {
        let candidates = self.candidates(|have| *have == Have::All);
        let Some((other, wait)) =
            handshake::size_check(first, &candidates, core_duration(self.timeout))
        else {
            return true;
        };
        let request = PieceRequest::bytes(self.digest, 0, 1);
        match self.handshake_ask(other, request, std_duration(wait)) {
            Some(Ok(PieceAnswer::Data { total, .. })) if total != self.total => {
                tracing::info!(digest = %self.digest, claimed = self.total, other = total, peer = %self.ids[first], other_peer = %self.ids[other], "peers disagree on the blob's size; not fetching it from peers");
                false
            }
            _ => true,
        }
    }

    /// The pieces received and not yet read, for serving to peers meanwhile.
    pub fn shelf(&self) -> Arc<Shelf> {
        self.ready.clone()
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
                PieceRequest::bytes(self.digest, request.offset, request.len)
                    .insisting(request.insist),
                self.if_missing(id),
                request.tag,
                self.sender.clone(),
            );
        }
    }

    /// Takes in the providers found since, and asks the peers that are due what they hold.
    fn poll(&mut self) {
        let now = self.now();
        let Some(schedule) = self.schedule.as_mut() else {
            return;
        };
        while let Some(list) = self.found.as_ref().and_then(|f| f.found.try_recv().ok()) {
            for id in list {
                if self.ids.contains(&id)
                    || !pyrsia_core::reach::carries_pieces(&self.network.path(&id))
                {
                    continue;
                }
                tracing::info!(digest = %self.digest, peer = %id, "a peer that started downloading this blob joins the fetch");
                self.ids.push(id.clone());
                self.haves.push(Have::Pieces(Vec::new()));
                self.dropped.push(false);
                let index = schedule.add_peer(Have::Pieces(Vec::new()));
                debug_assert_eq!(index, self.scheduled.len());
                self.scheduled.push(self.ids.len() - 1);
                let network = &*self.network;
                Self::mark_slow_if_stalled(network, schedule, index, &id, &self.digest);
            }
        }
        for peer in schedule.have_polls(now) {
            self.network.request_piece(
                &self.ids[self.scheduled[peer]],
                PieceRequest::about(self.digest, Ask::Have),
                IfMissing::Nothing,
                POLL_TAGS + peer as u64,
                self.sender.clone(),
            );
        }
    }

    /// Waits for one reply (or the next deadline) and files it with the schedule.
    fn wait_one(&mut self) -> io::Result<()> {
        self.poll();
        let now = self.now();
        let Some(schedule) = self.schedule.as_mut() else {
            return Err(io::Error::other("no peer could deliver the blob"));
        };
        if schedule.gives_up(now) {
            return Err(io::Error::other("no peer could deliver the blob"));
        }
        let wait = schedule
            .next_deadline()
            .map(|deadline| {
                Duration::from_micros(deadline.saturating_since(self.now()).as_micros())
            })
            .unwrap_or(self.timeout);
        match self.replies.recv_timeout(wait) {
            Ok(reply) => self.dispatch(reply),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(io::Error::other("network gone")),
        }
        // A deadline that passed is kept even while replies keep coming (from other peers).
        let now = self.now();
        if let Some(schedule) = self.schedule.as_mut()
            && schedule
                .next_deadline()
                .is_some_and(|deadline| deadline <= now)
        {
            for stall in schedule.handle_timeout(now) {
                let peer = &self.ids[self.scheduled[stall.peer]];
                tracing::info!(digest = %self.digest, tag = stall.tag, %peer, "piece stalled; its peer is given up, the piece asked elsewhere");
            }
        }
        Ok(())
    }

    /// Files one reply: an answer to what a peer holds, or to a piece request (a late
    /// handshake answer is dropped).
    fn dispatch(&mut self, reply: PieceReply) {
        match reply.tag {
            tag if tag >= HANDSHAKE_TAGS => {}
            tag if tag >= POLL_TAGS => self.file_have(reply),
            _ => self.file(reply),
        }
    }

    /// Files every reply already in, without waiting, then sends what the schedule asks for:
    /// called each time the reader takes a piece, so the pipelines refill while the reader
    /// writes the bytes out (not only once it runs dry, which drained them to nothing
    /// between bursts).
    fn pump(&mut self) {
        while let Ok(reply) = self.replies.try_recv() {
            self.dispatch(reply);
        }
        self.fill();
    }

    /// Files a peer's answer to what it holds. A peer taken on as holding every piece (it
    /// stores the blob, or fetches it for the network and serves bytes as they arrive) only
    /// tells its load; one downloading it tells what it holds too. An answer for another
    /// size is not believed (what the peer holds stays unknown).
    fn file_have(&mut self, reply: PieceReply) {
        let peer = (reply.tag - POLL_TAGS) as usize;
        let (Some(schedule), Some(&id)) = (self.schedule.as_mut(), self.scheduled.get(peer)) else {
            return;
        };
        match reply.result {
            Ok(PieceAnswer::Have {
                total,
                pieces,
                load,
                ahead,
            }) if total == self.total => {
                schedule.handle_load(peer, load);
                if self.streaming == Some(id) {
                    schedule.handle_stream(peer, pieces);
                } else if self.haves[id] != Have::All {
                    schedule.handle_have(peer, Have::from_prefix(total, pieces, &ahead));
                }
            }
            Ok(PieceAnswer::Missing) if self.haves[id] != Have::All => {
                schedule.handle_have(peer, Have::Pieces(Vec::new()));
            }
            _ => {}
        }
    }

    /// Files one reply with the schedule, keeping the bytes of a good piece and penalising
    /// a peer the schedule blames.
    fn file(&mut self, reply: PieceReply) {
        let now = self.now();
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
                match schedule.handle_piece(tag, answer, now) {
                    Filed::Accepted {
                        piece,
                        peer,
                        in_time,
                        ..
                    } => {
                        if in_time && let Some(memory) = self.network.stalls() {
                            memory.answered_in_time(&self.ids[self.scheduled[peer]]);
                        }
                        self.served_by.insert(piece, self.scheduled[peer]);
                        self.ready.put(piece, bytes.into_vec());
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
            Ok(PieceAnswer::Hashes(_) | PieceAnswer::Have { .. }) => schedule
                .handle_failure(tag, true)
                .map(|peer| (peer, "answered bytes with something else")),
            Ok(PieceAnswer::Missing) => {
                schedule.handle_missing(tag);
                None
            }
            Ok(PieceAnswer::Busy) => {
                schedule.handle_busy(tag, now);
                None
            }
            Ok(PieceAnswer::Elsewhere(ids)) => {
                // The named peers this fetch knows, by their index in the schedule.
                let named: Vec<usize> = ids
                    .iter()
                    .filter_map(|id| self.ids.iter().position(|known| known == id))
                    .filter_map(|i| self.scheduled.iter().position(|&s| s == i))
                    .collect();
                schedule.handle_elsewhere(tag, &named);
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

/// Whether a fetch of `total` bytes is long enough to look for more peers during it.
fn schedule_is_long(total: u64) -> bool {
    pyrsia_core::pieces::piece_count(total) > WINDOW as u64
}

/// A std duration as core's.
/// Core's instant `elapsed` after a search's start.
fn core_instant(elapsed: Duration) -> CoreInstant {
    CoreInstant::from_micros(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
}

/// Says who a search asks for a blob, and why.
fn log_try(digest: &Digest, peers: &[(String, Have)], asking: &Asking) {
    let first = &peers[0].0;
    let partial = peers.len() - 1;
    match asking {
        Asking::Holders => {
            tracing::debug!(%digest, holder = %first, partial, "asking the peers that hold the blob");
        }
        Asking::Claimant => {
            tracing::info!(%digest, peer = %first, partial, "a peer fetches this blob from the upstream for the network");
        }
        Asking::Bridge => {
            tracing::info!(%digest, relay = %first, "the blob's holder is reached only through a relay: that relay bridges it");
        }
        Asking::BridgeToClaimant => {
            tracing::info!(%digest, relay = %first, "a peer reached only through a relay fetches this blob for the network: that relay bridges it");
        }
        Asking::Following => {
            tracing::info!(%digest, holders = peers.len(), "following the peers that download this blob from a nearer node this node does not reach");
        }
    }
}

/// Core's duration as a std one.
fn std_duration(d: CoreDuration) -> Duration {
    Duration::from_micros(d.as_micros())
}

fn core_duration(d: Duration) -> CoreDuration {
    CoreDuration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Asks every provider at once what it holds of `digest`, waiting at most [`SURVEY_TIMEOUT`]:
/// `(peer, size, pieces held from the first, pieces held beyond)` for each that answered. A
/// provider that does not answer, or no longer holds the blob, is left out.
fn survey(
    network: &dyn PeerNetwork,
    digest: &Digest,
    providers: &[String],
) -> Vec<(String, u64, u32, Vec<u32>)> {
    let (sender, replies) = mpsc::channel();
    for (i, id) in providers.iter().enumerate() {
        let request = PieceRequest::about(*digest, Ask::Have);
        network.request_piece(id, request, IfMissing::Nothing, i as u64, sender.clone());
    }
    drop(sender);
    let deadline = Instant::now() + SURVEY_TIMEOUT;
    let mut held = Vec::new();
    let mut answered = vec![false; providers.len()];
    while answered.contains(&false) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(reply) = replies.recv_timeout(left) else {
            break;
        };
        if let Some(seen) = answered.get_mut(reply.tag as usize) {
            *seen = true;
        }
        if let (
            Ok(PieceAnswer::Have {
                total,
                pieces,
                ahead,
                ..
            }),
            Some(id),
        ) = (reply.result, providers.get(reply.tag as usize))
            && total > 0
        {
            held.push((id.clone(), total, pieces, ahead));
        }
    }
    for (id, _) in providers.iter().zip(&answered).filter(|(_, seen)| !**seen) {
        tracing::info!(%digest, peer = %id, "provider stalled: it did not say what it holds in time; not asked for pieces");
    }
    // Holders of every piece first (asked first for the first piece), then by what they hold.
    held.sort_by_key(|(_, total, pieces, ahead)| {
        std::cmp::Reverse((
            Have::from_prefix(*total, *pieces, ahead) == Have::All,
            *pieces,
        ))
    });
    held
}

/// The providers a fetch's lookup thread ([`rediscover`]) finds; dropping it stops the thread
/// at once (even mid-wait).
struct Rediscovery {
    /// Each look's providers.
    found: Receiver<Vec<String>>,
    /// Never sent on: its drop wakes the thread, which then ends.
    _stop: mpsc::Sender<()>,
}

/// Looks for the providers of `digest` on a thread of its own, after the waits core's
/// `rediscover_wait` says (nodes that start downloading it join the fetch), until the
/// returned [`Rediscovery`] is dropped.
fn rediscover(network: Arc<dyn PeerNetwork>, digest: Digest) -> Rediscovery {
    let (sender, found) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(format!("find-{}", &digest.hex().as_str()[..12]))
        .spawn(move || {
            for looks_done in 0u32.. {
                let wait = pyrsia_core::piece_schedule::rediscover_wait(looks_done);
                match stopped.recv_timeout(Duration::from_micros(wait.as_micros())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let providers = network.providers(&digest, LOOKUP_TIMEOUT);
                if sender.send(providers).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot look for more peers during a fetch");
    }
    Rediscovery { found, _stop: stop }
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

impl Drop for PieceFetcher {
    /// The fetch ends: the peers still late in it are remembered, so that the node's next
    /// fetches ask them only for what nobody else holds.
    fn drop(&mut self) {
        let (Some(schedule), Some(memory)) = (self.schedule.as_ref(), self.network.stalls()) else {
            return;
        };
        for index in schedule.late_peers() {
            let peer = &self.ids[self.scheduled[index]];
            let wait = memory.stalled(peer);
            tracing::info!(digest = %self.digest, %peer, ?wait, "this peer let a piece wait until late and sent none in time since: asked only for pieces nobody else holds for a while");
        }
    }
}

impl PieceFetcher {
    /// Waits until the piece at the read position is in hand, with bytes left to hand out;
    /// false at the blob's end.
    fn bytes_in_hand(&mut self) -> io::Result<bool> {
        loop {
            if self.current_at < self.current.len() {
                return Ok(true);
            }
            if self.position >= self.total {
                return Ok(false);
            }
            let piece = u32::try_from(self.position / u64::from(PIECE_LEN)).unwrap_or(u32::MAX);
            if let Some(bytes) = self.ready.take(piece) {
                if let Some(schedule) = self.schedule.as_mut() {
                    let delivered = schedule.take_deliverable();
                    debug_assert_eq!(delivered, Some(piece));
                }
                self.pump();
                // A read may start inside the piece (a resumed download).
                let skip = (self.position - u64::from(piece) * u64::from(PIECE_LEN)) as usize;
                crate::buffers::give_shared(std::mem::replace(&mut self.current, bytes));
                self.current_at = skip.min(self.current.len());
                continue;
            }
            self.fill();
            self.wait_one()?;
        }
    }

    /// The next bytes in order without copying them: the rest of the piece at the read
    /// position, as its buffer and the range of it to use; `None` at the blob's end. For a
    /// caller that can hand the buffer on (the download writes it to its temp file, which
    /// hashes it, and gives the buffer back for reuse).
    pub fn next_shared(&mut self) -> io::Result<Option<crate::buffers::SharedSlice>> {
        if !self.bytes_in_hand()? {
            return Ok(None);
        }
        let range = self.current_at..self.current.len();
        self.current_at = self.current.len();
        self.position += range.len() as u64;
        Ok(Some((self.current.clone(), range)))
    }
}

impl Read for PieceFetcher {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.bytes_in_hand()? {
            return Ok(0);
        }
        let n = buf.len().min(self.current.len() - self.current_at);
        buf[..n].copy_from_slice(&self.current[self.current_at..self.current_at + n]);
        self.current_at += n;
        self.position += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
