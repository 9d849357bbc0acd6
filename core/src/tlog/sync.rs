//! Catching up with a peer's log, as a sans-IO state machine: one fetch at a time, from the
//! peer whose checkpoint (announced, or answered to a pull) is ahead of this node's tree, in
//! batches of [`BATCH_ENTRIES`]; the newest checkpoint seen meanwhile waits its turn. A gap
//! longer than [`CATCH_UP_CHUNK`] is taken chunk by chunk, each stored once the peer's
//! consistency proof shows it a prefix of the checkpoint's tree.
//!
//! The runtime does what each [`SyncAction`] says (send a request and report its id with
//! [`LogSync::sent`]; store entries by the log's rules and report with [`LogSync::applied`]
//! or [`LogSync::prefix_applied`]) and feeds back answers, failures and the time. The rules of
//! blame are here: a checkpoint without its quorum, entries or a proof the log refuses, more
//! entries than asked, none at all, or an answer of the wrong kind strike the peer; a request
//! that failed, a fetch that got no answer within [`FETCH_DEADLINE`], or a failure to store
//! (a full disk) strike nobody.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Hash;
use super::checkpoint::SignedCheckpoint;
use super::state::{LogRejection, LogState};
use crate::time::{Duration, Instant};

/// The most entries one batch request asks for.
pub const BATCH_ENTRIES: u64 = 512;

/// The most entries a node holds in memory while catching up: a longer gap is taken in
/// prefixes of this many, each proven against the one signed checkpoint.
pub const CATCH_UP_CHUNK: u64 = 16_384;

/// How long a fetch may wait for one answer before it is given up (and the checkpoint that
/// waited meanwhile is fetched). The runtime's own request timeout is shorter; this is the
/// guarantee that no lost answer, or failure never reported, holds the one fetch slot (and
/// so the whole catch-up) forever.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(20);

/// What of the log's state a catch-up decides on; [`LogState`] is the real one.
pub trait LogView {
    /// Whether `note` is a checkpoint of this log with its epoch's quorum
    /// ([`LogState::check_note`]).
    fn check_note(&self, note: &SignedCheckpoint) -> Result<(), LogRejection>;
    /// The number of entries in the tree held (past the last final checkpoint while a
    /// catch-up's proven prefixes are stored).
    fn tree_size(&self) -> u64;
}

impl LogView for LogState {
    fn check_note(&self, note: &SignedCheckpoint) -> Result<(), LogRejection> {
        LogState::check_note(self, note)
    }

    fn tree_size(&self) -> u64 {
        self.tree().size()
    }
}

/// A request to a peer's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUpRequest {
    /// Final entries from `start`, at most `count` (the peer may send fewer).
    Entries {
        /// First index.
        start: u64,
        /// How many.
        count: u64,
    },
    /// The consistency proof from the tree of `from` entries to the tree of `to`.
    Consistency {
        /// The smaller tree's size.
        from: u64,
        /// The larger tree's size (the checkpoint's).
        to: u64,
    },
}

/// What the runtime must do next, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncAction<P> {
    /// Send this request to this peer, then report its id with [`LogSync::sent`].
    Request(P, CatchUpRequest),
    /// The peer sent something invalid: penalise it.
    Strike(P, String),
    /// Store `note` with the `entries` it lacks (none: the note only refreshes the one held),
    /// by the log's rules; report with [`LogSync::applied`].
    Apply {
        /// Who sent them (struck if the log refuses them).
        peer: P,
        /// The checkpoint.
        note: SignedCheckpoint,
        /// The entries from the tree's size up to the checkpoint's.
        entries: Vec<Vec<u8>>,
    },
    /// Store `entries` as a prefix of `note`'s tree, shown so by `proof`; report with
    /// [`LogSync::prefix_applied`].
    ApplyPrefix {
        /// Who sent them.
        peer: P,
        /// The checkpoint they lead to.
        note: SignedCheckpoint,
        /// The chunk's entries.
        entries: Vec<Vec<u8>>,
        /// The consistency proof from the tree with them to the checkpoint's.
        proof: Vec<Hash>,
    },
}

