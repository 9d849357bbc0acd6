//! The IO of catching up with peers' logs: core's `tlog::sync::LogSync` decides what to ask
//! whom, what to store and whom to blame; this sends its requests, stores through the log and
//! reports back.

use std::collections::VecDeque;

use libp2p::PeerId;
use pyrsia_core::tlog::sync::{CatchUpRequest, Stored, SyncAction};

use super::EventLoop;
use crate::codec::SyncRequest;

impl EventLoop {
    /// The time core's state machines run on here (catch-up, piece redirects).
    pub(super) fn sync_now(&self) -> pyrsia_core::time::Instant {
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        pyrsia_core::time::Instant::from_micros(micros)
    }

    /// Carries out the catch-up's actions, and those their outcomes lead to, in order.
    pub(super) fn perform(&mut self, actions: Vec<SyncAction<PeerId>>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            let next = match action {
                SyncAction::Request(peer, request) => {
                    let request = match request {
                        CatchUpRequest::Entries { start, count } => {
                            SyncRequest::Entries { start, count }
                        }
                        CatchUpRequest::Consistency { from, to } => {
                            SyncRequest::Consistency { from, to }
                        }
                    };
                    tracing::debug!(%peer, ?request, "log-sync request");
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    let now = self.sync_now();
                    self.sync.sent(id, now);
                    Vec::new()
                }
                SyncAction::Strike(peer, why) => {
                    self.strike(peer, &why);
                    Vec::new()
                }
                SyncAction::Apply {
                    peer,
                    note,
                    entries,
                } => {
                    let stored = self.log.store_fetched(&note, &entries);
                    match &stored {
                        Stored::Grew(size) => {
                            tracing::info!(%peer, size, "log extended from a peer's checkpoint");
                        }
                        Stored::LocalFailure(why) => {
                            tracing::error!(%peer, %why, "cannot store a peer's checkpoint");
                        }
                        Stored::Unchanged | Stored::Refused(_) => {}
                    }
                    let sync = &mut self.sync;
                    self.log.with_state(|log| sync.applied(log, peer, stored))
                }
                SyncAction::ApplyPrefix {
                    peer,
                    note,
                    entries,
                    proof,
                } => {
                    let stored = self.log.store_fetched_prefix(&note, &entries, &proof);
                    match &stored {
                        Stored::Grew(size) => tracing::info!(%peer, size,
                            of = note.checkpoint.size, "catching up with a peer's log"),
                        Stored::LocalFailure(why) => {
                            tracing::error!(%peer, %why, "cannot store a peer's log entries");
                        }
                        Stored::Unchanged | Stored::Refused(_) => {}
                    }
                    let sync = &mut self.sync;
                    self.log.with_state(|log| sync.prefix_applied(log, stored))
                }
            };
            queue.extend(next);
        }
    }

    /// A checkpoint `peer` announced or answered, as the bytes that came. `Err` when core's
    /// catch-up strikes the note itself (not text, not a signed note, or without its quorum:
    /// `LogSync::on_note_bytes`): the caller strikes the sender (and rejects a gossiped one).
    pub(super) fn on_note_text(&mut self, peer: PeerId, text: &[u8]) -> Result<(), String> {
        let now = self.sync_now();
        let sync = &mut self.sync;
        let actions = self
            .log
            .with_state(|log| sync.on_note_bytes(log, peer, text, now));
        if let [SyncAction::Strike(_, why)] = &actions[..] {
            return Err(why.clone());
        }
        self.perform(actions);
        Ok(())
    }

    /// On every tick: a fetch whose answer is late past core's deadline ends (the request
    /// timeout normally ends it first; this is the guarantee).
    pub(super) fn sync_tick(&mut self) {
        let now = self.sync_now();
        if let Some(peer) = self.sync.late_peer(now) {
            tracing::info!(%peer, "log-sync fetch got no answer in time: giving it up");
        }
        let sync = &mut self.sync;
        let actions = self.log.with_state(|log| sync.on_tick(log, now));
        self.perform(actions);
    }

    /// An answer of another kind than asked for (a checkpoint for an entries request): the
    /// catch-up strikes the peer if it was its request.
    pub(super) fn on_wrong_sync_answer(
        &mut self,
        request: libp2p::request_response::OutboundRequestId,
    ) {
        let sync = &mut self.sync;
        let actions = self
            .log
            .with_state(|log| sync.on_wrong_answer(log, request));
        self.perform(actions);
    }
}
