//! Catching up with a peer's log: one fetch at a time, in batches, from the peer that
//! announced the newest checkpoint; the newest announcement seen meanwhile waits its turn. A
//! gap longer than [`CATCH_UP_CHUNK`] is taken chunk by chunk, each stored once the peer's
//! consistency proof shows it a prefix of the checkpoint's tree.
//! Whatever arrives goes through [`Log::apply_checkpoint`]; a peer whose checkpoint or entries
//! are refused gets a strike.

use std::sync::Arc;

use libp2p::PeerId;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_std::log::follow::{BATCH_ENTRIES, CATCH_UP_CHUNK};
use pyrsia_std::log::{Applied, Log};

use crate::codec::SyncRequest;

/// What the event loop must do after the sync state changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send this request to this peer and report its id with [`LogSync::sent`].
    Request(PeerId, SyncRequest),
    /// The peer sent something invalid: penalise it.
    Strike(PeerId, String),
    /// Nothing to do.
    None,
}

/// A catch-up with one peer's checkpoint: the entries of the current chunk (from `first`, at
/// most [`CATCH_UP_CHUNK`]), then, unless the chunk ends at the checkpoint, the consistency
/// proof that stores it as a prefix.
struct Fetch<R> {
    peer: PeerId,
    note: SignedCheckpoint,
    first: u64,
    entries: Vec<Vec<u8>>,
    request: Option<R>,
    awaiting_proof: bool,
}

impl<R> Fetch<R> {
    /// How many entries the current chunk has, in chunks of at most `limit`.
    fn chunk(&self, limit: u64) -> u64 {
        (self.note.checkpoint.size - self.first).min(limit)
    }
}

/// The sync state; `R` identifies requests (libp2p's `OutboundRequestId`).
pub(crate) struct LogSync<R> {
    log: Arc<Log>,
    /// Entries per chunk ([`CATCH_UP_CHUNK`]).
    chunk: u64,
    active: Option<Fetch<R>>,
    waiting: Option<(PeerId, SignedCheckpoint)>,
}

impl<R: Copy + PartialEq> LogSync<R> {
    pub(crate) fn new(log: Arc<Log>) -> Self {
        LogSync {
            log,
            chunk: CATCH_UP_CHUNK,
            active: None,
            waiting: None,
        }
    }

    /// A checkpoint announced by (or asked from) `peer`. Its quorum is checked first: a note
    /// that fails is the peer's fault.
    pub(crate) fn on_note(&mut self, peer: PeerId, note: SignedCheckpoint) -> Action {
        if let Err(e) = self.log.check_note(&note) {
            if !e.blames_sender() {
                tracing::debug!(%peer, error = %e, "peer's checkpoint is not for this log");
                return Action::None;
            }
            return Action::Strike(peer, e.to_string());
        }
        let Some((first, _)) = self.log.missing_for(&note) else {
            return match self.log.apply_checkpoint(&note, &[]) {
                Ok(_) => Action::None,
                Err(e) => Action::Strike(peer, e.to_string()),
            };
        };
        if self.active.is_some() {
            let newer = self
                .waiting
                .as_ref()
                .is_none_or(|(_, w)| w.checkpoint.size < note.checkpoint.size);
            if newer {
                self.waiting = Some((peer, note));
            }
            return Action::None;
        }
        self.active = Some(Fetch {
            peer,
            note,
            first,
            entries: Vec::new(),
            request: None,
            awaiting_proof: false,
        });
        self.next_request()
    }

    fn next_request(&mut self) -> Action {
        let Some(fetch) = &self.active else {
            return Action::None;
        };
        let start = fetch.first + fetch.entries.len() as u64;
        let count = (fetch.chunk(self.chunk) - fetch.entries.len() as u64).min(BATCH_ENTRIES);
        Action::Request(fetch.peer, SyncRequest::Entries { start, count })
    }

    /// The id of the request just sent for the active fetch.
    pub(crate) fn sent(&mut self, request: R) {
        if let Some(fetch) = &mut self.active {
            fetch.request = Some(request);
        }
    }

