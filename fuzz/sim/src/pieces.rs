//! How piece scheduling scales: a seeded, tick-based model of `n` nodes that all want one blob
//! of `pieces` pieces at the same moment. Every node can send and receive `link` pieces per
//! tick; the upstream link carries `upstream` pieces per tick in all.
//!
//! - [`Strategy::FromFetcher`] is what the nodes do today: the rendezvous winner fetches from
//!   the upstream and every other node asks it (and, once any node has the whole blob, that
//!   node too) for pieces. The fetcher's uplink is the bottleneck: time grows with `n`.
//! - [`Strategy::Swarm`] is the next step: a node serves any piece it holds, whole blob or
//!   not, and requesters pick the rarest pieces first among random holders, so every node's
//!   uplink works and time grows with log `n`.
//!
//! Both move each piece across the upstream link once. `pyrsia-sim pieces` prints the table
//! in BENCHMARKS.md.

use pyrsia_core::rng::Rng;

/// Which nodes serve pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Only the upstream fetcher and nodes holding the whole blob.
    FromFetcher,
    /// Any node holding the piece.
    Swarm,
}

/// The model's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes, the fetcher included.
    pub nodes: usize,
    /// Pieces in the blob.
    pub pieces: usize,
    /// Pieces a node sends, and receives, per tick.
    pub link: usize,
    /// Pieces the upstream link carries per tick.
    pub upstream: usize,
    /// The seed of every random choice.
    pub seed: u64,
}

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Ticks until the last node had every piece.
    pub ticks: u64,
    /// Pieces that crossed the upstream link.
    pub upstream_pieces: u64,
    /// Pieces sent between nodes.
    pub peer_pieces: u64,
}

/// Runs the model to completion.
pub fn run(strategy: Strategy, p: Params) -> Outcome {
    let mut rng = Rng::seed_from_u64(p.seed);
    let n = p.nodes;
    // have[node][piece]; node 0 is the rendezvous winner.
    let mut have = vec![vec![false; p.pieces]; n];
    let mut count = vec![0usize; n];
    let mut holders = vec![0usize; p.pieces];
    let mut outcome = Outcome {
        ticks: 0,
        upstream_pieces: 0,
        peer_pieces: 0,
    };
    let mut next_upstream = 0;
    while count.iter().any(|&c| c < p.pieces) {
        outcome.ticks += 1;
        // Which nodes may serve this tick, decided on last tick's state.
        let servers: Vec<usize> = (0..n)
            .filter(|&s| match strategy {
                Strategy::FromFetcher => s == 0 || count[s] == p.pieces,
                Strategy::Swarm => count[s] > 0,
            })
            .collect();
        let mut sent = vec![0usize; n];
        let mut arrivals: Vec<(usize, usize)> = Vec::new();
        let mut incoming = std::collections::HashSet::new();
        // Requesters in a random order each tick, so no node is always first.
        let mut order: Vec<usize> = (1..n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &node in order.iter().filter(|_| !servers.is_empty()) {
            let mut received = 0;
            let mut attempts = 0;
            while received < p.link && count[node] + received < p.pieces && attempts < 4 * p.link {
                attempts += 1;
                let server = servers[rng.below(servers.len() as u64) as usize];
                if server == node || sent[server] >= p.link {
                    continue;
                }
                // The rarest piece the server holds and the node lacks (ties: random start).
                let start = rng.below(p.pieces as u64) as usize;
                let piece = (0..p.pieces)
                    .map(|k| (start + k) % p.pieces)
                    .filter(|&x| have[server][x] && !have[node][x])
                    .filter(|&x| !incoming.contains(&(node, x)))
                    .min_by_key(|&x| holders[x]);
                if let Some(piece) = piece {
                    sent[server] += 1;
                    received += 1;
                    incoming.insert((node, piece));
                    arrivals.push((node, piece));
                }
            }
        }
        let mut receive = |node: usize, piece: usize| {
            if have[node][piece] {
                return false;
            }
            have[node][piece] = true;
            count[node] += 1;
            holders[piece] += 1;
            true
        };
        for (node, piece) in arrivals {
            if receive(node, piece) {
                outcome.peer_pieces += 1;
            }
        }
        // The fetcher pulls the next pieces from the upstream.
        for _ in 0..p.upstream {
            if next_upstream < p.pieces {
                receive(0, next_upstream);
                next_upstream += 1;
                outcome.upstream_pieces += 1;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: usize) -> Params {
        Params {
            nodes,
            pieces: 64,
            link: 4,
            upstream: 4,
            seed: 7,
        }
    }

    #[test]
    fn each_piece_crosses_the_upstream_once_and_runs_repeat() {
        for strategy in [Strategy::FromFetcher, Strategy::Swarm] {
            let a = run(strategy, params(20));
            assert_eq!(a.upstream_pieces, 64);
            assert_eq!(a, run(strategy, params(20)), "same seed, same run");
        }
    }

    #[test]
    fn the_swarm_outgrows_the_single_fetcher() {
        let star = run(Strategy::FromFetcher, params(100));
        let swarm = run(Strategy::Swarm, params(100));
        assert!(
            swarm.ticks * 3 < star.ticks,
            "swarm {swarm:?} star {star:?}"
        );
        let small = run(Strategy::Swarm, params(10));
        assert!(
            swarm.ticks < small.ticks * 3,
            "swarm time grows slowly: {small:?} → {swarm:?}"
        );
    }
}
