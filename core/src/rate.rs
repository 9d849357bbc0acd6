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
