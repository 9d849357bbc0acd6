//! Who a fetch asks, and how long it waits, before its schedule starts: the piece hash list
//! and the first piece (which tells the blob's size) are asked of one holder at a time, and
//! without a piece list one more holder is asked for the first byte to confirm the size. The
//! node's memory of stalled peers ([`super::StalledPeers`]) orders them, and a holder that
//! stays silent is remembered there.

use alloc::vec::Vec;

use super::longest_late_wait;
use crate::time::Duration;

/// A provider of the blob as the handshake sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Whether it may be asked: not given up in this fetch, and it holds what is asked.
    pub holds: bool,
    /// Whether the node remembers it stalling a fetch lately.
    pub stalled_lately: bool,
}

/// The candidates to ask in turn (by index), each with how long it is waited for: those
/// that hold what is asked, the ones remembered stalling last; each but the last for
/// [`longest_late_wait`] of `timeout` (as long as a piece may wait before it is late, before
/// any answer tells better), the last for the whole timeout (nobody else to ask). A staller
/// asked first then costs a late piece, not the timeout.
pub fn turns(candidates: &[Candidate], timeout: Duration) -> Vec<(usize, Duration)> {
    let eligible = |remembered: bool| {
        (0..candidates.len())
            .filter(move |&i| candidates[i].holds && candidates[i].stalled_lately == remembered)
    };
    let order: Vec<usize> = eligible(false).chain(eligible(true)).collect();
    let last = order.len().saturating_sub(1);
    order
        .into_iter()
        .enumerate()
        .map(|(turn, i)| {
            let wait = if turn < last {
                longest_late_wait(timeout)
            } else {
                timeout
            };
            (i, wait)
        })
        .collect()
}

/// The candidate asked to confirm the size the candidate `first` claimed (without a piece
/// list nothing else proves it), and how long it is waited for: another one that holds the
/// whole blob and is not remembered stalling (it would not answer either), for
/// [`longest_late_wait`] of `timeout`; when it stays silent, the size stands. `None`: nobody
/// to ask, the size stands.
pub fn size_check(
    first: usize,
    candidates: &[Candidate],
    timeout: Duration,
) -> Option<(usize, Duration)> {
    (0..candidates.len())
        .find(|&i| i != first && candidates[i].holds && !candidates[i].stalled_lately)
        .map(|i| (i, longest_late_wait(timeout)))
}

/// How a candidate answered a handshake request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// It answered (well or not; a bad answer has rules of its own).
    Answered,
    /// It answered busy until its wait ran out: it serves, others first.
    Busy,
    /// Nothing came within its wait.
    Silent,
}

/// Whether the node remembers the candidate stalling after `reply`: silence only (a busy
/// peer is serving others, not stalling).
pub fn remembered_after(reply: Reply) -> bool {
    reply == Reply::Silent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(holds: bool, stalled_lately: bool) -> Candidate {
        Candidate {
            holds,
            stalled_lately,
        }
    }

    #[test]
    fn remembered_stallers_come_last_and_only_the_last_gets_the_whole_timeout() {
        let timeout = Duration::from_secs(5);
        let quarter = Duration::from_millis(1_250);
        let candidates = [
            candidate(true, true),
            candidate(true, false),
            candidate(false, false),
            candidate(true, false),
        ];
        assert_eq!(
            turns(&candidates, timeout),
            [(1, quarter), (3, quarter), (0, timeout)]
        );
        assert_eq!(turns(&[], timeout), []);
        assert_eq!(turns(&[candidate(true, true)], timeout), [(0, timeout)]);
    }

    #[test]
    fn the_size_check_skips_the_first_and_remembered_stallers() {
        let timeout = Duration::from_secs(5);
        let candidates = [
            candidate(true, false),
            candidate(true, true),
            candidate(true, false),
        ];
        assert_eq!(
            size_check(0, &candidates, timeout),
            Some((2, Duration::from_millis(1_250)))
        );
        assert_eq!(size_check(1, &candidates[1..], timeout), None);
    }

    #[test]
    fn only_silence_is_remembered() {
        assert!(remembered_after(Reply::Silent));
        assert!(!remembered_after(Reply::Busy));
        assert!(!remembered_after(Reply::Answered));
    }
}
