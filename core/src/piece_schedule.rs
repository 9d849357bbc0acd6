//! The piece scheduler: which piece of a blob to ask of which peer, what an answer is worth,
//! when a peer is given up, whom to blame, and in what order pieces are handed out. Sans-IO:
//! the runtime sends the [`PieceRequest`]s it is given, reports each answer, failure and the
//! time, and reads pieces in order as [`PieceSchedule::take_deliverable`] releases them; the
//! simulation drives the same state machine.
//!
//! - **Choice.** Within a horizon ahead of the read position, the piece the least busy free
//!   peer holds (busy: this fetch's requests in flight to it plus the answers it says it is
//!   preparing for anyone, [`PieceSchedule::handle_load`]), then the rarest among the peers;
//!   ties go to the lowest index (what a streaming reader needs first) when every peer holds
//!   them, and to a random one of them when only some do. Among the peers holding it, the
//!   least busy, then the fewest failures, then one of those at random. The node fetching
//!   from the upstream for everyone comes after any other free holder, whatever the loads
//!   say: it is asked for what nobody else holds yet, and nodes downloading alongside serve
//!   the rest.
//! - **Sent elsewhere.** A node that sent a piece to [`recent_sends::COPIES_BEFORE_REDIRECT`]
//!   peers lately names them instead of sending it again (super-seeding,
//!   [`recent_sends`]); the asker takes them to hold it, asks them, and asks for that piece
//!   insisting from then on ([`PieceSchedule::handle_elsewhere`]), which is always served.
//!   The source's upload then stays near one copy of the blob however many nodes pull it.
//! - **Streaming holders.** The node fetching from the upstream for everyone answers every
//!   piece, but only once its bytes arrive, in order ([`PieceSchedule::handle_stream`]):
//!   pieces some peer holds now come first, and of those that wait for its upstream, the
//!   next to arrive (never a random one further on, which would hold a pipeline slot while
//!   the reader starves).
//! - **Peers join.** Nodes that start downloading the blob during the fetch are added
//!   ([`PieceSchedule::add_peer`]) and the peers are asked in turn what they hold and how
//!   busy they are, a bounded round of them at a time ([`PieceSchedule::have_polls`]), so a
//!   node's questions do not grow with the swarm; a peer holding some pieces that answers
//!   `Missing` is only not asked for that piece again until it says it holds it.
//! - **Busy peers.** A node takes [`ANSWERS_AT_ONCE`] piece requests at a time and answers
//!   busy beyond ([`serves_now`]); the asker asks another holder for the piece and leaves the
//!   busy one alone for [`ScheduleConfig::busy_backoff`] ([`PieceSchedule::handle_busy`]).
//!   The node fetching a fresh blob for the network is then not queued on by every node that
//!   wants it: it feeds a few, and they feed the rest.
//! - **Pipelines.** Each peer is asked for [`ScheduleConfig::per_peer`] pieces at once at
//!   first; a peer that answers a piece while its pipeline is full gets one more (up to
//!   [`ScheduleConfig::max_per_peer`]), so its pipeline doubles each round trip while it keeps
//!   up and settles at about its bandwidth × round trip (slow start); busy answers and
//!   failures halve it. The pieces in flight or waiting to be read are at most the peers'
//!   pipelines together, between [`ScheduleConfig::window`] and
//!   [`ScheduleConfig::max_window`] (the memory bound); the piece at the read position is
//!   asked for even when the window is full, so pieces in out of order never starve it.
//! - **Checks.** An answer must claim the blob's size, have the piece's length and, when the
//!   blob's piece hash list is known (checked against the committed root), hash to its leaf.
//!   A wrong length or hash blames the peer; a different size blames it only when a piece
//!   list proves the size ([`crate::pieces::size_contradiction_proven`]).
//! - **Failures.** A peer that answers `Missing` or stalls past the timeout is not asked
//!   again; a transport error counts a failure (after [`MAX_FAILURES`] the peer is dropped);
//!   none of these blames it. Every failed piece is asked again first.
//! - **Late pieces.** The piece holding the reader up that waited past what this fetch's
//!   answers say is late (their smoothed time and four deviations, a quarter of a second at
//!   least, a quarter of the timeout at most: [`answer_times`]) is also asked of another
//!   holder, and its peer is marked slow: from then on it is asked only for pieces no other
//!   usable peer holds, until it answers one in time. A peer that stalls costs the reader
//!   that wait, not the timeout. The node remembers the peers still slow when a fetch ends
//!   ([`PieceSchedule::late_peers`], [`StalledPeers`]) and marks them slow from the start of
//!   its next fetches ([`PieceSchedule::handle_slow`]), so a staller costs it that wait once.
//! - **Endgame.** When every piece left is in flight, a piece that has waited a quarter of
//!   the timeout (a slow peer) is also asked of an idle peer that holds it; the first good
//!   answer wins and the other request is cancelled. Waiting that long first keeps a fast
//!   transfer from fetching its last pieces twice.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::pieces::{PIECE_LEN, piece_count, size_contradiction_proven};
use crate::rng::Rng;
use crate::strikes::Strikes;
use crate::time::{Duration, Instant};
use crate::tlog::Hash;

pub mod answer_times;
pub mod handshake;
pub mod recent_sends;

use answer_times::AnswerTimes;

/// How long a peer that stalled a fetch (one of its [`PieceSchedule::late_peers`], or silent
/// in its [`handshake`]: [`handshake::remembered_after`]) is marked
/// slow in the node's next fetches ([`StalledPeers`]), the first time; each further stall in
/// a row doubles it.
pub const STALL_REMEMBERED: Duration = Duration::from_secs(60);
/// The longest a stalled peer is remembered as slow.
pub const STALL_REMEMBERED_LONGEST: Duration = Duration::from_secs(30 * 60);

/// The peers that stalled one of this node's fetches lately (`K` names a peer): each fetch
/// marks them slow at its start ([`PieceSchedule::handle_slow`]), so a peer that says it holds
/// pieces and never sends them costs the node one late piece, not one per fetch. The runtime
/// strikes a fetch's [`PieceSchedule::late_peers`] when the fetch ends and forgets a peer
/// once it answers a piece in time ([`Filed::Accepted`]'s `in_time`).
pub type StalledPeers<K> = Strikes<K>;

