//! When a node asks a peer for the log's latest checkpoint outside announcements, and which
//! connected peer it asks: the repair for an announcement it missed. Gossipsub drops a
//! checkpoint announced again unchanged as a duplicate, so a node that missed one (a lost
//! message, a connection that died unnoticed, a start just after it) would otherwise learn of
//! it only with the next checkpoint or on reconnecting. Sans-IO: time comes in as a value; the
//! runtime sends the request (log-sync `Checkpoint`) to the peer [`CheckpointPull::due`] names.

use crate::time::{Duration, Instant};

/// How often a node that holds a checkpoint asks one connected peer for the latest one.
pub const PULL_EVERY: Duration = Duration::from_secs(30);

/// How often a node whose log holds no checkpoint yet (a member or follower that just joined)
/// asks: a late joiner whose connect-time asks brought nothing would otherwise wait
/// [`PULL_EVERY`], and a network of few members that needs it for its quorum stalls that long
/// (seen in CI: a member started just after the others ordered their first batch, with a
/// flooding member whose own votes drowned in its junk, so nothing new was announced).
pub const PULL_WHILE_EMPTY_EVERY: Duration = Duration::from_secs(1);

/// The pull schedule of one node. Call [`CheckpointPull::due`] on every tick of the runtime.
#[derive(Clone, Debug, Default)]
pub struct CheckpointPull {
    last: Option<Instant>,
    pulls: usize,
}

impl CheckpointPull {
    /// Whether to ask a peer now, at `now`: the index of the one to ask among the `connected`
    /// peers (the next one each time), or `None`. `holds_checkpoint`: this node's log holds a
    /// final checkpoint. With no peer connected the turn is not spent.
    pub fn due(&mut self, now: Instant, holds_checkpoint: bool, connected: usize) -> Option<usize> {
        let every = if holds_checkpoint {
            PULL_EVERY
        } else {
            PULL_WHILE_EMPTY_EVERY
        };
        if self.last.is_some_and(|at| now.saturating_since(at) < every) || connected == 0 {
            return None;
        }
        self.last = Some(now);
        self.pulls = self.pulls.wrapping_add(1);
        Some(self.pulls % connected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::ZERO
            .checked_add(Duration::from_secs(secs))
            .unwrap()
    }

    #[test]
    fn a_node_without_a_checkpoint_asks_every_second_and_a_turn_without_peers_is_not_spent() {
        let mut pull = CheckpointPull::default();
        assert_eq!(pull.due(at(0), false, 0), None, "nobody to ask");
        let first = pull
            .due(at(0), false, 3)
            .expect("asks as soon as a peer is connected");
        assert_eq!(pull.due(at(0), false, 3), None);
        let second = pull.due(at(1), false, 3).expect("a second later, again");
        assert_ne!(first, second, "the next peer each time");
        let third = pull.due(at(2), false, 3).unwrap();
        assert!(first != third && second != third);
        assert_eq!(pull.due(at(3), false, 3), Some(first), "round the peers");
    }

    #[test]
    fn a_node_with_a_checkpoint_asks_every_thirty_seconds() {
        let mut pull = CheckpointPull::default();
        assert!(pull.due(at(0), true, 2).is_some());
        assert_eq!(pull.due(at(1), true, 2), None);
        assert_eq!(pull.due(at(29), true, 2), None);
        assert!(pull.due(at(30), true, 2).is_some());
        // Losing its log (a wipe) brings the short pace back.
        assert!(pull.due(at(31), false, 2).is_some());
    }
}