/// How storing what a [`SyncAction::Apply`] or [`SyncAction::ApplyPrefix`] carried went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored: the tree now holds this many entries.
    Grew(u64),
    /// Stored, and the log had them already (an older or the same checkpoint).
    Unchanged,
    /// The log's rules refuse them: the sender's fault.
    Refused(String),
    /// This node could not store them (its disk): nobody's fault; the fetch ends.
    LocalFailure(String),
}

/// Where the active fetch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase<R> {
    /// Entries asked for (the request's id once sent).
    Entries(Option<R>),
    /// The consistency proof of a full chunk asked for.
    Proof(Option<R>),
}

/// A catch-up with one peer's checkpoint: the entries of the current chunk (from `first`, at
/// most the chunk size), then, unless the chunk ends at the checkpoint, the consistency proof
/// that stores it as a prefix.
struct Fetch<P, R> {
    peer: P,
    note: SignedCheckpoint,
    first: u64,
    entries: Vec<Vec<u8>>,
    phase: Phase<R>,
    /// When the last request went out (or the fetch started).
    since: Instant,
}

impl<P, R> Fetch<P, R> {
    /// How many entries the current chunk has, in chunks of at most `limit`.
    fn chunk(&self, limit: u64) -> u64 {
        (self.note.checkpoint.size - self.first).min(limit)
    }

    fn awaits(&self, request: R) -> bool
    where
        R: PartialEq,
    {
        match &self.phase {
            Phase::Entries(r) | Phase::Proof(r) => r.as_ref() == Some(&request),
        }
    }
}

/// The catch-up state of one node. `P` names peers, `R` identifies requests (libp2p's
/// `OutboundRequestId` in the daemon).
pub struct LogSync<P, R> {
    chunk: u64,
    active: Option<Fetch<P, R>>,
    waiting: Option<(P, SignedCheckpoint)>,
    /// The latest time the runtime gave.
    now: Instant,
}

impl<P: Copy + PartialEq, R: Copy + PartialEq> Default for LogSync<P, R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Copy + PartialEq, R: Copy + PartialEq> LogSync<P, R> {
    /// No catch-up running.
    pub fn new() -> Self {
        Self::with_chunk(CATCH_UP_CHUNK)
    }

    /// With chunks of `chunk` entries (tests take short ones).
    pub fn with_chunk(chunk: u64) -> Self {
        LogSync {
            chunk: chunk.max(1),
            active: None,
            waiting: None,
            now: Instant::ZERO,
        }
    }

    /// Whether a fetch is running.
    pub fn is_fetching(&self) -> bool {
        self.active.is_some()
    }

    /// A checkpoint as it came off the wire from `peer` (gossip, or the answer to a pull) at
    /// `now`: bytes that are not UTF-8 or not a signed note strike the sender, like a note
    /// without its quorum; a note that parses goes on as [`LogSync::on_note`]. Call this rather
    /// than parsing in the runtime, so the rule of blame for malformed notes is this one.
    pub fn on_note_bytes(
        &mut self,
        log: &impl LogView,
        peer: P,
        bytes: &[u8],
        now: Instant,
    ) -> Vec<SyncAction<P>> {
        let parsed = core::str::from_utf8(bytes)
            .map_err(|_| "checkpoint is not text".to_string())
            .and_then(|text| {
                SignedCheckpoint::parse(text).map_err(|e| alloc::format!("checkpoint: {e}"))
            });
        match parsed {
            Ok(note) => self.on_note(log, peer, note, now),
            Err(why) => {
                self.now = self.now.max(now);
                alloc::vec![SyncAction::Strike(peer, why)]
            }
        }
    }