/// An empty [`StalledPeers`] with the node's waits ([`STALL_REMEMBERED`], doubling up to
/// [`STALL_REMEMBERED_LONGEST`]).
pub fn stalled_peers<K: Ord + Clone>() -> StalledPeers<K> {
    Strikes::new(STALL_REMEMBERED, STALL_REMEMBERED_LONGEST)
}

/// The longest a piece waits before it is late, for a fetch whose requests time out after
/// `timeout`: a quarter of it. The endgame asks a second peer after this long, a late piece
/// is never waited for longer ([`answer_times`]), and each holder but the last gets this long
/// before the schedule starts ([`handshake`]).
pub fn longest_late_wait(timeout: Duration) -> Duration {
    Duration::from_micros(timeout.as_micros() / 4)
}

/// A request given up at the timeout ([`PieceSchedule::handle_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled {
    /// The request's tag.
    pub tag: u64,
    /// Its peer, by index (no longer asked in this fetch).
    pub peer: usize,
}

/// Failures (errors, not `Missing` or stalls) after which a peer is no longer asked.
pub const MAX_FAILURES: u32 = 2;

/// How much the scheduler keeps in flight, and how long it waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Pieces in flight or waiting to be read, in all, at least (when the peers' pipelines
    /// together are smaller).
    pub window: usize,
    /// Pieces in flight or waiting to be read, in all, at most: bounds the memory a fetch
    /// holds.
    pub max_window: usize,
    /// Pieces in flight per peer at first.
    pub per_peer: usize,
    /// Pieces in flight per peer at most, however well it keeps up.
    pub max_per_peer: usize,
    /// How long a request may stay unanswered before its peer is given up.
    pub timeout: Duration,
    /// How often some peers are asked what they hold now and how busy they are (a peer
    /// still downloading holds more each time): one round of polls per this interval.
    pub have_poll: Duration,
    /// The most peers asked in one round of polls ([`PieceSchedule::have_polls`]): those
    /// asked longest ago. Bounds what polling costs a node, and a network, as the peers of a
    /// fetch grow (every node downloading the blob joins it).
    pub polls_per_round: usize,
    /// How long a peer that answered [`PieceSchedule::handle_busy`] is left alone: its
    /// upload is full, so the piece goes to another holder, or back to it after this.
    pub busy_backoff: Duration,
}

/// Piece answers a node prepares or sends at once, to anyone; a request beyond is answered
/// "busy" at once instead of waiting in a queue ([`serves_now`]). A queue at the node
/// fetching a fresh blob for the network (at first the only holder of its newest pieces)
/// grows with every node that wants the blob and makes every one of them wait on its
/// uplink; a busy answer sends the asker to the nodes that already received those pieces,
/// so the claimant's upload feeds a few nodes and they feed the rest (the swarm).
pub const ANSWERS_AT_ONCE: usize = 8;

/// Pieces a node's download keeps in flight or waiting to be read when its peers' pipelines
/// are short ([`ScheduleConfig::window`]).
pub const WINDOW: usize = 8;
/// Pieces a node's download keeps in flight or waiting to be read, at most
/// ([`ScheduleConfig::max_window`]): bounds its memory (a piece is 1 MiB).
pub const MAX_WINDOW: usize = 32;
/// Pieces a node's download asks of one peer at once at first ([`ScheduleConfig::per_peer`]).
pub const PER_PEER: usize = 3;
/// Pieces a node's download asks of one peer at once at most
/// ([`ScheduleConfig::max_per_peer`]): what a peer takes at once ([`ANSWERS_AT_ONCE`]), so
/// that one asker alone is never answered busy (8 MiB in flight: a 1 Gbit/s link at 65 ms
/// round trip).
pub const MAX_PER_PEER: usize = ANSWERS_AT_ONCE;

/// Peers asked what they hold in one round of polls by default
/// ([`ScheduleConfig::polls_per_round`]). Each question is a request and an answer on a
/// stream of its own, roughly half a millisecond of CPU at both ends together on the
/// benchmark machine (from the CPU two 16-node swarms took with 14,000 and with 3,000 of
/// them). With every peer asked every round, a swarm of 16 nodes asked 14,000 beside 4,000
/// piece requests, and the questions grow with the square of the nodes (each node asks every
/// other). Four a round keep what each of 16 peers holds at most a second old.
pub const POLLS_PER_ROUND: usize = 4;

/// How long an asker leaves a peer that answered busy alone by default
/// ([`ScheduleConfig::busy_backoff`]): about the time that peer takes to send a piece or two.
pub const BUSY_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two looks for more providers during a download
/// ([`rediscover_wait`]).
pub const REDISCOVER_MAX: Duration = Duration::from_secs(8);

/// How long a download waits before its look number `looks_done + 1` for more providers of
/// the blob (nodes that started fetching it since; they serve what they hold): 250 ms first
/// (nodes that start together announce within a moment), then 1 s, doubling up to
/// [`REDISCOVER_MAX`]. Each look is a DHT lookup that every peer asked answers by walking its
/// routing table; looking every second from every downloading node cost a 16-node swarm
/// about 2% of its CPU in those walks alone (BENCHMARKS.md), for peers that, arriving late,
/// hold little the early ones lack (and find the early ones with their own first look).
pub fn rediscover_wait(looks_done: u32) -> Duration {
    match looks_done {
        0 => Duration::from_millis(250),
        n => Duration::from_secs(1)
            .saturating_mul(1u64 << (n - 1).min(3))
            .min(REDISCOVER_MAX),
    }
}

/// Whether a node answering `in_progress` piece requests now takes one more (else it
/// answers busy): the one rule for the node and the simulation.
pub fn serves_now(in_progress: usize) -> bool {
    in_progress < ANSWERS_AT_ONCE
}