    /// Entries answered for `request`.
    pub(crate) fn on_entries(&mut self, request: R, batch: Vec<Vec<u8>>) -> Vec<Action> {
        let Some(fetch) = self
            .active
            .as_mut()
            .filter(|f| f.request == Some(request) && !f.awaiting_proof)
        else {
            return vec![];
        };
        let asked = (fetch.chunk(self.chunk) - fetch.entries.len() as u64).min(BATCH_ENTRIES);
        if batch.is_empty() || batch.len() as u64 > asked {
            let peer = fetch.peer;
            self.active = None;
            return vec![
                Action::Strike(
                    peer,
                    format!("sent {} entries for {asked} asked", batch.len()),
                ),
                self.start_waiting(),
            ];
        }
        fetch.entries.extend(batch);
        if (fetch.entries.len() as u64) < fetch.chunk(self.chunk) {
            return vec![self.next_request()];
        }
        if fetch.first + fetch.chunk(self.chunk) < fetch.note.checkpoint.size {
            // A prefix of a long catch-up: stored once the peer proves it part of the tree.
            fetch.awaiting_proof = true;
            let from = fetch.first + fetch.chunk(self.chunk);
            let to = fetch.note.checkpoint.size;
            return vec![Action::Request(
                fetch.peer,
                SyncRequest::Consistency { from, to },
            )];
        }
        let Some(done) = self.active.take() else {
            return vec![];
        };
        let mut actions = Vec::new();
        match self.log.apply_checkpoint(&done.note, &done.entries) {
            Ok(Applied::Extended(size)) => {
                tracing::info!(peer = %done.peer, size, "log extended from a peer's checkpoint");
            }
            Ok(_) => {}
            Err(e) => actions.push(Action::Strike(done.peer, e.to_string())),
        }
        actions.push(self.start_waiting());
        actions
    }

    /// The consistency proof answered for `request`: the chunk is stored as a prefix of the
    /// checkpoint's tree, and the next chunk asked for; entries the proof does not hold up
    /// strike the peer.
    pub(crate) fn on_consistency(&mut self, request: R, proof: Vec<[u8; 32]>) -> Vec<Action> {
        let Some(fetch) = self
            .active
            .as_mut()
            .filter(|f| f.request == Some(request) && f.awaiting_proof)
        else {
            return vec![];
        };
        let entries = std::mem::take(&mut fetch.entries);
        fetch.awaiting_proof = false;
        match self.log.apply_prefix(&fetch.note, &entries, &proof) {
            Ok(size) => {
                tracing::info!(peer = %fetch.peer, size, of = fetch.note.checkpoint.size, "catching up with a peer's log");
                fetch.first = size;
                vec![self.next_request()]
            }
            Err(e) => {
                let peer = fetch.peer;
                self.active = None;
                vec![Action::Strike(peer, e.to_string()), self.start_waiting()]
            }
        }
    }

    /// The request failed (timeout, connection lost, malformed answer).
    pub(crate) fn on_failure(&mut self, request: R) -> Action {
        if self
            .active
            .as_ref()
            .is_some_and(|f| f.request == Some(request))
        {
            self.active = None;
            return self.start_waiting();
        }
        Action::None
    }

