//! A seeded message network: every send is dropped, delayed (which reorders) or duplicated
//! according to [`Faults`] and the seed; deliveries come out in a total order of
//! `(deliver_at, sequence)`, so the same seed always yields the same history.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};

/// Index of a simulated node.
pub type NodeIndex = usize;

/// How unreliable the network is. Probabilities are in parts per thousand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Chance a message is lost.
    pub drop_per_mille: u64,
    /// Chance a message is delivered twice.
    pub duplicate_per_mille: u64,
    /// Shortest delivery delay.
    pub delay_min: Duration,
    /// Longest delivery delay.
    pub delay_max: Duration,
}

impl Faults {
    /// A network that delivers everything exactly once after `delay`.
    pub const fn reliable(delay: Duration) -> Self {
        Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_min: delay,
            delay_max: delay,
        }
    }
}

/// Who cannot reach whom while the network is partitioned (PROTOCOL cases 30, 31).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    /// Two sides; messages cross only within a side (symmetric).
    Split(Vec<bool>),
    /// Nodes on the `true` side cannot send to the `false` side; the other way works
    /// (asymmetric).
    OneWay(Vec<bool>),
    /// One node can neither send nor receive.
    Isolate(NodeIndex),
    /// Two sides as [`Partition::Split`], except that the nodes listed reach, and are
    /// reached by, everyone (byzantine members that talk to both sides of a split they
    /// exploit).
    SplitExcept(Vec<bool>, Vec<NodeIndex>),
}

impl Partition {
    /// Whether a message from `from` to `to` is lost.
    pub fn blocks(&self, from: NodeIndex, to: NodeIndex) -> bool {
        match self {
            Partition::Split(side) => side.get(from) != side.get(to),
            Partition::OneWay(side) => {
                side.get(from) == Some(&true) && side.get(to) == Some(&false)
            }
            Partition::Isolate(node) => from == *node || to == *node,
            Partition::SplitExcept(side, bridges) => {
                !bridges.contains(&from) && !bridges.contains(&to) && side.get(from) != side.get(to)
            }
        }
    }
}

/// A message in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<M> {
    /// When it arrives.
    pub at: Instant,
    /// Sender.
    pub from: NodeIndex,
    /// Receiver.
    pub to: NodeIndex,
    /// Payload.
    pub message: M,
}

/// A delivery waiting in the queue, ordered by `(at, sequence)` alone.
struct Queued<M> {
    sequence: u64,
    delivery: Delivery<M>,
}

impl<M> Queued<M> {
    fn key(&self) -> (Instant, u64) {
        (self.delivery.at, self.sequence)
    }
}

impl<M> PartialEq for Queued<M> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<M> Eq for Queued<M> {}

impl<M> PartialOrd for Queued<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Queued<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The network: a priority queue of deliveries driven by a seeded RNG.
pub struct SimNet<M> {
    rng: Rng,
    faults: Faults,
    sequence: u64,
    in_flight: BinaryHeap<Reverse<Queued<M>>>,
    partition: Option<Partition>,
    /// Messages lost so far.
    pub dropped: u64,
}

