//! A small in-memory cache of recently fetched documents (PyPI project pages, npm
//! packuments): within its time to live a document is answered without asking the upstream
//! or reading the store again. Bounded: when full, the oldest entries go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a fetched project page or packument is answered from memory by default
/// (`--index-ttl`). New releases show up at most this late; a CI fleet's thousand installs
/// cost the upstream one fetch a minute.
pub const DOCUMENT_TTL: Duration = Duration::from_secs(60);
/// The most documents held.
pub const DOCUMENTS_HELD: usize = 1024;

/// Documents by key, each with when it was fetched.
pub(crate) struct TtlCache<V> {
    entries: Mutex<HashMap<String, (Instant, Arc<V>)>>,
    ttl: Duration,
    capacity: usize,
}

impl<V> TtlCache<V> {
    /// An empty cache keeping entries for `ttl`, at most `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    /// The document under `key` if it was fetched less than the time to live ago.
    pub(crate) fn fresh(&self, key: &str) -> Option<Arc<V>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Keeps `value` under `key` from now on; the oldest entries go when the cache is full.
    pub(crate) fn insert(&self, key: String, value: Arc<V>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = self.ttl;
        entries.retain(|_, (at, _)| at.elapsed() < ttl);
        while entries.len() >= self.capacity {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_oldest_go_first() {
        let cache = TtlCache::new(Duration::from_millis(50), 2);
        cache.insert("a".into(), Arc::new(1));
        cache.insert("b".into(), Arc::new(2));
        cache.insert("c".into(), Arc::new(3));
        assert_eq!(cache.fresh("a"), None, "the oldest went");
        assert_eq!(cache.fresh("b").as_deref(), Some(&2));
        assert_eq!(cache.fresh("c").as_deref(), Some(&3));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.fresh("c"), None, "expired");
    }
}
