//! The runtime's clocks: a monotonic one expressed as the core's [`Instant`], and wall time
//! in Unix seconds for checkpoint timestamps and freshness checks.

use pyrsia_core::time::Instant;

/// A monotonic clock whose epoch is the moment it was created. Create one per process and
/// pass [`MonotonicClock::now`] into every core call that takes `now`.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    epoch: std::time::Instant,
}

impl MonotonicClock {
    /// Starts a clock at zero.
    pub fn start() -> Self {
        MonotonicClock {
            epoch: std::time::Instant::now(),
        }
    }

    /// Microseconds since [`MonotonicClock::start`], as a core [`Instant`].
    pub fn now(&self) -> Instant {
        let micros = self.epoch.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let clock = MonotonicClock::start();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = clock.now();
        assert!(b.as_micros() >= a.as_micros() + 2_000, "{a} then {b}");
    }
}
