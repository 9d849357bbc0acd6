//! Recycled byte buffers for the blob data path: a piece read from a peer or from the store,
//! a chunk read from the upstream on its way to the temp file (which hashes it as it writes it).
//!
//! Each piece used to be a fresh 1 MiB `vec![0; len]`: the allocator hands such a block out
//! as new pages (one page fault and one page clear per 4 KiB) or zeroes it, and hands it back
//! to the system when it is freed, so every MiB that crossed a node paid for it again. A
//! profile of a node-to-node transfer put that (page faults, page clears, memset) at a fifth
//! of the receiving network thread's time. Buffers given back here are kept (up to `KEPT`)
//! and handed out again, at their old length when it suffices: the caller overwrites the
//! bytes it uses, so nothing is zeroed.

use std::ops::Range;
use std::sync::{Arc, Mutex};

/// A range of a buffer shared between threads: how a download hands a piece (which peers may
/// be served from meanwhile) or an upstream chunk to its temp file without copying it.
pub type SharedSlice = (Arc<Vec<u8>>, Range<usize>);

/// The most buffers kept for reuse: at most 16 MiB idle.
const KEPT: usize = 16;
/// Buffers smaller than this are not worth keeping.
const SMALLEST_KEPT: usize = 64 * 1024;
/// Buffers larger than this are not kept (a piece is 1 MiB; an upstream chunk 256 KiB).
const LARGEST_KEPT: usize = 1 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of exactly `len` bytes whose contents are unspecified (old bytes of a recycled
/// buffer, or zeroes): for a caller that fills all of them before it reads any, such as a
/// `read_exact` into it. Give it back with [`give`] when done.
pub fn take(len: usize) -> Vec<u8> {
    if len < SMALLEST_KEPT {
        return vec![0; len];
    }
    let recycled = {
        let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
        // The one with the fewest bytes to zero (none when it is that long already), then the
        // smallest.
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| (len.saturating_sub(b.len()), b.capacity()))
            .map(|(i, _)| i);
        best.map(|i| free.swap_remove(i))
    };
    match recycled {
        Some(mut buffer) => {
            if buffer.len() >= len {
                buffer.truncate(len);
            } else {
                buffer.resize(len, 0);
            }
            buffer
        }
        None => vec![0; len],
    }
}

/// Hands `buffer` back for reuse by [`take`] (dropped instead when it is small, huge, or
/// enough are kept already). Its bytes are not cleared: they are overwritten before use.
pub fn give(buffer: Vec<u8>) {
    if !(SMALLEST_KEPT..=LARGEST_KEPT).contains(&buffer.capacity()) {
        return;
    }
    let mut free = FREE.lock().unwrap_or_else(|p| p.into_inner());
    if free.len() < KEPT {
        free.push(buffer);
    }
}

/// Gives the buffer back when `shared` was its last holder.
pub fn give_shared(shared: Arc<Vec<u8>>) {
    if let Ok(buffer) = Arc::try_unwrap(shared) {
        give(buffer);
    }
}

/// Blocks this size and up are mapped for themselves by glibc's allocator once
/// [`keep_freed_memory`] ran (below: from its heaps, reused after a free).
const ALLOCATOR_MAP_FROM: usize = 4 << 20;

/// Asks the C allocator to keep freed memory for reuse instead of handing it back to the
/// system at once: call once when a node starts. glibc starts out returning any free block
/// above 128 KiB at the top of a heap to the system, and mapping every block of 128 KiB or
/// more by itself; so the buffers that libp2p's stream multiplexer and noise allocate per
/// frame, and any piece buffer not recycled here, came back as fresh pages, each a page fault
/// and a page clear (on this project's VM probably a fault in the host too). glibc raises both
/// limits when a mapped block is freed — mallopt(3), M_MMAP_THRESHOLD: "the threshold is
/// adjusted upward to the size of the freed chunk" and the trim threshold to twice that —
/// which freeing one block of `ALLOCATOR_MAP_FROM` does, without unsafe code. Other
/// allocators see one allocation and its free. Measured on a node-to-node transfer of 200 MiB
/// (`pyrsia-bench-reach transfer --no-quic`, four pairs of runs, glibc's dynamic limits off
/// with `MALLOC_TOP_PAD_` in the other run of each pair): 4.4–5.6 CPU seconds per GB against
/// 5.4–6.6.
pub fn keep_freed_memory() {
    let block = vec![0u8; ALLOCATOR_MAP_FROM];
    drop(std::hint::black_box(block));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_comes_back_at_the_length_asked() {
        let mut buffer = take(1 << 20);
        assert_eq!(buffer.len(), 1 << 20);
        buffer[0] = 7;
        let address = buffer.as_ptr();
        give(buffer);
        // Another test may take it first; when this one gets it, it is the same memory.
        let again = take(300_000);
        assert_eq!(again.len(), 300_000);
        if again.as_ptr() == address {
            assert_eq!(again[0], 7, "recycled bytes are not cleared");
        }
        let longer = take(2 << 20);
        assert_eq!(longer.len(), 2 << 20);
    }

    #[test]
    fn small_and_huge_buffers_are_not_kept() {
        give(vec![1; 100]);
        give(vec![1; 2 << 20]);
        let free = FREE.lock().unwrap();
        assert!(
            free.iter()
                .all(|b| (SMALLEST_KEPT..=LARGEST_KEPT).contains(&b.capacity()))
        );
    }
}