    /// A checkpoint announced by (or asked from) `peer` at `now`. Its quorum is checked first:
    /// a note that fails is the peer's fault, one of another log is not.
    pub fn on_note(
        &mut self,
        log: &impl LogView,
        peer: P,
        note: SignedCheckpoint,
        now: Instant,
    ) -> Vec<SyncAction<P>> {
        self.now = self.now.max(now);
        if let Err(e) = log.check_note(&note) {
            if !e.blames_sender() {
                return Vec::new();
            }
            return alloc::vec![SyncAction::Strike(peer, e.to_string())];
        }
        let have = log.tree_size();
        if note.checkpoint.size <= have {
            // Nothing to fetch: the log takes it as a refresh, or as stale.
            return alloc::vec![SyncAction::Apply {
                peer,
                note,
                entries: Vec::new(),
            }];
        }
        if let Some(active) = &self.active {
            // The newest waits; of two as new, one from another peer than the fetch running
            // (which may be the slow or lying one) rather than from that peer again.
            let better = self.waiting.as_ref().is_none_or(|(from, w)| {
                w.checkpoint.size < note.checkpoint.size
                    || (w.checkpoint.size == note.checkpoint.size
                        && *from == active.peer
                        && peer != active.peer)
            });
            if better {
                self.waiting = Some((peer, note));
            }
            return Vec::new();
        }
        self.active = Some(Fetch {
            peer,
            note,
            first: have,
            entries: Vec::new(),
            phase: Phase::Entries(None),
            since: now,
        });
        self.next_entries()
    }

    fn next_entries(&mut self) -> Vec<SyncAction<P>> {
        let Some(fetch) = &mut self.active else {
            return Vec::new();
        };
        let start = fetch.first + fetch.entries.len() as u64;
        let count = (fetch.chunk(self.chunk) - fetch.entries.len() as u64).min(BATCH_ENTRIES);
        fetch.phase = Phase::Entries(None);
        alloc::vec![SyncAction::Request(
            fetch.peer,
            CatchUpRequest::Entries { start, count }
        )]
    }

    /// The id of the request just sent for the active fetch, at `now`.
    pub fn sent(&mut self, request: R, now: Instant) {
        self.now = self.now.max(now);
        if let Some(fetch) = &mut self.active {
            match &mut fetch.phase {
                Phase::Entries(r) | Phase::Proof(r) => *r = Some(request),
            }
            fetch.since = now;
        }
    }

    /// Entries answered for `request`.
    pub fn on_entries(
        &mut self,
        log: &impl LogView,
        request: R,
        batch: Vec<Vec<u8>>,
    ) -> Vec<SyncAction<P>> {
        let Some(fetch) = self.active.as_mut().filter(|f| f.awaits(request)) else {
            return Vec::new();
        };
        if matches!(fetch.phase, Phase::Proof(_)) {
            return self.give_up(log, "answered a consistency-proof request with entries");
        }
        let asked = (fetch.chunk(self.chunk) - fetch.entries.len() as u64).min(BATCH_ENTRIES);
        if batch.is_empty() || batch.len() as u64 > asked {
            let why = alloc::format!("sent {} entries for {asked} asked", batch.len());
            return self.give_up(log, &why);
        }
        fetch.entries.extend(batch);
        let chunk = fetch.chunk(self.chunk);
        if (fetch.entries.len() as u64) < chunk {
            return self.next_entries();
        }
        if fetch.first + chunk < fetch.note.checkpoint.size {
            // A prefix of a long catch-up: stored once the peer proves it part of the tree.
            fetch.phase = Phase::Proof(None);
            let from = fetch.first + chunk;
            let to = fetch.note.checkpoint.size;
            return alloc::vec![SyncAction::Request(
                fetch.peer,
                CatchUpRequest::Consistency { from, to }
            )];
        }
        let Some(done) = self.active.take() else {
            return Vec::new();
        };
        alloc::vec![SyncAction::Apply {
            peer: done.peer,
            note: done.note,
            entries: done.entries,
        }]
    }

    /// The consistency proof answered for `request`: the chunk goes to the log as a prefix.
    pub fn on_consistency(
        &mut self,
        log: &impl LogView,
        request: R,
        proof: Vec<Hash>,
    ) -> Vec<SyncAction<P>> {
        let Some(fetch) = self.active.as_mut().filter(|f| f.awaits(request)) else {
            return Vec::new();
        };
        if matches!(fetch.phase, Phase::Entries(_)) {
            return self.give_up(log, "answered an entries request with a consistency proof");
        }
        alloc::vec![SyncAction::ApplyPrefix {
            peer: fetch.peer,
            note: fetch.note.clone(),
            entries: core::mem::take(&mut fetch.entries),
            proof,
        }]
    }

