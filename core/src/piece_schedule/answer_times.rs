//! How long this fetch's peers take to answer a piece, smoothed as TCP smooths round trips
//! (RFC 6298: a mean moving by 1/8 of each new sample, a deviation by 1/4), and what that says
//! about the piece holding the reader up: once it waited past the mean and four deviations,
//! its peer is late for this fetch (a staller, or a peer whose link or upload has fallen
//! behind), and a second holder is asked for it ([`super::PieceSchedule::next_requests`]).

use crate::time::Duration;

/// The shortest wait before a second holder is asked for the piece holding the reader up,
/// however fast the answers so far: a peer that answers in a millisecond on loopback still
/// gets a quarter of a second before its piece is fetched twice.
pub const HEDGE_FLOOR: Duration = Duration::from_millis(250);

/// The answer times seen so far in one fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerTimes {
    /// The smoothed answer time, in microseconds (`None` before the first answer).
    mean: Option<u64>,
    /// The smoothed deviation from it, in microseconds.
    deviation: u64,
}

impl AnswerTimes {
    /// A good piece came `took` after its request left.
    pub fn record(&mut self, took: Duration) {
        let sample = took.as_micros();
        match self.mean {
            None => {
                self.mean = Some(sample);
                self.deviation = sample / 2;
            }
            Some(mean) => {
                self.deviation = (3 * self.deviation + mean.abs_diff(sample)) / 4;
                self.mean = Some((7 * mean + sample) / 8);
            }
        }
    }

    /// How long the piece holding the reader up waits before a second holder is asked for
    /// it: the mean answer time and four deviations, at least [`HEDGE_FLOOR`], at most
    /// `longest` (before any answer, `longest`).
    pub fn hedge_after(&self, longest: Duration) -> Duration {
        let Some(mean) = self.mean else {
            return longest;
        };
        let late = Duration::from_micros(mean.saturating_add(self.deviation.saturating_mul(4)));
        late.max(HEDGE_FLOOR).min(longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = Duration::from_millis(1_250);

    #[test]
    fn before_any_answer_the_longest_wait_holds() {
        assert_eq!(AnswerTimes::default().hedge_after(LONGEST), LONGEST);
    }

    #[test]
    fn steady_answers_bring_the_wait_down_to_the_floor_and_erratic_ones_keep_it_up() {
        let mut steady = AnswerTimes::default();
        for _ in 0..20 {
            steady.record(Duration::from_millis(20));
        }
        assert_eq!(steady.hedge_after(LONGEST), HEDGE_FLOOR);

        let mut slow_and_steady = AnswerTimes::default();
        for _ in 0..40 {
            slow_and_steady.record(Duration::from_millis(400));
        }
        let wait = slow_and_steady.hedge_after(LONGEST);
        assert!(
            wait >= Duration::from_millis(400) && wait < Duration::from_millis(450),
            "{wait:?}"
        );

        let mut erratic = AnswerTimes::default();
        for i in 0..40 {
            erratic.record(Duration::from_millis(if i % 2 == 0 { 10 } else { 300 }));
        }
        assert!(erratic.hedge_after(LONGEST) > Duration::from_millis(600));
    }

    #[test]
    fn the_wait_never_passes_the_longest() {
        let mut times = AnswerTimes::default();
        times.record(Duration::from_secs(30));
        assert_eq!(times.hedge_after(LONGEST), LONGEST);
    }
}
