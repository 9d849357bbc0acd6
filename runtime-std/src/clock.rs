//! The runtime's monotonic clock, expressed as the core's [`Instant`].

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