/// Whether a node answering `in_progress` piece requests now takes one more that insists on
/// a piece it sent to `sent_lately` peers lately ([`recent_sends::RecentSends::sent_lately`]).
/// Once it sent the piece as often as the super-seeding rule allows, an insisting request
/// (an asker whose named holders lacked the piece when asked: they are still receiving it)
/// gets only half the answer slots; beyond, it is answered busy, the asker waits
/// [`BUSY_BACKOFF`] and by then the holders it was named have the piece. The other half stays
/// for pieces nobody else holds yet.
pub fn serves_insisting_now(in_progress: usize, sent_lately: usize) -> bool {
    if sent_lately >= recent_sends::COPIES_BEFORE_REDIRECT {
        in_progress < ANSWERS_AT_ONCE / 2
    } else {
        serves_now(in_progress)
    }
}

/// What a peer holds of the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Have {
    /// Every piece (a peer that stores the blob, or fetches it for the network).
    All,
    /// These pieces, by index.
    Pieces(Vec<bool>),
}

impl Have {
    /// What a peer holds of a blob `total` bytes long when it says it holds its first
    /// `pieces` pieces and the pieces `ahead` (its answer to `Have`): [`Have::All`] when that
    /// covers every piece. Indices past the blob are ignored.
    pub fn from_prefix(total: u64, pieces: u32, ahead: &[u32]) -> Have {
        let count = piece_count(total);
        if u64::from(pieces) >= count {
            return Have::All;
        }
        let mut bits: Vec<bool> = (0..count).map(|i| i < u64::from(pieces)).collect();
        for &piece in ahead {
            if let Some(bit) = bits.get_mut(piece as usize) {
                *bit = true;
            }
        }
        if bits.iter().all(|b| *b) {
            Have::All
        } else {
            Have::Pieces(bits)
        }
    }

    /// Whether the peer holds `piece`: what a fetch asks before it asks that peer for it.
    pub fn has(&self, piece: u32) -> bool {
        match self {
            Have::All => true,
            Have::Pieces(bits) => bits.get(piece as usize).copied().unwrap_or(false),
        }
    }
}

/// How long a fetch that follows peers downloading the blob (the node fetching it for the
/// network is out of its reach) waits for them to get a piece it lacks
/// ([`PieceSchedule::with_growing_holders`]).
pub const FOLLOW_PATIENCE: Duration = Duration::from_secs(10);

/// Why an answer was refused, and whether its peer is to blame for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// In words, for the log and the penalty.
    pub why: &'static str,
    /// Whether the answer proves the peer lied (then it is penalised).
    pub blame: bool,
}

/// What a peer claiming another blob size is told (and logged as).
const WRONG_SIZE_CLAIM: &str = "claims another blob size";

/// What is wrong with `answer` for `piece`, if anything: it must claim the blob's size
/// (`known`; before the size is known, one the piece reaches into and the piece list, if any,
/// agrees with), have the piece's length for that size and, when the piece hash list is
/// known, hash to the piece's leaf. A wrong length or hash blames the peer; a wrong size only
/// when a piece list proves it ([`size_contradiction_proven`]). The one rule for every piece
/// answer: the schedule's, and the runtime's for the first piece, which tells the size.
pub fn answer_fault(
    piece: u32,
    known: Option<u64>,
    answer: &PieceAnswer,
    expected: Option<&[Hash]>,
) -> Option<Fault> {
    let offset = u64::from(piece) * u64::from(PIECE_LEN);
    let size_wrong = match known {
        Some(total) => answer.total != total,
        None => answer.total <= offset,
    } || expected
        .is_some_and(|list| list.len() as u64 != piece_count(answer.total));
    if size_wrong {
        return Some(Fault {
            why: WRONG_SIZE_CLAIM,
            blame: size_contradiction_proven(expected.is_some()),
        });
    }
    if answer.len != (answer.total - offset).min(u64::from(PIECE_LEN)) {
        return Some(Fault {
            why: "piece of the wrong size",
            blame: true,
        });
    }
    if expected.is_some_and(|list| list.get(piece as usize) != Some(&answer.leaf)) {
        return Some(Fault {
            why: "piece does not match its hash",
            blame: true,
        });
    }
    None
}

/// A request for the runtime to send: `piece` of the blob from peer number `peer` (an index
/// into the peers the schedule was made with), answered under `tag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceRequest {
    /// The peer, by index.
    pub peer: usize,
    /// The piece, by index.
    pub piece: u32,
    /// Byte offset of the piece.
    pub offset: u64,
    /// Its length in bytes.
    pub len: u32,
    /// What the answer will be filed under.
    pub tag: u64,
    /// Whether the peer must send the bytes even if it sent this piece to others lately
    /// (else it may name them instead: [`recent_sends`]). Set once a peer has sent this
    /// fetch elsewhere for the piece ([`PieceSchedule::handle_elsewhere`]).
    pub insist: bool,
}

/// What an answer told about the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceAnswer {
    /// The blob size the peer claims.
    pub total: u64,
    /// The bytes it sent.
    pub len: u64,
    /// Their leaf hash (`SHA-256(0x00 ‖ bytes)`).
    pub leaf: Hash,
}

/// How an answer was filed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filed {
    /// The piece is good: keep its bytes under this index; requests for it to other peers
    /// (endgame) are cancelled: drop their answers.
    Accepted {
        /// The piece.
        piece: u32,
        /// The peer that served it, by index.
        peer: usize,
        /// Tags of the duplicate requests now cancelled.
        cancelled: Vec<u64>,
        /// Whether it came before the piece would have been late ([`answer_times`]): a peer
        /// the node remembers as stalled is forgotten then.
        in_time: bool,
    },
    /// Drop the bytes (and blame the peer if `blame` says why).
    Rejected {
        /// The peer, by index.
        peer: usize,
        /// Why the peer is to be penalised, if it is.
        blame: Option<&'static str>,
    },
    /// A tag the schedule does not know (cancelled, or a duplicate of a piece already in):
    /// drop the bytes, blame nobody.
    Unknown,
}

