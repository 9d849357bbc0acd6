//! Reopening a fjall database that a failed write has poisoned.
//!
//! fjall marks a database poisoned on the first journal write or sync that fails (a full
//! disk, an I/O error) and refuses every write after that for as long as the handle lives.
//! Without this module, a disk that filled up for a minute would stop the node's store and
//! log from writing until an operator restarted the node.
//!
//! [`Reopenable`] holds the database and its keyspaces (a [`Tables`]) behind a lock. Its owner
//! calls [`Reopenable::reopen_if_poisoned`] periodically. Once the filesystem has room
//! again, that call drops the handles and opens the directory anew. fjall replays its
//! journal and drops a torn tail. The owner then reconciles what the disk holds with what
//! it holds in memory: a write that failed may or may not have reached the disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use fjall::{Database, PersistMode};

/// How long a reopen waits for other threads to finish with the old handles before it gives
/// up until the next attempt.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A database and its keyspaces, opened together.
pub(crate) trait Tables: Sized {
    /// Opens (or creates) the database in `path` and its keyspaces.
    fn open(path: &Path) -> fjall::Result<Self>;
    /// The database, to probe and persist.
    fn database(&self) -> &Database;
}

/// A fjall database that can be dropped and opened again while the node runs.
pub(crate) struct Reopenable<T> {
    path: PathBuf,
    /// `None` only between dropping the old handles and a failed reopen.
    current: RwLock<Option<Arc<T>>>,
}

impl<T: Tables> Reopenable<T> {
    /// Opens the database in `path`.
    pub(crate) fn open(path: PathBuf) -> fjall::Result<Self> {
        let tables = T::open(&path)?;
        Ok(Reopenable {
            path,
            current: RwLock::new(Some(Arc::new(tables))),
        })
    }

    /// The current handles. Do not hold them across a wait on another lock: a reopen waits
    /// for every holder to let go (up to [`DRAIN_TIMEOUT`]).
    pub(crate) fn get(&self) -> fjall::Result<Arc<T>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(fjall::Error::Poisoned)
    }

    /// Whether writes are refused: fjall poisoned the database, or a reopen failed.
    pub(crate) fn is_poisoned(&self) -> bool {
        match self.get() {
            // A buffer flush is cheap, and the first thing it checks is the poison flag.
            Ok(tables) => matches!(
                tables.database().persist(PersistMode::Buffer),
                Err(fjall::Error::Poisoned)
            ),
            Err(_) => true,
        }
    }

    /// When writes are refused and the filesystem has at least `min_free` bytes free, drops
    /// the handles and opens the database again. Returns whether it did. The caller holds
    /// whatever lock orders its writes, and reconciles the reopened database with its memory.
    pub(crate) fn reopen_if_poisoned(&self, min_free: u64) -> fjall::Result<bool> {
        if !self.is_poisoned() || free_space(&self.path) < min_free {
            return Ok(false);
        }
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.take() {
            // fjall's lock file allows one open database per directory: every clone of the
            // old handles must be gone before the directory is opened again.
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while Arc::strong_count(&old) > 1 {
                if Instant::now() >= deadline {
                    *current = Some(old);
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let tables = T::open(&self.path)?;
        *current = Some(Arc::new(tables));
        Ok(true)
    }
}

/// Free bytes (for unprivileged users) on the filesystem holding `path`; 0 when unknown.
pub(crate) fn free_space(path: &Path) -> u64 {
    rustix::fs::statvfs(path).map_or(0, |stat| stat.f_bavail * stat.f_frsize.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjall::{Keyspace, KeyspaceCreateOptions};

    struct One {
        db: Database,
        keys: Keyspace,
    }

    impl Tables for One {
        fn open(path: &Path) -> fjall::Result<Self> {
            let db = Database::builder(path).open()?;
            Ok(One {
                keys: db.keyspace("keys", KeyspaceCreateOptions::default)?,
                db,
            })
        }

        fn database(&self) -> &Database {
            &self.db
        }
    }

    #[test]
    fn a_healthy_database_is_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let tables = Reopenable::<One>::open(dir.path().join("db")).unwrap();
        let held = tables.get().unwrap();
        held.keys.insert("k", "v").unwrap();
        assert!(!tables.is_poisoned());
        assert!(!tables.reopen_if_poisoned(0).unwrap(), "nothing to recover");
        // The handles held before are still the current ones.
        assert!(Arc::ptr_eq(&held, &tables.get().unwrap()));
        assert_eq!(held.keys.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn free_space_is_known_for_a_real_directory_and_zero_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_space(dir.path()) > 0);
        assert_eq!(free_space(&dir.path().join("missing")), 0);
    }
}
