//! Catching up with a peer's log: one fetch at a time, in batches, from the peer that
//! announced the newest checkpoint; the newest announcement seen meanwhile waits its turn.
//! Whatever arrives goes through [`Log::apply_checkpoint`]; a peer whose checkpoint or entries
//! are refused gets a strike.

use std::sync::Arc;

use libp2p::PeerId;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_std::log::follow::BATCH_ENTRIES;
use pyrsia_std::log::{Applied, Log, MAX_ENTRIES_PER_APPLY};

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

struct Fetch<R> {
    peer: PeerId,
    note: SignedCheckpoint,
    first: u64,
    count: u64,
    entries: Vec<Vec<u8>>,
    request: Option<R>,
}

/// The sync state; `R` identifies requests (libp2p's `OutboundRequestId`).
pub(crate) struct LogSync<R> {
    log: Arc<Log>,
    active: Option<Fetch<R>>,
    waiting: Option<(PeerId, SignedCheckpoint)>,
}

impl<R: Copy + PartialEq> LogSync<R> {
    pub(crate) fn new(log: Arc<Log>) -> Self {
        LogSync {
            log,
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
        let Some((first, count)) = self.log.missing_for(&note) else {
            return match self.log.apply_checkpoint(&note, &[]) {
                Ok(_) => Action::None,
                Err(e) => Action::Strike(peer, e.to_string()),
            };
        };
        if count > MAX_ENTRIES_PER_APPLY {
            tracing::warn!(%peer, count, "peer's log is too far ahead to fetch in one go");
            return Action::None;
        }
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
            count,
            entries: Vec::new(),
            request: None,
        });
        self.next_request()
    }

    fn next_request(&mut self) -> Action {
        let Some(fetch) = &self.active else {
            return Action::None;
        };
        let start = fetch.first + fetch.entries.len() as u64;
        let count = (fetch.count - fetch.entries.len() as u64).min(BATCH_ENTRIES);
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
        let Some(fetch) = self.active.as_mut().filter(|f| f.request == Some(request)) else {
            return vec![];
        };
        let asked = (fetch.count - fetch.entries.len() as u64).min(BATCH_ENTRIES);
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
        if (fetch.entries.len() as u64) < fetch.count {
            return vec![self.next_request()];
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
}
