//! The entries a member holds until a batch orders them: deduplicated, bounded per submitter,
//! and handed to the proposer fairly (round-robin over submitters, each one's oldest first),
//! so that one member submitting junk at full rate only ever evicts its own entries and never
//! takes an honest member's place in a batch.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use super::limits::{MEMPOOL_BYTES_PER_MEMBER, MEMPOOL_ENTRIES_PER_MEMBER};
use crate::digest::Digest;
use crate::identity::KeyId;

/// Entries waiting to be ordered, by submitter.
#[derive(Default)]
pub struct Mempool {
    queues: BTreeMap<KeyId, VecDeque<Vec<u8>>>,
    bytes: BTreeMap<KeyId, usize>,
    seen: BTreeSet<[u8; 32]>,
}

fn id(entry: &[u8]) -> [u8; 32] {
    *Digest::sha256(entry).as_bytes()
}

impl Mempool {
    /// Adds `entry` from `submitter` unless it waits already (from anyone); says whether it is
    /// new. Past the submitter's quota its own oldest entries leave (it submits them again if
    /// they matter); an entry larger than the whole quota is refused.
    pub fn add(&mut self, submitter: KeyId, entry: Vec<u8>) -> bool {
        if entry.len() > MEMPOOL_BYTES_PER_MEMBER || !self.seen.insert(id(&entry)) {
            return false;
        }
        let queue = self.queues.entry(submitter).or_default();
        let bytes = self.bytes.entry(submitter).or_default();
        while queue.len() >= MEMPOOL_ENTRIES_PER_MEMBER
            || *bytes + entry.len() > MEMPOOL_BYTES_PER_MEMBER
        {
            let Some(old) = queue.pop_front() else { break };
            *bytes -= old.len();
            self.seen.remove(&id(&old));
        }
        *bytes += entry.len();
        queue.push_back(entry);
        true
    }

    /// Keeps only the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let seen = &mut self.seen;
        for (submitter, queue) in self.queues.iter_mut() {
            let bytes = self.bytes.entry(*submitter).or_default();
            queue.retain(|entry| {
                let kept = keep(entry);
                if !kept {
                    seen.remove(&id(entry));
                    *bytes -= entry.len();
                }
                kept
            });
        }
        self.queues.retain(|_, queue| !queue.is_empty());
        self.bytes.retain(|_, bytes| *bytes > 0);
    }

    /// The waiting entries in the order a proposer takes them: round-robin over submitters,
    /// each submitter's oldest first.
    pub fn fair_order(&self) -> Vec<&[u8]> {
        let mut order = Vec::with_capacity(self.len());
        let longest = self.queues.values().map(VecDeque::len).max().unwrap_or(0);
        for depth in 0..longest {
            for queue in self.queues.values() {
                if let Some(entry) = queue.get(depth) {
                    order.push(entry.as_slice());
                }
            }
        }
        order
    }

    /// Whether an entry accepted by `same` waits.
    pub fn any(&self, mut same: impl FnMut(&[u8]) -> bool) -> bool {
        self.queues.values().flatten().any(|e| same(e))
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// The entries `submitter` has waiting, oldest first.
    pub fn entries_from(&self, submitter: &KeyId) -> impl Iterator<Item = &[u8]> + '_ {
        self.queues
            .get(submitter)
            .into_iter()
            .flatten()
            .map(Vec::as_slice)
    }

    /// How many entries `submitter` has waiting.
    pub fn waiting_from(&self, submitter: &KeyId) -> usize {
        self.queues.get(submitter).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const HONEST: KeyId = KeyId([1; 32]);
    const FLOODER: KeyId = KeyId([2; 32]);

    #[test]
    fn entries_are_kept_once_and_a_flooder_evicts_only_its_own() {
        let mut pool = Mempool::default();
        assert!(pool.add(HONEST, b"a".to_vec()));
        assert!(
            !pool.add(FLOODER, b"a".to_vec()),
            "the same entry waits once"
        );
        assert!(pool.add(HONEST, b"b".to_vec()));
        for i in 0..10 * MEMPOOL_ENTRIES_PER_MEMBER as u32 {
            pool.add(FLOODER, i.to_be_bytes().to_vec());
        }
        assert_eq!(pool.waiting_from(&FLOODER), MEMPOOL_ENTRIES_PER_MEMBER);
        assert_eq!(pool.waiting_from(&HONEST), 2, "the honest entries stay");
        // The proposer takes them round-robin: honest entries lead, whatever the flood.
        let order = pool.fair_order();
        assert_eq!(order[0], b"a");
        assert_eq!(order[2], b"b");
        pool.retain(|e| e != b"a");
        assert!(
            pool.add(HONEST, b"a".to_vec()),
            "a dropped entry may come again"
        );
        assert!(!pool.add(HONEST, vec![0; MEMPOOL_BYTES_PER_MEMBER + 1]));
        assert!(pool.any(|e| e == b"b"));
    }
}
