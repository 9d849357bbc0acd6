//! When to dial a peer again after it refused this node: a node at its connection limit (or
//! holding too many connections from this address, or blocking this node) accepts the
//! connection, finishes the handshake and closes it at once. Nothing in libp2p remembers that:
//! every Kademlia query, log sync and bootstrap redial that names the peer dials it again,
//! each a full handshake on both sides, several a second under load. This is the rule the
//! runtime applies to its dials: after a refusal, wait [`FIRST_WAIT`], doubling with each
//! further refusal up to [`LONGEST_WAIT`]; a connection that stays open longer than
//! [`REFUSAL_WITHIN`] forgets the peer's refusals.
//!
//! Only refusals count, not dials that fail: a peer that is down or restarting is dialled as
//! before (a restarted node is found again at once), and a peer's refusal is seen only once
//! its handshake succeeded, so no third party can make this node shun a peer.

use crate::strikes::{Strikes, doubling_wait};
use crate::time::{Duration, Instant};

/// A connection the remote closes within this long of its establishment, leaving this node
/// no other connection to the peer, is a refusal: a limit closes it at once (within a round
/// trip of the handshake); a peer that talks holds it for longer.
pub const REFUSAL_WITHIN: Duration = Duration::from_secs(1);
/// How long a peer's first refusal keeps this node from dialling it.
pub const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait (reached after six refusals in a row): a peer that frees a place is
/// dialled again within this long.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// The most peers whose refusals are remembered; beyond, the one free to be dialled
/// soonest is forgotten first (memory stays bounded whoever connects).
pub const MAX_REMEMBERED: usize = crate::strikes::MAX_REMEMBERED;

/// What a closed connection was, for [`DialBackoff::closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// How long the connection was open.
    pub lasted: Duration,
    /// Whether the remote ended it (an error or end of stream here), not this node.
    pub by_remote: bool,
    /// Whether this node still holds another connection to the peer.
    pub others_open: bool,
}

/// The refusals of each peer (`K` names a peer), and the rule above. The runtime calls
/// [`DialBackoff::closed`] for every closed connection and asks [`DialBackoff::may_dial`]
/// before every dial.
#[derive(Clone, Debug)]
pub struct DialBackoff<K> {
    refusals: Strikes<K>,
}

impl<K: Ord + Clone> Default for DialBackoff<K> {
    fn default() -> Self {
        DialBackoff {
            refusals: Strikes::new(FIRST_WAIT, LONGEST_WAIT),
        }
    }
}

/// The wait after `count` refusals in a row.
pub fn wait_after(count: u32) -> Duration {
    doubling_wait(FIRST_WAIT, LONGEST_WAIT, count)
}

impl<K: Ord + Clone> DialBackoff<K> {
    /// A connection to `peer` closed at `now`: a refusal (see [`REFUSAL_WITHIN`]) sets when the
    /// peer may be dialled again and returns that wait; a connection that lasted forgets the
    /// peer's refusals. `None` when it was no refusal.
    pub fn closed(&mut self, peer: &K, closed: Closed, now: Instant) -> Option<Duration> {
        if closed.lasted > REFUSAL_WITHIN {
            self.refusals.forget(peer);
            return None;
        }
        if !closed.by_remote || closed.others_open {
            return None;
        }
        Some(self.refusals.strike(peer, now))
    }

    /// Whether this node may dial `peer` at `now`; `Err` with how long it must still wait.
    pub fn may_dial(&self, peer: &K, now: Instant) -> Result<(), Duration> {
        self.refusals.free(peer, now)
    }

    /// How many refusals in a row `peer` has made (0: none remembered).
    pub fn refusals(&self, peer: &K) -> u32 {
        self.refusals.count(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Closed {
        Closed {
            lasted: Duration::from_millis(3),
            by_remote: true,
            others_open: false,
        }
    }

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    #[test]
    fn each_refusal_in_a_row_doubles_the_wait_up_to_the_longest() {
        let mut backoff = DialBackoff::default();
        assert_eq!(backoff.may_dial(&7, at(0)), Ok(()));
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let wait = backoff.closed(&7, refused(), at(now)).expect("a refusal");
            assert!(backoff.may_dial(&7, at(now)).is_err());
            assert!(
                backoff
                    .may_dial(&7, at(now + wait.as_millis() - 1))
                    .is_err()
            );
            assert_eq!(backoff.may_dial(&7, at(now + wait.as_millis())), Ok(()));
            waits.push(wait.as_millis() / 1000);
            now += wait.as_millis();
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        // Other peers are not affected.
        assert_eq!(backoff.may_dial(&8, at(0)), Ok(()));
    }

    #[test]
    fn a_connection_that_lasts_forgets_the_refusals() {
        let mut backoff = DialBackoff::default();
        backoff.closed(&1, refused(), at(0));
        backoff.closed(&1, refused(), at(1_000));
        assert_eq!(backoff.refusals(&1), 2);
        let lasted = Closed {
            lasted: Duration::from_secs(5),
            ..refused()
        };
        assert_eq!(backoff.closed(&1, lasted, at(9_000)), None);
        assert_eq!(backoff.refusals(&1), 0);
        assert_eq!(backoff.may_dial(&1, at(9_000)), Ok(()));
        // The next refusal starts again at the first wait.
        assert_eq!(backoff.closed(&1, refused(), at(9_000)), Some(FIRST_WAIT));
    }

    #[test]
    fn closes_by_this_node_or_beside_another_connection_are_no_refusal() {
        let mut backoff = DialBackoff::default();
        let by_us = Closed {
            by_remote: false,
            ..refused()
        };
        let beside = Closed {
            others_open: true,
            ..refused()
        };
        assert_eq!(backoff.closed(&1, by_us, at(0)), None);
        assert_eq!(backoff.closed(&1, beside, at(0)), None);
        assert_eq!(backoff.may_dial(&1, at(0)), Ok(()));
    }
}
