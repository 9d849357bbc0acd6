//! The runtime side of `--max-upload-rate` and `--max-download-rate`: core's
//! [`ByteRate`] budgets on this process's monotonic clock. Pieces served to peers wait for the
//! upload budget (or are answered `Missing` when the wait would be long); piece requests the
//! mirror makes wait for the download budget before they are sent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyrsia_core::bandwidth::{ByteRate, MAX_UPLOAD_WAIT_US};

/// One direction's budget, shared by every transfer in that direction.
pub(crate) struct Shaper {
    budget: Mutex<ByteRate>,
    epoch: Instant,
}

impl Shaper {
    /// A budget of `bytes_per_sec` (0: unlimited).
    pub(crate) fn new(bytes_per_sec: u64) -> Shaper {
        Shaper {
            budget: Mutex::new(ByteRate::new(bytes_per_sec, 0)),
            epoch: Instant::now(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, ByteRate> {
        self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charges `bytes`; how long to wait before moving them.
    pub(crate) fn delay(&self, bytes: u64) -> Duration {
        let now = self.now_us();
        Duration::from_micros(self.budget().charge(now, bytes))
    }

    /// Charges `bytes` if they may go within [`MAX_UPLOAD_WAIT_US`]: how long to wait, or
    /// `None` to refuse them (nothing charged).
    pub(crate) fn admit(&self, bytes: u64) -> Option<Duration> {
        let now = self.now_us();
        self.budget()
            .charge_within(now, bytes, MAX_UPLOAD_WAIT_US)
            .map(Duration::from_micros)
    }
}