impl<M: Clone> SimNet<M> {
    /// A network whose every choice derives from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        SimNet {
            rng: Rng::seed_from_u64(seed),
            faults,
            sequence: 0,
            in_flight: BinaryHeap::new(),
            partition: None,
            dropped: 0,
        }
    }

    /// Sends `message` at `now`; it may be dropped, delayed or duplicated.
    pub fn send(&mut self, now: Instant, from: NodeIndex, to: NodeIndex, message: M) {
        let cut = self.partition.as_ref().is_some_and(|p| p.blocks(from, to));
        if cut || self.rng.chance(self.faults.drop_per_mille, 1000) {
            self.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.faults.duplicate_per_mille, 1000) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let spread = self
                .faults
                .delay_max
                .as_micros()
                .saturating_sub(self.faults.delay_min.as_micros());
            let delay = self.faults.delay_min.as_micros() + self.rng.below(spread + 1);
            let at = now + Duration::from_micros(delay);
            self.sequence += 1;
            let delivery = Delivery {
                at,
                from,
                to,
                message: message.clone(),
            };
            self.in_flight.push(Reverse(Queued {
                sequence: self.sequence,
                delivery,
            }));
        }
    }

    /// When the next message arrives, if any is in flight.
    pub fn next_at(&self) -> Option<Instant> {
        self.in_flight.peek().map(|Reverse(q)| q.delivery.at)
    }

    /// Takes the next delivery in `(time, sequence)` order.
    pub fn pop(&mut self) -> Option<Delivery<M>> {
        self.in_flight.pop().map(|Reverse(q)| q.delivery)
    }

    /// Messages still in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Partitions the network: from now on messages `partition` blocks are lost.
    pub fn partition(&mut self, partition: Partition) {
        self.partition = Some(partition);
    }

    /// The network heals at `now`: the partition ends, from then on it behaves as `faults`
    /// says, and what is still in flight is sent again under them (the same seed still gives
    /// the same history).
    pub fn heal(&mut self, now: Instant, faults: Faults) {
        self.faults = faults;
        self.partition = None;
        let pending: Vec<Delivery<M>> = std::iter::from_fn(|| self.pop()).collect();
        for d in pending {
            self.send(now, d.from, d.to, d.message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_core::digest::Hasher;

    fn lossy() -> Faults {
        Faults {
            drop_per_mille: 100,
            duplicate_per_mille: 50,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(50),
        }
    }

    /// Runs a fixed workload and hashes every delivery: the run's trace.
    fn trace(seed: u64) -> (String, u64, usize) {
        let mut net = SimNet::new(seed, lossy());
        for i in 0..1_000u64 {
            net.send(
                Instant::from_millis(i),
                (i % 4) as usize,
                ((i + 1) % 4) as usize,
                i,
            );
        }
        let mut hasher = Hasher::new();
        let mut delivered = 0;
        let mut last = Instant::ZERO;
        while let Some(d) = net.pop() {
            assert!(d.at >= last, "deliveries must come out in time order");
            assert!(
                d.at >= Instant::from_millis(d.message),
                "no delivery before its send"
            );
            assert!(d.at <= Instant::from_millis(d.message + 50));
            last = d.at;
            hasher.update(&d.at.as_micros().to_le_bytes());
            hasher.update(&d.message.to_le_bytes());
            delivered += 1;
        }
        (hasher.finish().to_string(), net.dropped, delivered)
    }

    #[test]
    fn same_seed_same_trace() {
        assert_eq!(trace(7), trace(7));
        assert_ne!(trace(7).0, trace(8).0);
    }

    #[test]
    fn faults_happen_at_their_rates() {
        let (_, dropped, delivered) = trace(3);
        assert!((60..140).contains(&dropped), "dropped {dropped}");
        let sent = 1_000 - dropped as usize;
        let duplicates = delivered - sent;
        assert!((20..80).contains(&duplicates), "duplicates {duplicates}");
    }

    #[test]
    fn partitions_cut_what_they_say_until_healed() {
        let split = Partition::Split(vec![true, true, false, false]);
        assert!(!split.blocks(0, 1) && split.blocks(1, 2) && split.blocks(3, 0));
        let one_way = Partition::OneWay(vec![true, false]);
        assert!(one_way.blocks(0, 1) && !one_way.blocks(1, 0));
        let bridged = Partition::SplitExcept(vec![true, true, false, false], vec![1]);
        assert!(bridged.blocks(0, 2) && !bridged.blocks(1, 2) && !bridged.blocks(3, 1));
        let isolated = Partition::Isolate(2);
        assert!(isolated.blocks(2, 0) && isolated.blocks(1, 2) && !isolated.blocks(0, 1));
        let mut net = SimNet::new(1, Faults::reliable(Duration::from_millis(1)));
        net.partition(split);
        net.send(Instant::ZERO, 0, 2, 1u8);
        net.send(Instant::ZERO, 0, 1, 2u8);
        assert_eq!((net.len(), net.dropped), (1, 1));
        net.heal(Instant::ZERO, Faults::reliable(Duration::from_millis(1)));
        net.send(Instant::ZERO, 0, 2, 3u8);
        assert_eq!(net.len(), 2);
    }

    #[test]
    fn reliable_network_delivers_everything_once_in_order() {
        let mut net = SimNet::new(1, Faults::reliable(Duration::from_millis(5)));
        for i in 0..100u32 {
            net.send(Instant::from_millis(u64::from(i)), 0, 1, i);
        }
        let got: Vec<u32> = std::iter::from_fn(|| net.pop())
            .map(|d| d.message)
            .collect();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(net.is_empty());
    }
}
