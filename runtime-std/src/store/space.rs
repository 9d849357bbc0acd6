//! Room for downloads: every byte a download writes to `tmp/` is counted against `--max-disk`
//! (with the stored blobs; least recently used ones are evicted to make room) and against
//! the filesystem's free space, of which a reserve is always left, so that the node's
//! databases never meet a full disk because of a download. A download that does not fit
//! fails cleanly; its temp file is removed.

use std::io;
use std::sync::atomic::Ordering;

use super::{Store, StoreEvent};

/// The least free space a download leaves on the store's filesystem.
pub const MIN_FREE_RESERVE: u64 = 16 << 20;
/// How many bytes a download writes between two checks of the filesystem's free space.
pub const FREE_SPACE_CHECK_EVERY: u64 = 1 << 20;

/// The free space kept on a filesystem of `total` bytes: 1%, at least [`MIN_FREE_RESERVE`].
pub fn free_space_reserve(total: u64) -> u64 {
    (total / 100).max(MIN_FREE_RESERVE)
}

impl Store {
    /// Counts `n` more download bytes, first making room for them under `--max-disk`
    /// (evicting least recently used blobs) and, when `check_disk`, checking the
    /// filesystem's free space. Fails with [`io::ErrorKind::StorageFull`] when they do not fit.
    pub(super) fn reserve_download(&self, n: u64, check_disk: bool) -> io::Result<()> {
        let in_flight = self.inner.in_flight.load(Ordering::SeqCst);
        if let Some(max) = self.stats().max_bytes {
            let victims = self.index().evict_to_fit(in_flight + n);
            for (digest, record) in victims {
                tracing::info!(%digest, size = record.size, "evicting least recently used blob to make room for a download");
                let _ = std::fs::remove_file(self.blob_path(&digest));
                let _ = (self.inner.tables.get()).and_then(|t| t.blobs.remove(digest.as_bytes()));
                self.notify(StoreEvent::Evicted(digest));
            }
            let stored = self.stats().bytes;
            if stored + in_flight + n > max {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "the download does not fit in --max-disk ({max} bytes: {stored} stored, {in_flight} downloading)"
                    ),
                ));
            }
        }
        if check_disk {
            let (free, total) = self.free_space()?;
            let reserve = free_space_reserve(total);
            if free < reserve + n {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "the disk is nearly full ({} MiB free, {} MiB kept for the node's databases)",
                        free >> 20,
                        reserve >> 20
                    ),
                ));
            }
        }
        self.inner.in_flight.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    /// Gives back download bytes counted by [`Store::reserve_download`].
    pub(super) fn release_download(&self, n: u64) {
        self.inner.in_flight.fetch_sub(n, Ordering::SeqCst);
    }

    /// Bytes downloads hold in `tmp/` now.
    pub fn downloading_bytes(&self) -> u64 {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Free bytes (for unprivileged users) and total bytes of the store's filesystem.
    fn free_space(&self) -> io::Result<(u64, u64)> {
        let stat = rustix::fs::statvfs(&self.inner.root).map_err(io::Error::from)?;
        let unit = stat.f_frsize.max(1);
        Ok((stat.f_bavail * unit, stat.f_blocks * unit))
    }
}
