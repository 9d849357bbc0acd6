//! A token bucket: how many events a sender may have handled, sustained and in a burst, with
//! time given as monotonic microseconds (the core reads no clock). Member messages
//! ([`crate::consensus::limits::RateLimit`]) and peers' requests (the P2P network) are each
//! metered with one per sender.

/// One sender's bucket: tokens in millionths of an event, and when they were last counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    tokens: u64,
    last_us: u64,
}

/// Millionths of an event per event.
const SCALE: u64 = 1_000_000;

impl TokenBucket {
    /// A full bucket of `burst` events at `now_us`.
    pub fn full(burst: u64, now_us: u64) -> TokenBucket {
        TokenBucket {
            tokens: burst.saturating_mul(SCALE),
            last_us: now_us,
        }
    }

    /// Whether one more event may be handled at `now_us`, refilling at `per_sec` up to
    /// `burst`; charges it if so.
    pub fn allow(&mut self, now_us: u64, per_sec: u64, burst: u64) -> bool {
        let full = burst.saturating_mul(SCALE);
        let earned = now_us.saturating_sub(self.last_us).saturating_mul(per_sec);
        self.tokens = self.tokens.saturating_add(earned).min(full);
        self.last_us = now_us.max(self.last_us);
        if self.tokens < SCALE {
            return false;
        }
        self.tokens -= SCALE;
        true
    }
}

/// Requests per second one peer may have answered (sustained): a peer pulling a blob at full
/// speed asks about 100 pieces of 1 MiB per second.
pub const PEER_REQUESTS_PER_SEC: u64 = 200;
/// The burst above [`PEER_REQUESTS_PER_SEC`].
pub const PEER_REQUESTS_BURST: u64 = 400;
/// Requests over the rate, from one peer, after which it is struck (and again every as many).
pub const DROPPED_PER_STRIKE: u64 = 1000;

/// What to do with a peer's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Answer it.
    Answer,
    /// Over the rate: drop it unanswered.
    Drop,
    /// Over the rate for long: drop it and strike the peer.
    DropAndStrike,
}

/// Each connected peer's request budget over [`PEER_REQUESTS_PER_SEC`] and
/// [`PEER_REQUESTS_BURST`], keyed by whatever names a peer (`K`). The runtime asks
/// [`PeerRequests::admit`] for every request a peer sends and forgets peers that disconnect,
/// so the table holds connected peers only.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct PeerRequests<K> {
    peers: alloc::collections::BTreeMap<K, (TokenBucket, u64)>,
}

#[cfg(feature = "alloc")]
impl<K: Ord> Default for PeerRequests<K> {
    fn default() -> Self {
        PeerRequests {
            peers: alloc::collections::BTreeMap::new(),
        }
    }
}

#[cfg(feature = "alloc")]
impl<K: Ord> PeerRequests<K> {
    /// Charges one request of `peer` at `now_us`.
    pub fn admit(&mut self, peer: K, now_us: u64) -> Admission {
        let (bucket, dropped) = self
            .peers
            .entry(peer)
            .or_insert_with(|| (TokenBucket::full(PEER_REQUESTS_BURST, now_us), 0));
        if bucket.allow(now_us, PEER_REQUESTS_PER_SEC, PEER_REQUESTS_BURST) {
            return Admission::Answer;
        }
        *dropped += 1;
        if dropped.is_multiple_of(DROPPED_PER_STRIKE) {
            Admission::DropAndStrike
        } else {
            Admission::Drop
        }
    }

    /// Forgets a peer that is no longer connected.
    pub fn forget(&mut self, peer: &K) {
        self.peers.remove(peer);
    }
}

/// Connections one address (an IP) may hold open at once: generous for peers behind one NAT,
/// small against one host opening thousands.
pub const CONNECTIONS_PER_ADDRESS: u32 = 64;

/// Open connections per address, against a maximum. The runtime asks
/// [`ConnectionsPerAddress::admit`] when a connection is established and calls
/// [`ConnectionsPerAddress::release`] when it closes (or was refused after all).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug)]
pub struct ConnectionsPerAddress<K> {
    max: u32,
    open: alloc::collections::BTreeMap<K, u32>,
}

#[cfg(feature = "alloc")]
impl<K: Ord> ConnectionsPerAddress<K> {
    /// At most `max` connections per address.
    pub fn new(max: u32) -> Self {
        ConnectionsPerAddress {
            max,
            open: alloc::collections::BTreeMap::new(),
        }
    }

    /// Counts one more connection from `address` if it has fewer than the maximum.
    pub fn admit(&mut self, address: K) -> bool {
        let open = self.open.entry(address).or_default();
        if *open >= self.max {
            return false;
        }
        *open += 1;
        true
    }

    /// A connection from `address` closed.
    pub fn release(&mut self, address: &K) {
        if let Some(open) = self.open.get_mut(address) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.open.remove(address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut bucket = TokenBucket::full(4, 0);
        assert_eq!((0..10).filter(|_| bucket.allow(0, 2, 4)).count(), 4);
        // Half a second at 2 per second earns one.
        assert!(bucket.allow(500_000, 2, 4));
        assert!(!bucket.allow(500_000, 2, 4));
        // A long silence refills to the burst, no more.
        assert_eq!(
            (0..10).filter(|_| bucket.allow(100_000_000, 2, 4)).count(),
            4
        );
        // A clock that goes back earns nothing.
        assert!(!bucket.allow(1, 2, 4));
    }
}

#[cfg(all(test, feature = "alloc"))]
mod peer_tests {
    use super::*;

    #[test]
    fn a_flooding_peer_is_dropped_then_struck_and_others_are_unaffected() {
        let mut limits = PeerRequests::default();
        let outcomes: alloc::vec::Vec<Admission> = (0..PEER_REQUESTS_BURST + DROPPED_PER_STRIKE)
            .map(|_| limits.admit("flooder", 0))
            .collect();
        let answered = outcomes.iter().filter(|a| **a == Admission::Answer).count();
        assert_eq!(answered as u64, PEER_REQUESTS_BURST);
        assert_eq!(outcomes.last(), Some(&Admission::DropAndStrike));
        assert_eq!(limits.admit("other", 0), Admission::Answer);
        limits.forget(&"flooder");
        assert_eq!(
            limits.admit("flooder", 0),
            Admission::Answer,
            "a fresh connection, a fresh budget"
        );
    }
}
