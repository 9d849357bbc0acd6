//! The node's memory of peers that stalled its fetches (core's
//! [`pyrsia_core::piece_schedule::StalledPeers`], behind a lock, on the process clock): a
//! peer still late when a fetch ends (`PieceSchedule::late_peers`) is asked, in the node's
//! next fetches, only for pieces nobody else holds, for a minute at first, doubling with each
//! further stall up to half an hour; a piece it answers in time forgets it. A peer that says
//! it holds pieces and never sends them then costs the node one late piece, not one per
//! fetch.

use std::sync::Mutex;

use pyrsia_core::piece_schedule::{StalledPeers, stalled_peers};

use crate::clock::MonotonicClock;

/// The peers that stalled this node's fetches lately. One per node, shared by its fetches
/// (the network hands it out: [`super::PeerNetwork::stalls`]).
pub struct StallMemory {
    peers: Mutex<StalledPeers<String>>,
    clock: MonotonicClock,
}

impl Default for StallMemory {
    fn default() -> Self {
        StallMemory {
            peers: Mutex::new(stalled_peers()),
            clock: MonotonicClock::start(),
        }
    }
}

impl StallMemory {
    fn peers(&self) -> std::sync::MutexGuard<'_, StalledPeers<String>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `peer` was still late when a fetch ended: remembered, for longer than last time.
    /// Returns how long.
    pub fn stalled(&self, peer: &str) -> std::time::Duration {
        let wait = self.peers().strike(&peer.to_string(), self.clock.now());
        std::time::Duration::from_micros(wait.as_micros())
    }

    /// Whether `peer` stalled a fetch lately (a fetch marks it slow from its start).
    pub fn stalled_lately(&self, peer: &str) -> bool {
        self.peers()
            .free(&peer.to_string(), self.clock.now())
            .is_err()
    }

    /// `peer` answered a piece in time: its stalls are forgotten.
    pub fn answered_in_time(&self, peer: &str) {
        let mut peers = self.peers();
        if !peers.is_empty() {
            peers.forget(&peer.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_remembered_until_an_answer_in_time() {
        let memory = StallMemory::default();
        assert!(!memory.stalled_lately("a"));
        assert_eq!(memory.stalled("a"), std::time::Duration::from_secs(60));
        assert!(memory.stalled_lately("a"));
        assert!(!memory.stalled_lately("b"));
        assert_eq!(memory.stalled("a"), std::time::Duration::from_secs(120));
        memory.answered_in_time("a");
        assert!(!memory.stalled_lately("a"));
    }
}
