//! The member protocol's time rules and per-member budgets, written once here so that the
//! daemon and the simulation apply the same ones (docs/PROTOCOL.md §3.2).
//!
//! Heights are the Unix time of the last final checkpoint, so a message's height is a claim
//! about time: nothing honest is timed later than the skew allows past this member's clock,
//! and a member keeps only a bounded share of any table for each other member, so one member's
//! junk (proposals timed near `u64::MAX`, floods of values) can never crowd out the others'.

use alloc::collections::BTreeMap;

use crate::identity::KeyId;
use crate::rate::TokenBucket;

/// How far ahead of this member's wall clock another member's clock may be: a batch timed
/// later, or a message for a later height, is refused (PROTOCOL case 29: ±5 min tolerated).
pub const MAX_CLOCK_SKEW_SECS: u64 = 600;

/// Values (proposed batches) and cosigned checkpoint heads one member may have in this
/// member's tables for the current and future heights.
pub const VALUES_PER_MEMBER: usize = 64;

/// Messages of later heights kept per member until this member reaches them.
pub const FUTURE_MESSAGES_PER_MEMBER: usize = 256;

/// Entries one member may have waiting in this member's mempool, and their bytes.
pub const MEMPOOL_ENTRIES_PER_MEMBER: usize = 128;
/// See [`MEMPOOL_ENTRIES_PER_MEMBER`].
pub const MEMPOOL_BYTES_PER_MEMBER: usize = 2 << 20;

/// `BuildRequest`s one requester may have in one batch: members refuse a batch with more, so
/// a member asking for junk at full rate gets a bounded share of the log.
pub const REQUESTS_PER_MEMBER_PER_BATCH: usize = 32;

/// Requests of one requester that may be open (neither committed nor unverifiable) at once:
/// each open request is a build round on every member, so a flood of them is refused here.
pub const OPEN_REQUESTS_PER_MEMBER: usize = 256;

/// Builds this member runs at once; further asks wait for the round's next deadline.
pub const MAX_CONCURRENT_BUILDS: usize = 4;

/// Whether a `BuildRequest` of `requester` may join a batch in which it already has
/// `in_batch` requests, while `open` of its requests are open in the log.
pub fn request_allowed(in_batch: usize, open: usize) -> bool {
    in_batch < REQUESTS_PER_MEMBER_PER_BATCH && open + in_batch < OPEN_REQUESTS_PER_MEMBER
}

/// Whether a message for consensus `height` (a checkpoint time) can come from an honest
/// member whose clock is within the skew of `now_secs`.
pub fn height_plausible(height: u64, now_secs: u64) -> bool {
    height <= now_secs.saturating_add(MAX_CLOCK_SKEW_SECS)
}

/// Whether a batch timed `timestamp` may be decided at `height` (the last final checkpoint's
/// time) when this member's clock says `now_secs`: later than the last final checkpoint, no
/// later than the skew allows, and, for an empty batch (a heartbeat that only refreshes the
/// checkpoint's time), only once half of `refresh_secs` has passed since that checkpoint.
pub fn batch_time_ok(
    height: u64,
    timestamp: u64,
    empty: bool,
    now_secs: u64,
    refresh_secs: u64,
) -> bool {
    let heartbeat_allowed = now_secs >= height.saturating_add(refresh_secs / 2);
    timestamp > height && height_plausible(timestamp, now_secs) && (!empty || heartbeat_allowed)
}

/// Member messages per second each member may have relayed and handled (sustained), and the
/// burst above that: the network ignores (neither relays nor delivers) the excess, so a member
/// flooding the topic costs the others a signature check per message and nothing else. Honest
/// members send a few messages per height, plus resends.
pub const MEMBER_MESSAGES_PER_SEC: u64 = 100;
/// See [`MEMBER_MESSAGES_PER_SEC`].
pub const MEMBER_MESSAGES_BURST: u64 = 400;

/// Which of a member's budgets a message is charged to. Votes have their own, so that a
/// member submitting (or forging) entries at full rate never gets its own votes dropped at
/// some members and not others — and so never leaves honest members locked on a quorum the
/// others can never see (the relays of its votes would be dropped as well); found by the
/// member-node simulation (seed 111, 7 members, two forgers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageClass {
    /// Proposals, prevotes and precommits.
    Vote,
    /// Submissions, attestations and endorsements.
    Other,
}

