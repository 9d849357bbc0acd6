//! Bit-rot scrubbing: stored blobs are served as they lie on disk (sendfile, never re-hashed),
//! so a background pass re-hashes every one at a bounded rate, and a blob whose bytes no
//! longer match its digest is moved out of the store (`quarantine/`) at once. The next request
//! for it fetches it again from peers or the upstream, verified as always; those bytes are
//! never served under that digest again.

use std::fs::{self, File};
use std::io::{self, Read};
use std::time::{Duration, Instant};

use pyrsia_core::digest::{Digest, Hasher};

use super::{Store, StoreError, StoreEvent, now_ms};

/// How long after start the first pass begins (a restart does not postpone scrubbing by a
/// whole period, nor compete with the start itself).
pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(600);

/// How the scrubber runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrubConfig {
    /// Bytes re-hashed per second at most (0: never scrub).
    pub bytes_per_second: u64,
    /// Time between the starts of two passes over the store.
    pub every: Duration,
}

impl Default for ScrubConfig {
    /// A pass a day at 16 MiB/s at most.
    fn default() -> Self {
        ScrubConfig {
            bytes_per_second: 16 << 20,
            every: Duration::from_secs(24 * 3600),
        }
    }
}

/// What re-hashing one blob found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrubOutcome {
    /// The bytes still match the digest.
    Intact,
    /// They did not: the file was moved to `quarantine/` and the blob forgotten.
    Quarantined,
    /// The blob is no longer stored (evicted meanwhile), or could not be read.
    Skipped,
}

/// Paces reads to a byte rate.
pub struct Pace {
    rate: u64,
    started: Instant,
    bytes: u64,
}

impl Pace {
    /// A pace of `rate` bytes per second (0: no limit).
    pub fn new(rate: u64) -> Pace {
        Pace {
            rate,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `n` bytes read and sleeps as long as the rate requires.
    pub(super) fn account(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.rate == 0 {
            return;
        }
        let due = self.started + Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

impl Store {
    /// Re-hashes the stored blob `digest` (without marking it used) and quarantines it if its
    /// bytes do not match.
    pub fn scrub_one(&self, digest: &Digest, pace: &mut Pace) -> ScrubOutcome {
        if self.record(digest).is_none() {
            return ScrubOutcome::Skipped;
        }
        let mut file = match File::open(self.blob_path(digest)) {
            Ok(file) => file,
            Err(_) => return ScrubOutcome::Skipped,
        };
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    pace.account(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "scrub: cannot read a stored blob");
                    return ScrubOutcome::Skipped;
                }
            }
        }
        let actual = hasher.finish();
        if actual == *digest {
            return ScrubOutcome::Intact;
        }
        match self.quarantine(digest) {
            Ok(()) => {
                tracing::error!(%digest, %actual, "scrub: a stored blob no longer matches its digest (bit rot); quarantined, it will be fetched again");
                ScrubOutcome::Quarantined
            }
            Err(e) => {
                tracing::error!(%digest, error = %e, "scrub: cannot quarantine a rotten blob");
                ScrubOutcome::Skipped
            }
        }
    }

    /// Moves a blob's file to `quarantine/` (kept for inspection) and forgets the blob, so
    /// that it is neither served nor provided to peers any more.
    fn quarantine(&self, digest: &Digest) -> Result<(), StoreError> {
        let dir = self.inner.root.join("quarantine");
        fs::create_dir_all(&dir)?;
        let target = dir.join(format!("{}.{}", digest.hex(), now_ms()));
        match fs::rename(self.blob_path(digest), &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.forget(digest);
        self.notify(StoreEvent::Evicted(*digest));
        Ok(())
    }

    /// Scrubs the store in the background: a first pass [`FIRST_PASS_AFTER`] (or `every`,
    /// if shorter) after the call, then one every `config.every`, at
    /// `config.bytes_per_second` at most. `on_outcome` sees each blob's outcome and size (for
    /// metrics). Does nothing when the rate is 0.
    pub fn spawn_scrubber(
        &self,
        config: ScrubConfig,
        on_outcome: impl Fn(ScrubOutcome, u64) + Send + 'static,
    ) -> io::Result<()> {
        if config.bytes_per_second == 0 {
            return Ok(());
        }
        let store = self.clone();
        std::thread::Builder::new()
            .name("scrub".into())
            .spawn(move || {
                std::thread::sleep(config.every.min(FIRST_PASS_AFTER));
                loop {
                    let started = Instant::now();
                    let mut pace = Pace::new(config.bytes_per_second);
                    let (mut checked, mut quarantined) = (0u64, 0u64);
                    for digest in store.digests() {
                        let size = store.record(&digest).map_or(0, |r| r.size);
                        let outcome = store.scrub_one(&digest, &mut pace);
                        checked += u64::from(outcome != ScrubOutcome::Skipped);
                        quarantined += u64::from(outcome == ScrubOutcome::Quarantined);
                        on_outcome(outcome, size);
                    }
                    tracing::debug!(
                        checked,
                        quarantined,
                        secs = started.elapsed().as_secs(),
                        "scrub: pass done"
                    );
                    std::thread::sleep(config.every.saturating_sub(started.elapsed()));
                }
            })
            .map(|_| ())
    }
}