    fn start_waiting(&mut self) -> Action {
        match self.waiting.take() {
            Some((peer, note)) => self.on_note(peer, note),
            None => Action::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::digest::Digest;
    use pyrsia_core::identity::SecretKey;
    use pyrsia_std::log::DockerCommit;

    const NOW: u64 = 1_795_694_400;

    fn leader_and_follower(dir: &std::path::Path) -> (Log, Arc<Log>) {
        let leader = Log::open(&dir.join("a"), SecretKey::from_seed([1; 32]), None, NOW).unwrap();
        leader
            .commit_docker(
                &DockerCommit {
                    name: "docker.io/library/x",
                    manifest: Digest::sha256(b"m"),
                    outputs: vec![Digest::sha256(b"l")],
                    piece_roots: Vec::new(),
                    tag: Some("v1"),
                    source: "http://127.0.0.1:1",
                },
                NOW,
            )
            .unwrap();
        let follower = Log::open(
            &dir.join("b"),
            SecretKey::from_seed([2; 32]),
            Some(leader.genesis()),
            NOW,
        )
        .unwrap();
        (leader, Arc::new(follower))
    }

    #[test]
    fn fetches_in_batches_and_strikes_peers_that_lie() {
        let dir = tempfile::tempdir().unwrap();
        let (leader, follower) = leader_and_follower(dir.path());
        let peer = PeerId::random();
        let mut sync: LogSync<u64> = LogSync::new(follower.clone());

        // A note signed by a non-member: the announcer is struck, nothing is fetched.
        let note = leader.checkpoint().unwrap();
        let mut forged = SignedCheckpoint::unsigned(note.checkpoint.clone());
        forged
            .add(note.checkpoint.sign(&SecretKey::from_seed([9; 32])))
            .unwrap();
        assert!(matches!(sync.on_note(peer, forged), Action::Strike(p, _) if p == peer));

        // The real one: the missing entries are asked for.
        assert_eq!(
            sync.on_note(peer, note.clone()),
            Action::Request(peer, SyncRequest::Entries { start: 0, count: 4 })
        );
        sync.sent(1);
        // An answer to another request is ignored; too many entries is a strike.
        assert!(sync.on_entries(7, vec![vec![1]]).is_empty());
        let too_many = vec![vec![0u8]; 5];
        assert!(matches!(sync.on_entries(1, too_many)[0], Action::Strike(p, _) if p == peer));

        // Again, with entries altered in flight: refused by the log, struck, nothing stored.
        assert!(matches!(
            sync.on_note(peer, note.clone()),
            Action::Request(..)
        ));
        sync.sent(2);
        let mut entries = leader.entries(0, 4, usize::MAX);
        entries[2][5] ^= 1;
        assert!(matches!(sync.on_entries(2, entries)[0], Action::Strike(..)));
        assert_eq!(follower.size(), 0);

        // A stalled request frees the slot for the next announcement.
        assert!(matches!(
            sync.on_note(peer, note.clone()),
            Action::Request(..)
        ));
        sync.sent(3);
        assert_eq!(sync.on_failure(3), Action::None);

        // Honest entries in two batches (the peer may send fewer than asked).
        assert!(matches!(
            sync.on_note(peer, note.clone()),
            Action::Request(..)
        ));
        sync.sent(4);
        let entries = leader.entries(0, 4, usize::MAX);
        assert_eq!(
            sync.on_entries(4, entries[..1].to_vec()),
            vec![Action::Request(
                peer,
                SyncRequest::Entries { start: 1, count: 3 }
            )]
        );
        sync.sent(5);
        assert_eq!(
            sync.on_entries(5, entries[1..].to_vec()),
            vec![Action::None]
        );
        assert_eq!(follower.checkpoint(), Some(note));
    }

    #[test]
    fn a_long_gap_is_taken_in_chunks_each_proven_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (leader, follower) = leader_and_follower(dir.path());
        for i in 0..3 {
            let name = format!("docker.io/library/y{i}");
            leader
                .commit_docker(
                    &DockerCommit {
                        name: &name,
                        manifest: Digest::sha256(name.as_bytes()),
                        outputs: Vec::new(),
                        piece_roots: Vec::new(),
                        tag: None,
                        source: "http://127.0.0.1:1",
                    },
                    NOW + 1 + i,
                )
                .unwrap();
        }
        let note = leader.checkpoint().unwrap();
        let size = note.checkpoint.size;
        assert!(size > 6);
        let peer = PeerId::random();
        let mut sync: LogSync<u64> = LogSync::new(follower.clone());
        sync.chunk = 3;

        // A proof that does not hold: the peer is struck, nothing becomes final.
        assert_eq!(
            sync.on_note(peer, note.clone()),
            Action::Request(peer, SyncRequest::Entries { start: 0, count: 3 })
        );
        sync.sent(1);
        assert_eq!(
            sync.on_entries(1, leader.entries(0, 3, usize::MAX)),
            vec![Action::Request(
                peer,
                SyncRequest::Consistency { from: 3, to: size }
            )]
        );
        sync.sent(2);
        let wrong = leader.consistency_proof(2, size).unwrap();
        assert!(matches!(sync.on_consistency(2, wrong)[0], Action::Strike(p, _) if p == peer));
        assert_eq!(follower.size(), 0);

        // Honest chunks: each proven, then the last with the checkpoint.
        let mut id = 10;
        let mut action = sync.on_note(peer, note.clone());
        while let Action::Request(_, request) = action {
            sync.sent(id);
            let next = match request {
                SyncRequest::Entries { start, count } => {
                    sync.on_entries(id, leader.entries(start, count, usize::MAX))
                }
                SyncRequest::Consistency { from, to } => {
                    sync.on_consistency(id, leader.consistency_proof(from, to).unwrap())
                }
                other => panic!("unexpected {other:?}"),
            };
            id += 1;
            action = next.into_iter().next().unwrap_or(Action::None);
        }
        assert_eq!(follower.checkpoint(), Some(note));
        assert_eq!(follower.size(), size);
    }
}