/// A token bucket per member and [`MessageClass`] over [`MEMBER_MESSAGES_PER_SEC`] and
/// [`MEMBER_MESSAGES_BURST`]; time comes in as monotonic microseconds.
#[derive(Clone, Debug, Default)]
pub struct RateLimit {
    buckets: BTreeMap<(KeyId, MessageClass), TokenBucket>,
}

impl RateLimit {
    /// Whether `member` may send one more message of `class` at `now_us`; charges it if so.
    pub fn allow(&mut self, member: KeyId, class: MessageClass, now_us: u64) -> bool {
        self.buckets
            .entry((member, class))
            .or_insert_with(|| TokenBucket::full(MEMBER_MESSAGES_BURST, now_us))
            .allow(now_us, MEMBER_MESSAGES_PER_SEC, MEMBER_MESSAGES_BURST)
    }
}

/// How much of a table each member holds: a count per member against a fixed budget.
/// `take` before keeping something a member sent; `reset` when the table is emptied (a new
/// height).
#[derive(Clone, Debug, Default)]
pub struct Budget {
    used: BTreeMap<KeyId, usize>,
}

impl Budget {
    /// Charges one item to `member` if it has fewer than `limit`; false (keep nothing) if not.
    pub fn take(&mut self, member: KeyId, limit: usize) -> bool {
        let used = self.used.entry(member).or_default();
        if *used >= limit {
            return false;
        }
        *used += 1;
        true
    }

    /// Gives one item back (it left the table).
    pub fn give_back(&mut self, member: &KeyId) {
        if let Some(used) = self.used.get_mut(member) {
            *used = used.saturating_sub(1);
        }
    }

    /// What `member` holds now.
    pub fn used(&self, member: &KeyId) -> usize {
        self.used.get(member).copied().unwrap_or(0)
    }

    /// Forgets every charge.
    pub fn reset(&mut self) {
        self.used.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_future_heights_and_batches_are_implausible() {
        let now = 1_700_000_000;
        assert!(height_plausible(now + MAX_CLOCK_SKEW_SECS, now));
        assert!(!height_plausible(now + MAX_CLOCK_SKEW_SECS + 1, now));
        assert!(!height_plausible(u64::MAX, now));
        assert!(batch_time_ok(now - 10, now, false, now, 3600));
        assert!(
            !batch_time_ok(now - 10, now - 10, false, now, 3600),
            "not later"
        );
        assert!(
            !batch_time_ok(now - 10, u64::MAX, false, now, 3600),
            "too far ahead"
        );
        assert!(
            !batch_time_ok(now - 10, now, true, now, 3600),
            "heartbeat too early"
        );
        assert!(batch_time_ok(now - 1800, now, true, now, 3600));
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_sustained_rate() {
        let (a, b) = (KeyId([1; 32]), KeyId([2; 32]));
        let mut limit = RateLimit::default();
        let other = MessageClass::Other;
        let burst = (0..10_000).take_while(|_| limit.allow(a, other, 0)).count() as u64;
        assert_eq!(burst, MEMBER_MESSAGES_BURST);
        assert!(
            limit.allow(b, other, 0),
            "another member has its own bucket"
        );
        assert!(
            limit.allow(a, MessageClass::Vote, 0),
            "a member's submissions never use up its votes' budget"
        );
        // One second later: the sustained rate, not more.
        let later = (0..10_000)
            .take_while(|_| limit.allow(a, other, 1_000_000))
            .count() as u64;
        assert_eq!(later, MEMBER_MESSAGES_PER_SEC);
    }

    #[test]
    fn a_budget_bounds_each_member_alone() {
        let (a, b) = (KeyId([1; 32]), KeyId([2; 32]));
        let mut budget = Budget::default();
        assert!((0..3).all(|_| budget.take(a, 3)));
        assert!(!budget.take(a, 3), "a's budget is spent");
        assert!(budget.take(b, 3), "b is not charged for a");
        budget.give_back(&a);
        assert!(budget.take(a, 3));
        budget.reset();
        assert_eq!(budget.used(&a), 0);
    }
}
