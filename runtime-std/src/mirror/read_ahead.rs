//! Reading an upstream body on a thread of its own, a few chunks ahead of the download that
//! writes and hashes them.
//!
//! The download's thread writes each chunk to the temp file and hashes it right after, while
//! the chunk is in that core's cache (`store::writer`). Reading the socket on the same thread
//! as well made a cold pull-through one serial chain on a 2-core machine; with the reads here,
//! the receive (the kernel's copy and the HTTP client's) runs on the other core meanwhile
//! (BENCHMARKS.md, "Hashing where the bytes are").

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

/// Chunks read and waiting for the download at most (one more is being filled): bounds the
/// memory a download holds ahead of its writes.
const AHEAD: usize = 2;

/// How reading a chunk ended.
pub(super) enum Filled {
    /// The chunk is full; the source may have more.
    Full,
    /// The source ended.
    Ended,
    /// The source failed (after the bytes counted).
    Broke(io::Error),
}

/// A chunk, the bytes of it that were read, and how reading it ended.
type Chunk = (Vec<u8>, usize, Filled);

/// An upstream body being read ahead; [`ReadAhead::next`] hands out its chunks in order.
/// Dropped early, its thread stops after its current read (each read is bounded by the
/// upstream client's read timeout), closing the connection.
pub(super) struct ReadAhead {
    chunks: Receiver<Chunk>,
    /// Set when dropped: the thread stops reading.
    abandoned: Arc<AtomicBool>,
}

impl ReadAhead {
    /// Starts reading `source` in chunks of `chunk_len` bytes (recycled buffers,
    /// [`crate::buffers`]) on a thread of its own.
    pub(super) fn start(mut source: Box<dyn Read + Send>, chunk_len: usize) -> ReadAhead {
        let (sender, chunks) = sync_channel::<Chunk>(AHEAD);
        let abandoned = Arc::new(AtomicBool::new(false));
        let stop = abandoned.clone();
        let spawned = std::thread::Builder::new()
            .name("upstream-read".into())
            .spawn(move || {
                loop {
                    let mut chunk = crate::buffers::take(chunk_len);
                    let (n, end) = fill(&mut source, &mut chunk, &stop);
                    let last = !matches!(end, Filled::Full);
                    if sender.send((chunk, n, end)).is_err() || last {
                        return;
                    }
                }
            });
        // Without the thread its sender is gone, and `next` reports the body broken.
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a thread to read the upstream");
        }
        ReadAhead { chunks, abandoned }
    }

    /// The next chunk (it blocks until it is read), the bytes of it that were read, and how
    /// reading it ended; after [`Filled::Ended`] or [`Filled::Broke`] there is no more.
    pub(super) fn next(&mut self) -> Chunk {
        self.chunks.recv().unwrap_or_else(|_| {
            let stopped = io::Error::other("the thread reading the upstream stopped");
            (Vec::new(), 0, Filled::Broke(stopped))
        })
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }
}

/// Reads from `source` until `buf` is full, the source ends or it fails, or `stop` is set:
/// one hand-off to the download per chunk rather than per read (an HTTP body reader returns
/// far less at a time). Returns the bytes read and how it ended.
fn fill(source: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> (usize, Filled) {
    let mut filled = 0;
    while filled < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return (filled, Filled::Broke(io::Error::other("no longer wanted")));
        }
        match source.read(&mut buf[filled..]) {
            Ok(0) => return (filled, Filled::Ended),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Filled::Broke(e)),
        }
    }
    (filled, Filled::Full)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that yields `data` a few bytes per read, then fails or ends.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return match self.fail_at_end {
                    true => Err(io::Error::other("connection reset")),
                    false => Ok(0),
                };
            }
            let n = buf.len().min(7).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn trickle(data: &[u8], fail_at_end: bool) -> Box<dyn Read + Send> {
        Box::new(Trickle {
            data: data.to_vec(),
            at: 0,
            fail_at_end,
        })
    }

    fn read_all(ahead: &mut ReadAhead) -> (Vec<u8>, Filled) {
        let mut out = Vec::new();
        loop {
            let (chunk, n, end) = ahead.next();
            out.extend_from_slice(&chunk[..n]);
            if !matches!(end, Filled::Full) {
                return (out, end);
            }
        }
    }

    #[test]
    fn hands_out_every_byte_in_order_then_the_end() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (bytes, end) = read_all(&mut ReadAhead::start(trickle(&data, false), 1000));
        assert_eq!(bytes, data);
        assert!(matches!(end, Filled::Ended));
    }

    /// A source that never ends, one byte per read, counting its reads.
    struct Endless(Arc<std::sync::atomic::AtomicUsize>);

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(1));
            buf[0] = 1;
            Ok(1)
        }
    }

    #[test]
    fn a_dropped_read_ahead_stops_reading_its_source() {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ahead = ReadAhead::start(Box::new(Endless(reads.clone())), 1 << 20);
        while reads.load(Ordering::Relaxed) < 10 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        drop(ahead);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let after_drop = reads.load(Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(
            reads.load(Ordering::Relaxed),
            after_drop,
            "the thread kept reading a body nobody wants"
        );
    }

    #[test]
    fn a_broken_source_is_reported_after_the_bytes_it_gave() {
        let data = vec![9u8; 2500];
        let (bytes, end) = read_all(&mut ReadAhead::start(trickle(&data, true), 1000));
        assert_eq!(bytes, data);
        assert!(matches!(end, Filled::Broke(e) if e.to_string() == "connection reset"));
    }
}
