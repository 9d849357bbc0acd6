//! Fetching a blob from other nodes: the providers of its digest (found by the P2P network)
//! each serve pieces of it; [`PieceFetcher`] asks several of them in parallel, a bounded window
//! of pieces at a time, re-requests a piece elsewhere when its peer fails, stalls or answers
//! badly, and yields the bytes in order as a [`Read`]. The flight that reads it hashes every
//! byte and stores nothing unless the whole blob matches its digest.
//!
//! The network itself is behind [`PeerNetwork`] so that the mirror needs no libp2p (the full
//! node's `pyrsia-net` implements it) and the scheduling is unit-tested without one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_core::pieces::piece_count;
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
/// Failures after which a peer is dropped from a download.
const MAX_FAILURES: u32 = 2;

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

struct Provider {
    id: String,
    in_flight: usize,
    failures: u32,
    dropped: bool,
}

struct InFlight {
    offset: u64,
    provider: usize,
    sent: Instant,
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

/// An in-order reader over a blob fetched in pieces from several peers.
pub struct PieceFetcher {
    network: Arc<dyn PeerNetwork>,
    digest: Digest,
    total: u64,
    providers: Vec<Provider>,
    /// Next offset never requested yet.
    next: u64,
    /// Offsets to request again (their peer failed).
    retry: VecDeque<u64>,
    in_flight: HashMap<u64, InFlight>,
    ready: BTreeMap<u64, Vec<u8>>,
    /// Offset of the next byte to hand out, and the piece being handed out.
    position: u64,
    current: Vec<u8>,
    current_at: usize,
    next_tag: u64,
    replies: Receiver<PieceReply>,
    sender: Sender<PieceReply>,
    /// Who served each piece (for blame when the whole blob does not match).
    served_by: BTreeMap<u64, usize>,
    hint: Option<FetchHint>,
    timeout: Duration,
    /// Every piece's leaf hash, checked against the committed piece root: each piece is
    /// checked on arrival, and a bad one costs its peer, not the blob.
    expected: Option<Vec<Hash>>,
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
        let fetcher = PieceFetcher {
            network,
            digest,
            total: 0,
            providers: providers
                .into_iter()
                .map(|id| Provider {
                    id,
                    in_flight: 0,
                    failures: 0,
                    dropped: false,
                })
                .collect(),
            next: offset,
            retry: VecDeque::new(),
            in_flight: HashMap::new(),
            ready: BTreeMap::new(),
            position: offset,
            current: Vec::new(),
            current_at: 0,
            next_tag: 0,
            replies,
            sender,
            served_by: BTreeMap::new(),
            hint,
            timeout,
            expected: None,
        };
        Some(fetcher)
    }

    /// The piece hash list from the first provider whose list hashes to `root`; providers
    /// with another list are penalised.
    fn hash_list(&mut self, root: Hash) -> Option<Vec<Hash>> {
        for i in 0..self.providers.len() {
            let tag = self.next_tag;
            self.next_tag += 1;
            let request = PieceRequest {
                digest: self.digest,
                offset: 0,
                len: 0,
                hashes: true,
            };
            let id = self.providers[i].id.clone();
            self.network
                .request_piece(&id, request, None, tag, self.sender.clone());
            let reply = loop {
                match self.replies.recv_timeout(self.timeout) {
                    Ok(reply) if reply.tag == tag => break Some(reply),
                    Ok(_) => continue,
                    Err(_) => break None,
                }
            };
            match reply.map(|r| r.result) {
                Some(Ok(PieceAnswer::Hashes(list)))
                    if pyrsia_core::pieces::piece_root(&list) == root =>
                {
                    return Some(list);
                }
                Some(Ok(PieceAnswer::Hashes(_))) => {
                    self.network
                        .penalise(&id, "piece hash list does not match the committed root");
                    self.providers[i].dropped = true;
                }
                _ => self.providers[i].dropped = true,
            }
        }
        None
    }

