//! What the node did lately, for its status page: the last pulls (what, from where, how
//! big) and the last errors. Bounded in memory; nothing here is persisted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use pyrsia_core::digest::Digest;
use serde::Serialize;

use crate::clock::unix_seconds;

/// How many pulls and errors are remembered.
pub const RECENT: usize = 50;
/// How many fetched-but-not-yet-served sources are remembered.
const FETCHED: usize = 1024;

/// One content request answered in full.
#[derive(Clone, Debug, Serialize)]
pub struct Pull {
    /// When it finished, in Unix seconds.
    pub at: u64,
    /// The repository or package path asked for (`library/busybox`).
    pub repository: String,
    /// The tag or digest asked for.
    pub reference: String,
    /// The content's digest (every digest served was checked).
    pub digest: String,
    /// Body bytes sent.
    pub bytes: u64,
    /// Where the bytes came from: `cache`, `peers` or `upstream`.
    pub source: &'static str,
}

/// One failure worth an operator's eye.
#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    /// When, in Unix seconds.
    pub at: u64,
    /// What failed, in words.
    pub message: String,
}

/// The recent activity. Shared by the mirror and the HTTP frontend through
/// [`crate::metrics::Metrics`].
#[derive(Default)]
pub struct Activity {
    fetched: Mutex<HashMap<Digest, &'static str>>,
    pulls: Mutex<VecDeque<Pull>>,
    errors: Mutex<VecDeque<Failure>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) {
    if queue.len() == RECENT {
        queue.pop_front();
    }
    queue.push_back(item);
}

impl Activity {
    /// Records that `digest` was just fetched and verified from `source` (`peers`,
    /// `upstream`): the next pull of it is reported as from there, later ones from the cache.
    pub fn fetched(&self, digest: Digest, source: &'static str) {
        let mut fetched = lock(&self.fetched);
        if fetched.len() >= FETCHED {
            fetched.clear();
        }
        fetched.insert(digest, source);
    }

    /// Records a pull answered in full; its source is where `digest` was fetched from if it
    /// was fetched for this pull, else the cache.
    pub fn pulled(&self, repository: &str, reference: &str, digest: Digest, bytes: u64) {
        let source = lock(&self.fetched).remove(&digest).unwrap_or("cache");
        push_bounded(
            &mut lock(&self.pulls),
            Pull {
                at: unix_seconds(),
                repository: repository.to_string(),
                reference: reference.to_string(),
                digest: digest.to_string(),
                bytes,
                source,
            },
        );
    }

    /// Records a failure.
    pub fn failed(&self, message: String) {
        let at = unix_seconds();
        push_bounded(&mut lock(&self.errors), Failure { at, message });
    }

    /// The recent pulls, newest first.
    pub fn recent_pulls(&self) -> Vec<Pull> {
        lock(&self.pulls).iter().rev().cloned().collect()
    }

    /// The recent failures, newest first.
    pub fn recent_errors(&self) -> Vec<Failure> {
        lock(&self.errors).iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pull_after_a_fetch_names_its_source_later_ones_the_cache() {
        let activity = Activity::default();
        let digest = Digest::sha256(b"x");
        activity.fetched(digest, "upstream");
        activity.pulled("library/a", "1", digest, 10);
        activity.pulled("library/a", "1", digest, 10);
        let pulls = activity.recent_pulls();
        assert_eq!(pulls[0].source, "cache");
        assert_eq!(pulls[1].source, "upstream");
        for i in 0..(RECENT as u64 + 5) {
            activity.failed(format!("e{i}"));
        }
        let errors = activity.recent_errors();
        assert_eq!(errors.len(), RECENT);
        assert_eq!(errors[0].message, format!("e{}", RECENT + 4));
    }
}
