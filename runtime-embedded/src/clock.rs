//! Time on the device: a monotonic counter, advanced by ticks of a known period.

use pyrsia_core::time::Instant;

/// A monotonic time source on the device (a SysTick counter, an RTC).
pub trait Clock {
    /// The current time. Must never go backwards.
    fn now(&mut self) -> Instant;
}

/// A clock that advances a fixed step per reading: for host tests and for devices that count
/// ticks of a known period.
#[derive(Clone, Copy, Debug)]
pub struct TickClock {
    now: Instant,
    step_micros: u64,
}

impl TickClock {
    /// A clock at zero that advances `step_micros` per [`Clock::now`] call.
    pub const fn new(step_micros: u64) -> Self {
        TickClock {
            now: Instant::ZERO,
            step_micros,
        }
    }
}

impl Clock for TickClock {
    fn now(&mut self) -> Instant {
        let current = self.now;
        self.now = Instant::from_micros(current.as_micros().saturating_add(self.step_micros));
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_clock_advances() {
        let mut clock = TickClock::new(10);
        assert_eq!(clock.now(), Instant::ZERO);
        assert_eq!(clock.now(), Instant::from_micros(10));
    }
}