#[derive(Clone, Debug)]
struct Peer {
    have: Have,
    in_flight: usize,
    failures: u32,
    dropped: bool,
    /// The answers the peer said it was preparing for anyone when it last told
    /// ([`PieceSchedule::handle_load`]): a busy peer is asked after an idle one.
    load: u32,
    /// When the peer was last asked what it holds ([`PieceSchedule::have_polls`]).
    polled: Option<Instant>,
    /// For a peer that serves every piece but receives them itself in order (the node
    /// fetching the blob from the upstream for the network): how many pieces from the first
    /// it has in now ([`PieceSchedule::handle_stream`]). Pieces past that wait for its
    /// upstream.
    arrived: Option<u32>,
    /// Until when the peer is left alone: it answered busy ([`PieceSchedule::handle_busy`]).
    resting_until: Option<Instant>,
    /// How many pieces it is asked for at once now (grows while it keeps up).
    pipeline: usize,
    /// Whether its pipeline was full after the last request to it: only then does an
    /// answer grow it (a peer the schedule had nothing more for proved nothing).
    filled: bool,
    /// Asked only for pieces no other usable peer holds: it let a piece wait until it was
    /// late in this fetch, or stalled a fetch lately ([`PieceSchedule::handle_slow`]). An
    /// answer in time clears it.
    slow: Option<Slow>,
}

/// Why a peer is slow in a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    /// The node remembers it stalling a fetch lately ([`PieceSchedule::handle_slow`]).
    Remembered,
    /// In this fetch, it let the piece holding the reader up wait until it was late, or a
    /// request run to the timeout ([`PieceSchedule::late_peers`]).
    Late,
}

impl Peer {
    /// How busy the peer is: this fetch's requests in flight to it plus the answers it said
    /// it is preparing for others.
    fn busy(&self) -> u64 {
        self.in_flight as u64 + u64::from(self.load)
    }

    fn new(have: Have, pipeline: usize) -> Peer {
        Peer {
            have,
            in_flight: 0,
            failures: 0,
            dropped: false,
            load: 0,
            polled: None,
            arrived: None,
            resting_until: None,
            pipeline,
            filled: false,
            slow: None,
        }
    }

    /// Whether the peer is left alone at `now` (it answered busy lately).
    fn resting(&self, now: Instant) -> bool {
        self.resting_until.is_some_and(|until| now < until)
    }

    /// Whether the peer fetches the blob from the upstream for the network
    /// ([`PieceSchedule::handle_stream`]): it is asked after any other free holder, so
    /// that its upload goes to what nobody else holds yet.
    fn is_source(&self) -> bool {
        self.arrived.is_some()
    }

    /// How long `piece` would wait at this peer: 0 when it holds it now, else how far the
    /// piece is past what has arrived at a streaming peer.
    fn wait_for(&self, piece: u32) -> u32 {
        match self.arrived {
            Some(arrived) if piece >= arrived => piece - arrived + 1,
            _ => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Wanted,
    InFlight,
    Done,
}

#[derive(Clone, Copy, Debug)]
struct Flight {
    piece: u32,
    peer: usize,
    sent: Instant,
    insist: bool,
}

/// The schedule of one blob's fetch from peers.
#[derive(Clone, Debug)]
pub struct PieceSchedule {
    total: u64,
    config: ScheduleConfig,
    peers: Vec<Peer>,
    pieces: Vec<State>,
    /// Pieces to ask again first (their peer failed).
    retry: VecDeque<u32>,
    flights: BTreeMap<u64, Flight>,
    /// The next piece to hand out.
    deliver: u32,
    next_tag: u64,
    /// The blob's piece hash list, when known.
    expected: Option<Vec<Hash>>,
    /// Breaks ties between equally good peers and first pieces.
    rng: Rng,
    /// The time of the last [`PieceSchedule::next_requests`]: peers resting then are not
    /// chosen.
    now: Instant,
    /// With growing holders ([`PieceSchedule::with_growing_holders`]): how long a stuck
    /// fetch waits for a new piece.
    growing: Option<Duration>,
    /// Since when the fetch has been stuck, and how many pieces were in then.
    stuck_since: Option<(Instant, usize)>,
    /// When the last round of polls went out ([`PieceSchedule::have_polls`]).
    polled_round: Option<Instant>,
    /// Pieces a peer has sent elsewhere ([`PieceSchedule::handle_elsewhere`]): asked for
    /// insisting from then on.
    redirected: Vec<bool>,
    /// How long good answers took so far: when the piece holding the reader up is late.
    answer_times: AnswerTimes,
}

impl PieceSchedule {
    /// A schedule for a blob of `total` bytes read from piece `first` on, from `peers` (each
    /// with what it holds), checking pieces against `expected` when the piece hash list is
    /// known.
    pub fn new(
        total: u64,
        first: u32,
        peers: Vec<Have>,
        expected: Option<Vec<Hash>>,
        config: ScheduleConfig,
    ) -> PieceSchedule {
        let count = usize::try_from(piece_count(total)).unwrap_or(usize::MAX);
        let mut pieces = alloc::vec![State::Wanted; count];
        for state in pieces.iter_mut().take(first as usize) {
            *state = State::Done;
        }
        PieceSchedule {
            total,
            config,
            peers: peers
                .into_iter()
                .map(|have| Peer::new(have, config.per_peer))
                .collect(),
            pieces,
            retry: VecDeque::new(),
            flights: BTreeMap::new(),
            deliver: first,
            next_tag: 0,
            expected,
            rng: Rng::seed_from_u64(0),
            now: Instant::from_millis(0),
            growing: None,
            stuck_since: None,
            polled_round: None,
            redirected: alloc::vec![false; count],
            answer_times: AnswerTimes::default(),
        }
    }

    /// The peers are downloading the blob themselves, with no peer fetching it for them in
    /// this schedule (a fetch that follows them because the node fetching it for the network
    /// is out of its reach): a piece none holds yet may still come, as they poll in.
    /// [`PieceSchedule::gives_up`] then waits `patience` without a new piece.
    pub fn with_growing_holders(mut self, patience: Duration) -> PieceSchedule {
        self.growing = Some(patience);
        self
    }

    /// Whether the fetch gives up at `now`: it [is stuck](PieceSchedule::is_stuck) and, with
    /// growing holders, has been for their patience with no new piece in. Call it before
    /// waiting for the next answer.
    pub fn gives_up(&mut self, now: Instant) -> bool {
        if !self.is_stuck() {
            self.stuck_since = None;
            return false;
        }
        let Some(patience) = self.growing else {
            return true;
        };
        let done = self.pieces.iter().filter(|s| **s == State::Done).count();
        match self.stuck_since {
            Some((since, seen)) if seen == done => now.saturating_since(since) >= patience,
            _ => {
                self.stuck_since = Some((now, done));
                false
            }
        }
    }

    /// Seeds the tie-breaks (the runtime passes randomness; the simulation its seed), so that
    /// nodes starting together spread their first pieces and their asking.
    pub fn with_seed(mut self, seed: u64) -> PieceSchedule {
        self.rng = Rng::seed_from_u64(seed);
        self
    }

    /// The blob's size.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Pieces in the blob.
    pub fn piece_count(&self) -> u32 {
        u32::try_from(self.pieces.len()).unwrap_or(u32::MAX)
    }

    /// The length of `piece` (the last one may be shorter).
    pub fn piece_len(&self, piece: u32) -> u32 {
        let offset = u64::from(piece) * u64::from(PIECE_LEN);
        let left = self.total.saturating_sub(offset);
        u32::try_from(left.min(u64::from(PIECE_LEN))).unwrap_or(PIECE_LEN)
    }

    /// A piece that arrived outside the schedule (the first one, fetched to learn the size):
    /// counted as in, to be read in turn.
    pub fn accept_outside(&mut self, piece: u32) {
        if let Some(state) = self.pieces.get_mut(piece as usize) {
            *state = State::Done;
        }
    }

    /// What `peer` holds now (a peer announcing pieces as it verifies them).
    pub fn handle_have(&mut self, peer: usize, have: Have) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.have = have;
        }
    }