    /// How storing a [`SyncAction::ApplyPrefix`] went: the next chunk is asked for, or the
    /// fetch ends (struck when the log refused the chunk or its proof).
    pub fn prefix_applied(&mut self, log: &impl LogView, stored: Stored) -> Vec<SyncAction<P>> {
        let Some(fetch) = &mut self.active else {
            return Vec::new();
        };
        match stored {
            Stored::Grew(size) if size > fetch.first && size < fetch.note.checkpoint.size => {
                fetch.first = size;
                self.next_entries()
            }
            Stored::Refused(why) => self.give_up(log, &why),
            Stored::Grew(_) | Stored::Unchanged | Stored::LocalFailure(_) => {
                self.active = None;
                self.start_waiting(log)
            }
        }
    }

    /// How storing a [`SyncAction::Apply`] went: a refusal strikes its sender; then the
    /// checkpoint that waited is fetched.
    pub fn applied(&mut self, log: &impl LogView, peer: P, stored: Stored) -> Vec<SyncAction<P>> {
        let mut actions = Vec::new();
        if let Stored::Refused(why) = stored {
            actions.push(SyncAction::Strike(peer, why));
        }
        if self.active.is_none() {
            actions.extend(self.start_waiting(log));
        }
        actions
    }

    /// The request failed (timeout, connection lost, malformed answer): the fetch ends
    /// without blame and the checkpoint that waited is fetched.
    pub fn on_failure(&mut self, log: &impl LogView, request: R) -> Vec<SyncAction<P>> {
        if self.active.as_ref().is_some_and(|f| f.awaits(request)) {
            self.active = None;
            return self.start_waiting(log);
        }
        Vec::new()
    }

    /// The peer answered `request` with an answer of another kind (a checkpoint or a piece
    /// for an entries request): struck if it was the active fetch's request.
    pub fn on_wrong_answer(&mut self, log: &impl LogView, request: R) -> Vec<SyncAction<P>> {
        if self.active.as_ref().is_some_and(|f| f.awaits(request)) {
            return self.give_up(
                log,
                "answered a log-sync request with another kind of answer",
            );
        }
        Vec::new()
    }

    /// Call on every tick: a fetch whose answer is [`FETCH_DEADLINE`] late ends without blame.
    pub fn on_tick(&mut self, log: &impl LogView, now: Instant) -> Vec<SyncAction<P>> {
        self.now = self.now.max(now);
        let late = self
            .active
            .as_ref()
            .is_some_and(|f| now.saturating_since(f.since) >= FETCH_DEADLINE);
        if !late {
            return Vec::new();
        }
        self.active = None;
        self.start_waiting(log)
    }

    /// The peer of a fetch that [`LogSync::on_tick`] would end at `now`, if any (for the
    /// runtime's log line).
    pub fn late_peer(&self, now: Instant) -> Option<P> {
        self.active
            .as_ref()
            .filter(|f| now.saturating_since(f.since) >= FETCH_DEADLINE)
            .map(|f| f.peer)
    }

    /// Ends the active fetch with a strike for its peer, and starts the one that waited.
    fn give_up(&mut self, log: &impl LogView, why: &str) -> Vec<SyncAction<P>> {
        let Some(fetch) = self.active.take() else {
            return Vec::new();
        };
        let mut actions = alloc::vec![SyncAction::Strike(fetch.peer, why.to_string())];
        actions.extend(self.start_waiting(log));
        actions
    }

    fn start_waiting(&mut self, log: &impl LogView) -> Vec<SyncAction<P>> {
        match self.waiting.take() {
            // The latest time known; `sent` sets the request's own.
            Some((peer, note)) => self.on_note(log, peer, note, self.now),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
