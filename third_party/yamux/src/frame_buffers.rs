// Pyrsia patch (see PYRSIA.md): not part of yamux 0.14.1.

//! Frame bodies recycled on the thread that moves them, instead of one allocation per frame.
//!
//! yamux 0.14.1 allocates every frame body it reads as a zeroed vector (`vec![0; len]`) and
//! every body it writes as a copy of the caller's bytes (`Vec::from`), and frees each once it
//! is read out or written: a malloc, a free and (on the read side) a memset per 16 KiB, which
//! a profile of a 16-node Pyrsia swarm put at about 4% of all CPU. The bodies a connection
//! reads and writes are handed back here when done and handed out again, on the same thread
//! (a connection and its streams are polled by one task), at their old length when it
//! suffices: every byte handed out is overwritten before it is read, so none is zeroed again.

use std::cell::RefCell;

/// The most bodies kept per thread (1 MiB of 16 KiB bodies idle; 4 MiB at most).
const KEPT: usize = 64;
/// Bodies smaller than this are not worth keeping (window updates carry none; small writes
/// are cheap to allocate).
const SMALLEST_KEPT: usize = 4 * 1024;
/// Bodies larger than this are not kept (frame bodies are at most the split-send size,
/// 16 KiB by default, on the writer; what a peer sends may be larger, up to 1 MiB).
const LARGEST_KEPT: usize = 64 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of exactly `len` bytes whose contents are unspecified (bytes of an earlier frame,
/// or zeroes): for a caller that overwrites all of them before any is read.
pub(crate) fn take(len: usize) -> Vec<u8> {
    if !(SMALLEST_KEPT..=LARGEST_KEPT).contains(&len) {
        return vec![0; len];
    }
    let recycled = FREE.with(|free| {
        let mut free = free.borrow_mut();
        let at = free.iter().rposition(|b| b.capacity() >= len)?;
        Some(free.swap_remove(at))
    });
    match recycled {
        Some(mut buffer) => {
            // Only bytes beyond the old length are written (zeroes); none when it suffices.
            buffer.resize(len, 0);
            buffer
        }
        None => vec![0; len],
    }
}

/// A buffer holding a copy of `bytes`: a frame body to write (a fresh copy, as yamux made
/// it, when it is too small or too large to keep).
pub(crate) fn copy_of(bytes: &[u8]) -> Vec<u8> {
    if !(SMALLEST_KEPT..=LARGEST_KEPT).contains(&bytes.len()) {
        return bytes.to_vec();
    }
    let mut buffer = take(bytes.len());
    buffer.copy_from_slice(bytes);
    buffer
}

/// Hands `buffer` back for [`take`] on this thread (dropped when small, large, or enough are
/// kept already).
pub(crate) fn give(buffer: Vec<u8>) {
    if !(SMALLEST_KEPT..=LARGEST_KEPT).contains(&buffer.capacity()) {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() < KEPT {
            free.push(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_handed_out_again_at_the_length_asked() {
        let mut first = take(16 * 1024);
        first.fill(7);
        let address = first.as_ptr();
        give(first);
        let again = take(8 * 1024);
        assert_eq!(again.as_ptr(), address, "the same allocation");
        assert_eq!(again.len(), 8 * 1024);
        give(again);
        // Longer than its old length, within its capacity: the same allocation, the new
        // tail zeroed.
        let longer = take(16 * 1024);
        assert_eq!(longer.as_ptr(), address);
        assert_eq!(longer.len(), 16 * 1024);
        assert!(longer[8 * 1024..].iter().all(|&b| b == 0));
        assert_eq!(copy_of(&[1, 2, 3]), vec![1, 2, 3], "small ones too");
    }

    #[test]
    fn at_most_kept_buffers_are_kept() {
        for _ in 0..KEPT + 10 {
            give(vec![0; 16 * 1024]);
        }
        assert_eq!(FREE.with(|free| free.borrow().len()), KEPT);
        give(vec![0; LARGEST_KEPT + 1]);
        give(vec![0; 10]);
        assert_eq!(FREE.with(|free| free.borrow().len()), KEPT);
    }
}