    /// Fetches the first piece, which tells the size; asks providers one by one until one
    /// has it.
    fn first_piece(mut self) -> PeerLookup {
        let offset = self.next;
        for i in 0..self.providers.len() {
            if self.providers[i].dropped {
                continue;
            }
            let len = self.piece_len(offset);
            self.send(i, offset, len);
            self.next = offset + u64::from(PIECE_LEN);
            match self.wait_one() {
                Ok(()) if !self.ready.is_empty() || self.total > 0 => {
                    if self.expected.is_none() && !self.size_confirmed(i) {
                        return PeerLookup::Disputed;
                    }
                    return PeerLookup::Found(self.total, Box::new(self));
                }
                _ => {
                    self.next = offset;
                    self.retry.clear();
                }
            }
        }
        PeerLookup::NotFound
    }

    /// Without a piece list nothing proves the size the first answer claimed, and every reader
    /// is told that size at once: so one more provider (if there is one) is asked for the
    /// first byte, and when the two disagree the peers are given up for this blob and nobody
    /// is blamed (either may be the liar). `first` is the provider that answered first.
    fn size_confirmed(&mut self, first: usize) -> bool {
        let Some(other) =
            (0..self.providers.len()).find(|&j| j != first && !self.providers[j].dropped)
        else {
            return true;
        };
        let tag = self.next_tag;
        self.next_tag += 1;
        let request = PieceRequest {
            digest: self.digest,
            offset: 0,
            len: 1,
            hashes: false,
        };
        let id = self.providers[other].id.clone();
        self.network
            .request_piece(&id, request, None, tag, self.sender.clone());
        let answer = loop {
            match self.replies.recv_timeout(self.timeout) {
                Ok(reply) if reply.tag == tag => break Some(reply.result),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        match answer {
            Some(Ok(PieceAnswer::Data { total, .. })) if total != self.total => {
                tracing::info!(digest = %self.digest, claimed = self.total, other = total, peer = %self.providers[first].id, other_peer = %id, "peers disagree on the blob's size; not fetching it from peers");
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
            .map(|&i| self.providers[i].id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn piece_len(&self, offset: u64) -> u32 {
        if self.total == 0 {
            return PIECE_LEN;
        }
        u32::try_from((self.total - offset).min(u64::from(PIECE_LEN))).unwrap_or(PIECE_LEN)
    }

    fn send(&mut self, provider: usize, offset: u64, len: u32) {
        // --max-download-rate: wait for the budget before the request leaves, so that the
        // wait is never taken for the peer's slowness.
        let wait = self.network.download_delay(u64::from(len));
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.providers[provider].in_flight += 1;
        self.in_flight.insert(
            tag,
            InFlight {
                offset,
                provider,
                sent: Instant::now(),
            },
        );
        let request = PieceRequest {
            digest: self.digest,
            offset,
            len,
            hashes: false,
        };
        self.network.request_piece(
            &self.providers[provider].id,
            request,
            self.hint.as_ref(),
            tag,
            self.sender.clone(),
        );
    }

    /// Requests pieces until the window is full or nothing is left to ask.
    fn fill(&mut self) {
        while self.in_flight.len() + self.ready.len() < WINDOW {
            let offset = match self.retry.front() {
                Some(&o) => o,
                None if self.next < self.total => self.next,
                None => return,
            };
            let Some(provider) = self
                .providers
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.dropped && p.in_flight < PER_PEER)
                .min_by_key(|(_, p)| (p.in_flight, p.failures))
                .map(|(i, _)| i)
            else {
                return;
            };
            if self.retry.pop_front().is_none() {
                self.next += u64::from(PIECE_LEN);
            }
            let len = self.piece_len(offset);
            self.send(provider, offset, len);
        }
    }

    fn fail(&mut self, provider: usize, offset: u64, why: &str, penalise: bool) {
        let p = &mut self.providers[provider];
        p.failures += 1;
        if penalise {
            self.network.penalise(&p.id, why);
        }
        if p.failures >= MAX_FAILURES || penalise {
            p.dropped = true;
        }
        tracing::info!(peer = %p.id, digest = %self.digest, offset, why, "piece failed; asking another peer");
        self.retry.push_back(offset);
    }

    /// Waits for one reply (or a stall) and files it.
    fn wait_one(&mut self) -> io::Result<()> {
        if self.providers.iter().all(|p| p.dropped) {
            return Err(io::Error::other("no peer could deliver the blob"));
        }
        match self.replies.recv_timeout(self.timeout) {
            Ok(reply) => {
                let Some(request) = self.in_flight.remove(&reply.tag) else {
                    return Ok(());
                };
                let provider = request.provider;
                self.providers[provider].in_flight -= 1;
                match reply.result {
                    Ok(PieceAnswer::Data { total, bytes }) => {
                        // The first answer sets the size, unless it contradicts the piece list.
                        let plausible = self
                            .expected
                            .as_ref()
                            .is_none_or(|list| list.len() as u64 == piece_count(total));
                        if self.total == 0 && total > request.offset && plausible {
                            self.total = total;
                        }
                        let expected = self.piece_len(request.offset) as usize;
                        let index = (request.offset / u64::from(PIECE_LEN)) as usize;
                        let listed = self.expected.as_ref().map(|list| {
                            list.len() as u64 == piece_count(total)
                                && list.get(index) == Some(&leaf_hash(&bytes))
                        });
                        if total != self.total {
                            // Only a piece list proves which size is right; without one this
                            // peer is not used further but not blamed either.
                            let proven = pyrsia_core::pieces::size_contradiction_proven(
                                self.expected.is_some(),
                            );
                            self.fail(provider, request.offset, "claims another blob size", proven);
                            self.providers[provider].dropped = true;
                        } else if bytes.len() != expected {
                            self.fail(provider, request.offset, "piece of the wrong size", true);
                        } else if listed == Some(false) {
                            self.fail(
                                provider,
                                request.offset,
                                "piece does not match its hash",
                                true,
                            );
                        } else {
                            self.served_by.insert(request.offset, provider);
                            self.ready.insert(request.offset, bytes);
                        }
                    }
                    Ok(PieceAnswer::Hashes(_)) => {
                        self.fail(provider, request.offset, "answered bytes with hashes", true);
                    }
                    Ok(PieceAnswer::Missing) => {
                        self.providers[provider].dropped = true;
                        self.retry.push_back(request.offset);
                    }
                    Err(why) => self.fail(provider, request.offset, &why, false),
                }
                Ok(())
            }
            Err(RecvTimeoutError::Timeout) => {
                let stalled: Vec<u64> = self
                    .in_flight
                    .iter()
                    .filter(|(_, r)| r.sent.elapsed() >= self.timeout)
                    .map(|(&tag, _)| tag)
                    .collect();
                for tag in stalled {
                    if let Some(request) = self.in_flight.remove(&tag) {
                        self.providers[request.provider].in_flight -= 1;
                        self.providers[request.provider].dropped = true;
                        self.fail(request.provider, request.offset, "stalled", false);
                    }
                }
                Ok(())
            }
            Err(RecvTimeoutError::Disconnected) => Err(io::Error::other("network gone")),
        }
    }
}

impl Read for PieceFetcher {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current_at < self.current.len() {
                let n = buf.len().min(self.current.len() - self.current_at);
                buf[..n].copy_from_slice(&self.current[self.current_at..self.current_at + n]);
                self.current_at += n;
                return Ok(n);
            }
            if self.position >= self.total {
                return Ok(0);
            }
            if let Some(bytes) = self.ready.remove(&self.position) {
                self.position += bytes.len() as u64;
                self.current = bytes;
                self.current_at = 0;
                continue;
            }
            self.fill();
            self.wait_one()?;
        }
    }
}

#[cfg(test)]
mod tests;
