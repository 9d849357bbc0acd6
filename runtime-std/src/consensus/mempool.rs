//! The entries a member holds until a batch orders them: bounded, deduplicated, oldest first.

use std::collections::{HashSet, VecDeque};

use pyrsia_core::digest::Digest;

/// The most entries waiting; the oldest are dropped beyond it (their submitter resends).
pub(crate) const MAX_PENDING_ENTRIES: usize = 1024;

/// Entries waiting to be ordered.
#[derive(Default)]
pub(crate) struct Mempool {
    entries: VecDeque<Vec<u8>>,
    seen: HashSet<Digest>,
}

impl Mempool {
    /// Adds `entry` unless it is waiting already; says whether it is new.
    pub(crate) fn add(&mut self, entry: Vec<u8>) -> bool {
        if !self.seen.insert(Digest::sha256(&entry)) {
            return false;
        }
        if self.entries.len() >= MAX_PENDING_ENTRIES
            && let Some(old) = self.entries.pop_front()
        {
            self.seen.remove(&Digest::sha256(&old));
        }
        self.entries.push_back(entry);
        true
    }

    /// Keeps only the entries `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let seen = &mut self.seen;
        self.entries.retain(|entry| {
            let kept = keep(entry);
            if !kept {
                seen.remove(&Digest::sha256(entry));
            }
            kept
        });
    }

    /// The waiting entries, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(Vec::as_slice)
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_once_in_order_and_bounded() {
        let mut pool = Mempool::default();
        assert!(pool.add(b"a".to_vec()));
        assert!(!pool.add(b"a".to_vec()));
        assert!(pool.add(b"b".to_vec()));
        assert_eq!(pool.iter().collect::<Vec<_>>(), [b"a", b"b"]);
        pool.retain(|e| e != b"a");
        assert!(pool.add(b"a".to_vec()), "a dropped entry may come again");
        for i in 0..MAX_PENDING_ENTRIES as u32 {
            pool.add(i.to_be_bytes().to_vec());
        }
        assert_eq!(pool.iter().count(), MAX_PENDING_ENTRIES);
        assert!(pool.iter().all(|e| e != b"b"), "the oldest went first");
    }
}