    /// How many answers `peer` said it is preparing (for anyone): peers with spare upload are
    /// asked first.
    pub fn handle_load(&mut self, peer: usize, load: u32) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.load = load;
        }
    }

    /// `peer` serves every piece but receives them itself in order, and has the first
    /// `arrived` now (the node fetching the blob from the upstream for the network, which
    /// answers a piece once its bytes arrive): the pieces it is asked for beyond what it has
    /// are the next to arrive, in order, and pieces other peers hold now are asked of them
    /// first. Call when the peer is taken on and whenever it tells what it has.
    pub fn handle_stream(&mut self, peer: usize, arrived: u32) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.arrived = Some(arrived);
        }
    }

    /// `peer` stalled one of this node's fetches lately ([`StalledPeers`]): it is asked only
    /// for pieces no other usable peer holds, until it answers one in time.
    pub fn handle_slow(&mut self, peer: usize) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.slow = Some(Slow::Remembered);
        }
    }

    /// The peers that, in this fetch, let a piece wait until it was late (the piece holding
    /// the reader up, or a request run to the timeout) and answered no piece in time since:
    /// call when the fetch ends, and remember them in the node's [`StalledPeers`]. A peer that
    /// is only remembered from an earlier fetch is not among them (it may never have been
    /// asked).
    pub fn late_peers(&self) -> Vec<usize> {
        (0..self.peers.len())
            .filter(|&i| self.peers[i].slow == Some(Slow::Late))
            .collect()
    }

    /// A peer found during the fetch (a node that started downloading the blob since):
    /// returns its index for [`PieceRequest::peer`] and the `handle_*` calls.
    pub fn add_peer(&mut self, have: Have) -> usize {
        self.peers.push(Peer::new(have, self.config.per_peer));
        self.peers.len() - 1
    }

    /// The peers to ask now, at `now`, what they hold and how busy they are: one round every
    /// [`ScheduleConfig::have_poll`] while pieces are missing, of at most
    /// [`ScheduleConfig::polls_per_round`] peers still asked, those never asked first, then
    /// those asked longest ago (so every peer in turn). Their answers go to
    /// [`PieceSchedule::handle_have`] (a peer still downloading: what it holds grows) and
    /// [`PieceSchedule::handle_load`].
    pub fn have_polls(&mut self, now: Instant) -> Vec<usize> {
        let round_due = self
            .polled_round
            .is_none_or(|at| now.saturating_since(at) >= self.config.have_poll);
        if self.is_complete() || !round_due {
            return Vec::new();
        }
        let mut due: Vec<usize> = (0..self.peers.len())
            .filter(|&i| !self.peers[i].dropped)
            .collect();
        // `None` (never asked) sorts first; the index keeps the order stable.
        due.sort_by_key(|&i| (self.peers[i].polled, i));
        due.truncate(self.config.polls_per_round.max(1));
        if !due.is_empty() {
            self.polled_round = Some(now);
        }
        for &i in &due {
            self.peers[i].polled = Some(now);
        }
        due
    }

    /// The requests to send now: as many as the window and the peers' pipelines allow.
    pub fn next_requests(&mut self, now: Instant) -> Vec<PieceRequest> {
        self.now = now;
        let mut out = Vec::new();
        while self.flights.len() + self.waiting() < self.window() {
            let Some((piece, peer)) = self.choose() else {
                break;
            };
            out.push(self.send(now, piece, peer));
        }
        // The piece at the read position is always asked for, window or not: pieces in but
        // not yet read (out of order) must never starve the one the reader waits on.
        let next = self.deliver;
        if self.pieces.get(next as usize) == Some(&State::Wanted)
            && let Some(peer) = self.free_peer(next)
        {
            self.retry.retain(|&p| p != next);
            out.push(self.send(now, next, peer));
        }
        out.extend(self.hedge(now));
        out.extend(self.endgame(now));
        out
    }

    /// Request `tag` actually left at `now` (the runtime waited for its download budget
    /// first): its timeout counts from then, so a local wait is never the peer's slowness.
    pub fn sent(&mut self, tag: u64, now: Instant) {
        if let Some(flight) = self.flights.get_mut(&tag) {
            flight.sent = now;
        }
    }

    /// Files the answer to `tag`, which came at `now`.
    pub fn handle_piece(&mut self, tag: u64, answer: PieceAnswer, now: Instant) -> Filed {
        let Some(flight) = self.flights.remove(&tag) else {
            return Filed::Unknown;
        };
        let was_full = self.peers[flight.peer].filled;
        self.landed(flight.peer);
        let piece = flight.piece;
        if self.pieces[piece as usize] == State::Done {
            return Filed::Unknown;
        }
        let fault = answer_fault(piece, Some(self.total), &answer, self.expected.as_deref());
        let blame = if let Some(fault) = fault {
            if fault.why == WRONG_SIZE_CLAIM {
                // Only a piece list proves which size is right: without one the peer is not
                // used further but not blamed either.
                self.peers[flight.peer].dropped = true;
            }
            fault.blame.then_some(fault.why)
        } else {
            self.pieces[piece as usize] = State::Done;
            let took = now.saturating_since(flight.sent);
            let in_time = took < self.hedge_after();
            self.answer_times.record(took);
            if in_time {
                self.peers[flight.peer].slow = None;
            }
            // Its pipeline was full when last asked and it answers: one more in flight to it
            // (slow start: doubles per round trip while it keeps up).
            if was_full {
                let p = &mut self.peers[flight.peer];
                p.pipeline = (p.pipeline + 1).min(self.config.max_per_peer.max(p.pipeline));
            }
            let cancelled: Vec<u64> = self
                .flights
                .iter()
                .filter(|(_, f)| f.piece == piece)
                .map(|(tag, _)| *tag)
                .collect();
            for tag in &cancelled {
                if let Some(f) = self.flights.remove(tag) {
                    self.landed(f.peer);
                }
            }
            return Filed::Accepted {
                piece,
                peer: flight.peer,
                cancelled,
                in_time,
            };
        };
        self.failed(flight.peer, piece, blame.is_some());
        Filed::Rejected {
            peer: flight.peer,
            blame,
        }
    }

    /// The peer of `tag` does not have the piece: the piece is asked again elsewhere. A peer
    /// said to hold every piece is not asked again; one holding some is not asked for this
    /// piece until it says it holds it ([`PieceSchedule::handle_have`]).
    pub fn handle_missing(&mut self, tag: u64) {
        if let Some(flight) = self.flights.remove(&tag) {
            self.landed(flight.peer);
            let peer = &mut self.peers[flight.peer];
            match &mut peer.have {
                Have::All => peer.dropped = true,
                Have::Pieces(bits) => {
                    if let Some(bit) = bits.get_mut(flight.piece as usize) {
                        *bit = false;
                    }
                }
            }
            self.again(flight.piece);
        }
    }

    /// The peer of `tag` answered busy: its upload is full ([`serves_now`]). Neither a fault
    /// nor a sign it lacks the piece: the piece is asked again first, of another holder, and
    /// the peer is left alone for [`ScheduleConfig::busy_backoff`] from `now`.
    pub fn handle_busy(&mut self, tag: u64, now: Instant) {
        if let Some(flight) = self.flights.remove(&tag) {
            self.landed(flight.peer);
            let until = now.checked_add(self.config.busy_backoff);
            self.peers[flight.peer].resting_until = until;
            self.shrink(flight.peer);
            self.again(flight.piece);
        }
    }

    /// The peer of `tag` sent this fetch elsewhere for the piece: it sent the piece to the
    /// peers `named` (indices of the ones this schedule knows; others are left out) lately
    /// and keeps its upload for pieces nobody else holds yet ([`recent_sends`]). Neither a
    /// fault nor busy: the named peers are taken to hold the piece and asked first, and the
    /// piece is asked for insisting from now on (of them, or of the same peer again when
    /// none of them can be asked), so a redirect costs one round trip at most. A peer that
    /// sends an insisting request elsewhere is treated as lacking the piece
    /// ([`PieceSchedule::handle_missing`]).
    pub fn handle_elsewhere(&mut self, tag: u64, named: &[usize]) {
        let Some(flight) = self.flights.get(&tag).copied() else {
            return;
        };
        if flight.insist {
            self.handle_missing(tag);
            return;
        }
        self.flights.remove(&tag);
        self.landed(flight.peer);
        self.redirected[flight.piece as usize] = true;
        for &peer in named.iter().filter(|&&p| p != flight.peer) {
            self.handle_holds(peer, flight.piece);
        }
        self.again(flight.piece);
    }

    /// `peer` holds `piece` now (another peer said it sent it there): asked for it like any
    /// holder. Nothing changes for a peer holding every piece, or one not in this schedule.
    pub fn handle_holds(&mut self, peer: usize, piece: u32) {
        let count = self.pieces.len();
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if let Have::Pieces(bits) = &mut p.have
            && (piece as usize) < count
        {
            if bits.len() < count {
                bits.resize(count, false);
            }
            bits[piece as usize] = true;
        }
    }

    /// The request `tag` failed in transport (or was answered with something other than
    /// bytes, when `blame` says so).
    pub fn handle_failure(&mut self, tag: u64, blame: bool) -> Option<usize> {
        let flight = self.flights.remove(&tag)?;
        self.landed(flight.peer);
        self.failed(flight.peer, flight.piece, blame);
        Some(flight.peer)
    }

    /// Gives up the requests older than the timeout at `now`: their peers are not asked
    /// again (not blamed: a slow peer costs time, not trust); the pieces are asked elsewhere.
    /// Returns the requests given up, with their peers (for the node's [`StalledPeers`]).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Stalled> {
        self.now = self.now.max(now);
        let stalled: Vec<Stalled> = self
            .flights
            .iter()
            .filter(|(_, f)| now.saturating_since(f.sent) >= self.config.timeout)
            .map(|(&tag, f)| Stalled { tag, peer: f.peer })
            .collect();
        for stall in &stalled {
            if let Some(flight) = self.flights.remove(&stall.tag) {
                self.landed(flight.peer);
                let peer = &mut self.peers[flight.peer];
                peer.dropped = true;
                peer.slow = Some(Slow::Late);
                self.again(flight.piece);
            }
        }
        stalled
    }

    /// When the runtime must call again with the time: the oldest request's timeout, or, in
    /// the endgame, when it becomes slow enough to be asked elsewhere too; or when a peer
    /// holding some pieces is due to be asked what it holds ([`PieceSchedule::have_polls`]).
    pub fn next_deadline(&self) -> Option<Instant> {
        let after = if self.in_endgame() {
            self.endgame_after()
        } else {
            self.config.timeout
        };
        let request = self
            .flights
            .values()
            .map(|f| f.sent)
            .min()
            .and_then(|oldest| oldest.checked_add(after));
        let poll = self
            .polled_round
            .filter(|_| !self.is_complete() && self.peers.iter().any(|p| !p.dropped))
            .and_then(|at| at.checked_add(self.config.have_poll));
        // A peer that answered busy may be asked again when its rest ends.
        let rest = self
            .peers
            .iter()
            .filter(|p| !p.dropped && !self.is_complete())
            .filter_map(|p| p.resting_until)
            .filter(|&until| until > self.now)
            .min();
        // The piece holding the reader up becomes late (a hedge that could not be sent at
        // the last call waits for the next reason to call).
        let late = self
            .head_flight()
            .and_then(|f| f.sent.checked_add(self.hedge_after()))
            .filter(|&at| at > self.now);
        [request, poll, rest, late].into_iter().flatten().min()
    }

    /// How long the piece holding the reader up waits before it is late ([`answer_times`]):
    /// at most the endgame's wait.
    fn hedge_after(&self) -> Duration {
        self.answer_times.hedge_after(self.endgame_after())
    }

    /// The one request out for the piece at the read position (`None` when it is not in
    /// flight, or asked of two peers already).
    fn head_flight(&self) -> Option<Flight> {
        let piece = self.deliver;
        if self.pieces.get(piece as usize) != Some(&State::InFlight) {
            return None;
        }
        let mut asked = self.flights.values().filter(|f| f.piece == piece);
        let first = *asked.next()?;
        asked.next().is_none().then_some(first)
    }

    /// The piece holding the reader up, once late, asked of a second holder; its peer is
    /// marked slow (unless it is the source, whose pieces wait for the upstream). The first
    /// good answer wins and the other request is cancelled.
    fn hedge(&mut self, now: Instant) -> Option<PieceRequest> {
        let first = self.head_flight()?;
        if now.saturating_since(first.sent) < self.hedge_after() {
            return None;
        }
        if !self.peers[first.peer].is_source() {
            self.peers[first.peer].slow = Some(Slow::Late);
        }
        let peer = self.free_peer_except(first.piece, Some(first.peer))?;
        Some(self.send(now, first.piece, peer))
    }

    fn in_endgame(&self) -> bool {
        !self.pieces.contains(&State::Wanted)
    }

    /// How long a request waits before the endgame duplicates it (and the most a piece
    /// waits before it is late).
    fn endgame_after(&self) -> Duration {
        longest_late_wait(self.config.timeout)
    }

    /// The next piece to read, in order, once it is in; the caller reads its bytes.
    pub fn take_deliverable(&mut self) -> Option<u32> {
        let piece = self.deliver;
        (self.pieces.get(piece as usize) == Some(&State::Done)).then(|| {
            self.deliver += 1;
            piece
        })
    }

    /// Whether every piece has been handed out.
    pub fn is_complete(&self) -> bool {
        self.deliver as usize >= self.pieces.len()
    }

    /// Whether the fetch cannot go on: pieces are missing and no usable peer holds them.
    pub fn is_stuck(&self) -> bool {
        !self.is_complete()
            && self.flights.is_empty()
            && self
                .pieces
                .iter()
                .enumerate()
                .filter(|(_, s)| **s != State::Done)
                .all(|(i, _)| !self.usable_holder(i as u32))
    }

    /// Whether any peer is still asked.
    pub fn has_peers(&self) -> bool {
        self.peers.iter().any(|p| !p.dropped)
    }

    fn usable_holder(&self, piece: u32) -> bool {
        self.peers.iter().any(|p| !p.dropped && p.have.has(piece))
    }

    /// Pieces in but not yet read.
    fn waiting(&self) -> usize {
        self.pieces
            .iter()
            .skip(self.deliver as usize)
            .filter(|s| **s == State::Done)
            .count()
    }

    /// The next (piece, peer) to ask: retries first; then, within the horizon ahead of the
    /// read position, the rarest piece among the peers that a free peer holds — ties go to
    /// the lowest index (what a streaming reader needs first) when every peer holds them,
    /// and to a random one of them when only some do (so that a crowd starting together asks
    /// for different pieces and has something to trade).
    fn choose(&mut self) -> Option<(u32, usize)> {
        for i in 0..self.retry.len() {
            let piece = self.retry[i];
            if self.pieces[piece as usize] != State::Wanted {
                continue;
            }
            if let Some(peer) = self.free_peer(piece) {
                self.retry.remove(i);
                return Some((piece, peer));
            }
        }
        let horizon = (self.deliver as usize + self.window().max(1) * 4).min(self.pieces.len());
        let mut rarest: Vec<u32> = Vec::new();
        let mut best = (u32::MAX, true, u64::MAX, usize::MAX);
        let mut fewest = usize::MAX;
        for i in self.deliver as usize..horizon {
            let piece = i as u32;
            if self.pieces[i] != State::Wanted || self.retry.contains(&piece) {
                continue;
            }
            // The best peer free to send it: a piece a peer other than the source can send
            // comes first, then one an idle peer can send before one only a busy peer holds
            // (the node fetching from the upstream for everyone is kept for what nobody else
            // holds: those downloading alongside take its load).
            let Some((source, busy)) = self
                .peers
                .iter()
                .filter(|p| self.is_free_holder(p, piece))
                .map(|p| (p.is_source(), p.busy()))
                .min()
            else {
                continue;
            };
            // A piece some free peer holds now before one that waits for a streaming peer's
            // upstream; of those, the next to arrive.
            let wait = self
                .peers
                .iter()
                .filter(|p| self.is_free_holder(p, piece))
                .map(|p| p.wait_for(piece))
                .min()
                .unwrap_or(0);
            let holders = self
                .peers
                .iter()
                .filter(|p| !p.dropped && p.have.has(piece))
                .count();
            let key = (wait, source, busy, holders);
            if key < best {
                best = key;
                fewest = holders;
                rarest.clear();
            }
            if key == best {
                rarest.push(piece);
            }
        }
        // Among pieces only some peers hold, a random one of the rarest: nodes starting
        // together then ask for different pieces and have something to trade.
        let usable = self.peers.iter().filter(|p| !p.dropped).count();
        let piece = match rarest.len() {
            0 => return None,
            n if fewest < usable && best.0 == 0 => rarest[self.rng.below(n as u64) as usize],
            _ => rarest[0],
        };
        self.free_peer(piece).map(|peer| (piece, peer))
    }

    fn is_free_holder(&self, p: &Peer, piece: u32) -> bool {
        !p.dropped
            && p.in_flight < p.pipeline
            && p.have.has(piece)
            && !p.resting(self.now)
            && (p.slow.is_none() || self.only_slow_peers_hold(piece))
    }

    /// Whether every usable peer holding `piece` is slow: only then are slow peers asked.
    fn only_slow_peers_hold(&self, piece: u32) -> bool {
        !self
            .peers
            .iter()
            .any(|p| !p.dropped && p.slow.is_none() && p.have.has(piece))
    }

    /// The peer to ask for `piece`: holding it, not dropped, with room in its pipeline; not
    /// the source when another can send it now; the least busy (this fetch's requests in
    /// flight to it plus the answers it said it is preparing for others), then the least
    /// failed, then any of those at random (so that peers whose loads look alike share the
    /// asking).
    fn free_peer(&mut self, piece: u32) -> Option<usize> {
        self.free_peer_except(piece, None)
    }

    /// [`Self::free_peer`], never `except` (the peer already asked for the piece).
    fn free_peer_except(&mut self, piece: u32, except: Option<usize>) -> Option<usize> {
        let usable = |(i, p): &(usize, &Peer)| Some(*i) != except && self.is_free_holder(p, piece);
        let rank = |p: &Peer| (p.wait_for(piece), p.is_source(), p.busy(), p.failures);
        let best = self
            .peers
            .iter()
            .enumerate()
            .filter(usable)
            .map(|(_, p)| rank(p))
            .min()?;
        let ties: Vec<usize> = self
            .peers
            .iter()
            .enumerate()
            .filter(|e| usable(e) && rank(e.1) == best)
            .map(|(i, _)| i)
            .collect();
        Some(ties[self.rng.below(ties.len() as u64) as usize])
    }

    /// Endgame: nothing wanted is left, so idle peers duplicate the oldest pieces in flight
    /// that they hold and have not been asked for.
    fn endgame(&mut self, now: Instant) -> Vec<PieceRequest> {
        if !self.in_endgame() {
            return Vec::new();
        }
        let slow = self.endgame_after();
        let mut oldest: Vec<(Instant, u32)> = self
            .flights
            .values()
            .filter(|f| now.saturating_since(f.sent) >= slow)
            .map(|f| (f.sent, f.piece))
            .collect();
        oldest.sort();
        oldest.dedup_by_key(|(_, piece)| *piece);
        let mut out = Vec::new();
        for (_, piece) in oldest {
            let asked: Vec<usize> = self
                .flights
                .values()
                .filter(|f| f.piece == piece)
                .map(|f| f.peer)
                .collect();
            if asked.len() > 1 {
                continue;
            }
            let idle = self
                .peers
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    !p.dropped
                        && p.in_flight == 0
                        && p.have.has(piece)
                        && !p.resting(now)
                        && (p.slow.is_none() || self.only_slow_peers_hold(piece))
                        && !asked.contains(i)
                })
                .map(|(i, _)| i)
                .next();
            if let Some(peer) = idle {
                out.push(self.send(now, piece, peer));
            }
        }
        out
    }

    fn send(&mut self, now: Instant, piece: u32, peer: usize) -> PieceRequest {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pieces[piece as usize] = State::InFlight;
        let insist = self.redirected[piece as usize];
        let p = &mut self.peers[peer];
        p.in_flight += 1;
        p.filled = p.in_flight >= p.pipeline;
        self.flights.insert(
            tag,
            Flight {
                piece,
                peer,
                sent: now,
                insist,
            },
        );
        PieceRequest {
            peer,
            piece,
            offset: u64::from(piece) * u64::from(PIECE_LEN),
            len: self.piece_len(piece),
            tag,
            insist,
        }
    }

    fn landed(&mut self, peer: usize) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
    }

    /// The peers' pipelines together, within the configured window's bounds.
    fn window(&self) -> usize {
        let pipelines: usize = self
            .peers
            .iter()
            .filter(|p| !p.dropped)
            .map(|p| p.pipeline)
            .sum();
        pipelines
            .min(self.config.max_window)
            .max(self.config.window)
    }

    /// `peer` could not keep up (busy, or a failure): its pipeline halves, down to the
    /// configured start.
    fn shrink(&mut self, peer: usize) {
        let start = self.config.per_peer;
        let p = &mut self.peers[peer];
        p.pipeline = (p.pipeline / 2).max(start);
        // Answers to what was asked before do not grow it back.
        p.filled = false;
    }

    /// `piece` failed at `peer`: counted (a blamed peer is dropped at once), asked again.
    fn failed(&mut self, peer: usize, piece: u32, blamed: bool) {
        self.shrink(peer);
        let p = &mut self.peers[peer];
        p.failures += 1;
        if p.failures >= MAX_FAILURES || blamed {
            p.dropped = true;
        }
        self.again(piece);
    }

    /// `piece` is wanted again, first, unless another request for it is still in flight.
    fn again(&mut self, piece: u32) {
        let still_asked = self.flights.values().any(|f| f.piece == piece);
        if self.pieces[piece as usize] == State::InFlight && !still_asked {
            self.pieces[piece as usize] = State::Wanted;
            self.retry.push_back(piece);
        }
    }
}

#[cfg(test)]
mod late_tests;
#[cfg(test)]
mod tests;
