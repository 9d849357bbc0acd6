//! Strikes against peers, each one keeping the peer out of something for longer: the first
//! for a set wait, each further strike in a row doubling it up to a longest wait. Forgetting a
//! peer (it behaved) starts it over. Memory stays bounded whoever misbehaves: beyond
//! [`MAX_REMEMBERED`] peers, the one whose wait ends soonest is forgotten first.
//!
//! Two rules of the node keep such a memory: whom not to dial after a refusal
//! ([`crate::redial::DialBackoff`]), and whom to ask for pieces only when nobody else holds
//! them after a stall ([`crate::piece_schedule::StalledPeers`]).

use alloc::collections::BTreeMap;

use crate::time::{Duration, Instant};

/// The most peers remembered; beyond, the one free soonest is forgotten first.
pub const MAX_REMEMBERED: usize = 1024;

/// One peer's strikes in a row and when its wait ends.
#[derive(Clone, Copy, Debug)]
struct Record {
    count: u32,
    until: Instant,
}

/// Each peer's strikes (`K` names a peer), with the waits they earn.
#[derive(Clone, Debug)]
pub struct Strikes<K> {
    peers: BTreeMap<K, Record>,
    first: Duration,
    longest: Duration,
}

/// The wait earned by `count` strikes in a row: `first`, doubled with each strike after the
/// first, at most `longest`.
pub fn doubling_wait(first: Duration, longest: Duration, count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    let wait = first.saturating_mul(1u64 << doublings);
    if wait > longest { longest } else { wait }
}

impl<K: Ord + Clone> Strikes<K> {
    /// A memory whose first strike keeps a peer out for `first`, doubling up to `longest`.
    pub fn new(first: Duration, longest: Duration) -> Strikes<K> {
        Strikes {
            peers: BTreeMap::new(),
            first,
            longest,
        }
    }

    /// Strikes `peer` at `now`: its wait starts over from `now`, one doubling longer than the
    /// last (see [`doubling_wait`]). Returns the wait.
    pub fn strike(&mut self, peer: &K, now: Instant) -> Duration {
        let count = self.count(peer).saturating_add(1);
        let wait = doubling_wait(self.first, self.longest, count);
        let until = now.checked_add(wait).unwrap_or(now);
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_REMEMBERED {
            self.forget_soonest();
        }
        self.peers.insert(peer.clone(), Record { count, until });
        wait
    }

    /// Forgets `peer`'s strikes (it behaved): its next strike earns the first wait again.
    pub fn forget(&mut self, peer: &K) {
        self.peers.remove(peer);
    }

    /// Whether `peer` is free at `now`; `Err` with how long its wait still lasts.
    pub fn free(&self, peer: &K, now: Instant) -> Result<(), Duration> {
        match self.peers.get(peer) {
            Some(r) if r.until > now => Err(r.until.saturating_since(now)),
            _ => Ok(()),
        }
    }

    /// How many strikes in a row `peer` has (0: none remembered).
    pub fn count(&self, peer: &K) -> u32 {
        self.peers.get(peer).map_or(0, |r| r.count)
    }

    /// How many peers are remembered.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is remembered.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn forget_soonest(&mut self) {
        let soonest = self
            .peers
            .iter()
            .min_by_key(|(_, r)| r.until)
            .map(|(k, _)| k.clone());
        if let Some(k) = soonest {
            self.peers.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    #[test]
    fn waits_double_up_to_the_longest_and_forgetting_starts_over() {
        let mut strikes = Strikes::new(Duration::from_secs(2), Duration::from_secs(10));
        let waits: alloc::vec::Vec<u64> = (0..5)
            .map(|i| strikes.strike(&1, at(i * 1_000)).as_millis() / 1_000)
            .collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
        assert_eq!(strikes.count(&1), 5);
        assert!(strikes.free(&1, at(4_000 + 9_999)).is_err());
        assert_eq!(strikes.free(&1, at(4_000 + 10_000)), Ok(()));
        assert_eq!(strikes.free(&2, at(0)), Ok(()), "others are not affected");
        strikes.forget(&1);
        assert_eq!(strikes.count(&1), 0);
        assert_eq!(strikes.strike(&1, at(20_000)), Duration::from_secs(2));
    }

    #[test]
    fn memory_stays_bounded_and_forgets_the_peer_free_soonest() {
        let mut strikes = Strikes::new(Duration::from_secs(1), Duration::from_secs(30));
        for peer in 0..MAX_REMEMBERED as u32 {
            strikes.strike(&peer, at(u64::from(peer)));
        }
        // Peer 0 was struck first: free soonest, forgotten for the newcomer.
        strikes.strike(&u32::MAX, at(5_000));
        assert_eq!(strikes.len(), MAX_REMEMBERED);
        assert_eq!(strikes.count(&0), 0);
        assert_eq!(strikes.count(&1), 1);
        assert_eq!(strikes.count(&u32::MAX), 1);
    }
}
