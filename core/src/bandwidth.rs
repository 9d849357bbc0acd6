//! Bandwidth shaping for peer traffic (`--max-upload-rate`, `--max-download-rate`): a token
//! bucket of bytes that says how long the runtime must wait before it moves a piece, with
//! time given as monotonic microseconds (the core reads no clock).
//!
//! A piece (up to 1 MiB) may be larger than the tokens at hand: it is let through and the
//! bucket goes into debt, which the following pieces wait out. So a transfer averages the
//! rate whatever the piece size, and an idle link earns at most one second of burst.

/// A byte-rate budget shared by every transfer in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRate {
    /// Bytes per second; 0 means unlimited.
    rate: u64,
    /// Bytes available (negative: owed), in millionths of a byte.
    tokens: i128,
    last_us: u64,
}

/// Millionths of a byte per byte.
const SCALE: i128 = 1_000_000;

impl ByteRate {
    /// A budget of `bytes_per_sec` (0: unlimited), starting full (one second's worth) at
    /// `now_us`.
    pub fn new(bytes_per_sec: u64, now_us: u64) -> ByteRate {
        ByteRate {
            rate: bytes_per_sec,
            tokens: i128::from(bytes_per_sec) * SCALE,
            last_us: now_us,
        }
    }

    /// The configured rate in bytes per second (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Charges `bytes` moved at `now_us`; returns how many microseconds the runtime must wait
    /// before moving them so that the rate holds (0: at once).
    pub fn charge(&mut self, now_us: u64, bytes: u64) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        let rate = i128::from(self.rate);
        let burst = rate * SCALE;
        let elapsed = i128::from(now_us.saturating_sub(self.last_us));
        self.last_us = now_us.max(self.last_us);
        // Earned: rate bytes per second = rate millionths of a byte per microsecond.
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.tokens -= i128::from(bytes) * SCALE;
        if self.tokens >= 0 {
            return 0;
        }
        // The debt, paid at `rate` millionths per microsecond, rounded up.
        let owed = -self.tokens;
        u64::try_from((owed + rate - 1) / rate).unwrap_or(u64::MAX)
    }
}

impl ByteRate {
    /// [`ByteRate::charge`], unless the wait would exceed `max_wait_us`: then nothing is
    /// charged and `None` says to refuse the transfer (a piece server answers `Missing`, and
    /// the asker turns to another peer or the upstream instead of timing out on this one).
    pub fn charge_within(&mut self, now_us: u64, bytes: u64, max_wait_us: u64) -> Option<u64> {
        let mut trial = *self;
        let wait = trial.charge(now_us, bytes);
        if wait > max_wait_us {
            return None;
        }
        *self = trial;
        Some(wait)
    }
}

/// The longest a piece answer waits for the upload budget before it is refused instead:
/// below the askers' piece timeout (5 s), so a rate limit never looks like a stalled peer.
pub const MAX_UPLOAD_WAIT_US: u64 = 2_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_that_would_wait_too_long_is_refused_and_costs_nothing() {
        let mut budget = ByteRate::new(1_000_000, 0);
        assert_eq!(
            budget.charge_within(0, 1_000_000, MAX_UPLOAD_WAIT_US),
            Some(0)
        );
        assert_eq!(
            budget.charge_within(0, 1_000_000, MAX_UPLOAD_WAIT_US),
            Some(1_000_000)
        );
        assert_eq!(
            budget.charge_within(0, 1_000_000, MAX_UPLOAD_WAIT_US),
            Some(2_000_000)
        );
        assert_eq!(budget.charge_within(0, 1_000_000, MAX_UPLOAD_WAIT_US), None);
        assert_eq!(
            budget.charge_within(1_000_000, 1_000_000, MAX_UPLOAD_WAIT_US),
            Some(2_000_000),
            "the refusal charged nothing"
        );
    }

    #[test]
    fn unlimited_never_waits() {
        let mut budget = ByteRate::new(0, 0);
        assert_eq!(budget.charge(0, u64::MAX), 0);
    }

    #[test]
    fn a_burst_then_the_rate_whatever_the_piece_size() {
        // 1 MB/s: a full bucket lets one 1 MB piece through, the next waits a second.
        let mut budget = ByteRate::new(1_000_000, 0);
        assert_eq!(budget.charge(0, 1_000_000), 0);
        assert_eq!(budget.charge(0, 1_000_000), 1_000_000);
        // Waited out: ten pieces of 100 kB sent back to back each wait their share.
        let mut now = 2_000_000;
        let mut budget = ByteRate::new(1_000_000, now);
        budget.charge(now, 1_000_000);
        let mut sent = 0;
        for _ in 0..10 {
            now += budget.charge(now, 100_000);
            sent += 100_000;
        }
        assert_eq!(sent, 1_000_000);
        assert_eq!(now, 3_000_000, "1 MB after the burst takes one second");
    }

    #[test]
    fn idle_time_earns_one_second_at_most_and_a_clock_going_back_earns_nothing() {
        let mut budget = ByteRate::new(1000, 0);
        budget.charge(0, 1000);
        assert_eq!(budget.charge(100_000_000, 1000), 0, "refilled");
        assert!(
            budget.charge(100_000_000, 1) > 0,
            "but only to one second's worth"
        );
        let owed = budget.charge(50_000_000, 0);
        assert!(owed > 0, "no credit for a clock that went back");
    }
}
