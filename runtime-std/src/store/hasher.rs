//! Hashing on a thread of its own, so that a download's SHA-256 overlaps its network and disk
//! work instead of adding to it (on two cores the difference is most of a core).

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use pyrsia_core::digest::{Digest, Verification, Verifier};

/// Chunks in flight to the hashing thread at most; bounds the memory a writer holds (16 MiB
/// when the chunks are 1 MiB pieces from peers, 4 MiB of 256 KiB chunks from the upstream).
const QUEUE_CHUNKS: usize = 16;

/// Bytes for the hashing thread: a range of a buffer it shares with the writer, given back
/// for reuse ([`crate::buffers`]) once hashed when nothing else holds it.
type Chunk = crate::buffers::SharedSlice;

/// A [`Verifier`] fed from the writing thread and run on another.
pub(super) struct BackgroundVerifier {
    chunks: Option<SyncSender<Chunk>>,
    worker: Option<JoinHandle<Verification>>,
    bytes_seen: u64,
}

impl BackgroundVerifier {
    /// Starts a hashing thread checking against `expected`.
    pub(super) fn start(expected: Digest) -> io::Result<Self> {
        let (chunks, received) = sync_channel::<Chunk>(QUEUE_CHUNKS);
        let worker = std::thread::Builder::new()
            .name("blob-hash".into())
            .spawn(move || {
                let mut verifier = Verifier::new(expected);
                for (bytes, range) in received {
                    verifier.update(&bytes[range]);
                    crate::buffers::give_shared(bytes);
                }
                verifier.finish()
            })?;
        Ok(BackgroundVerifier {
            chunks: Some(chunks),
            worker: Some(worker),
            bytes_seen: 0,
        })
    }

    /// Queues a copy of `data` for hashing (blocks when the hasher is behind).
    pub(super) fn update(&mut self, data: &[u8]) -> io::Result<()> {
        let mut copy = crate::buffers::take(data.len());
        copy.copy_from_slice(data);
        self.update_shared(Arc::new(copy), 0..data.len())
    }

    /// Queues `range` of `bytes` for hashing without copying it (blocks when the hasher is
    /// behind).
    pub(super) fn update_shared(
        &mut self,
        bytes: Arc<Vec<u8>>,
        range: Range<usize>,
    ) -> io::Result<()> {
        let chunks = self
            .chunks
            .as_ref()
            .ok_or_else(|| io::Error::other("verifier finished"))?;
        let len = range.len();
        chunks
            .send((bytes, range))
            .map_err(|_| io::Error::other("hashing thread stopped"))?;
        self.bytes_seen += len as u64;
        Ok(())
    }

    /// Bytes fed so far.
    pub(super) fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    /// Waits for the hash of everything fed and compares it.
    pub(super) fn finish(mut self) -> io::Result<Verification> {
        self.chunks = None;
        self.worker
            .take()
            .ok_or_else(|| io::Error::other("verifier finished"))?
            .join()
            .map_err(|_| io::Error::other("hashing thread panicked"))
    }
}

impl Drop for BackgroundVerifier {
    fn drop(&mut self) {
        // Closing the channel ends the thread; it is not waited for.
        self.chunks = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_and_mismatches_like_the_inline_verifier() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let digest = Digest::sha256(&data);
        let mut v = BackgroundVerifier::start(digest).unwrap();
        for chunk in data.chunks(65_536) {
            v.update(chunk).unwrap();
        }
        assert_eq!(v.bytes_seen(), data.len() as u64);
        assert_eq!(v.finish().unwrap(), Verification::Match);

        let mut v = BackgroundVerifier::start(digest).unwrap();
        v.update(&data[1..]).unwrap();
        assert!(matches!(v.finish().unwrap(), Verification::Mismatch { .. }));
    }
}
