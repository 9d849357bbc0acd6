//! How piece scheduling scales: `n` nodes that all want one blob of `pieces` pieces at the
//! same tick, each choosing what to ask of whom with core's [`PieceSchedule`] — the state
//! machine the node's piece fetcher runs — over a random view of `view` peers plus the
//! rendezvous winner (node 0), which fetches the blob from the upstream. Every node sends at
//! most `link` pieces per tick (requests queue at a busy server); the upstream link carries
//! `upstream` pieces per tick.
//!
//! - [`Strategy::FromFetcher`] is what the nodes serve today: the winner serves the pieces it
//!   has fetched, other nodes only once they hold the whole blob. The winner's uplink is the
//!   bottleneck: time grows with `n`.
//! - [`Strategy::Swarm`] is the next step: every node announces the pieces it holds and
//!   serves them, so every uplink works and time grows slowly with `n`.
//!
//! Both move each piece across the upstream link once. `pyrsia-sim pieces` prints the table
//! in BENCHMARKS.md.

use std::collections::VecDeque;

use pyrsia_core::piece_schedule::{
    Filed, Have, PieceAnswer, PieceRequest, PieceSchedule, ScheduleConfig,
};
use pyrsia_core::pieces::PIECE_LEN;
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::Hash;

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
    /// Pieces a node sends per tick.
    pub link: usize,
    /// Pieces the upstream link carries per tick.
    pub upstream: usize,
    /// Peers each node knows besides the fetcher.
    pub view: usize,
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

/// A tick, on core's clock.
fn tick_time(tick: u64) -> Instant {
    Instant::from_millis(tick * 100)
}

/// One requesting node: its peers (node ids) and its schedule over them.
struct Requester {
    peers: Vec<usize>,
    schedule: PieceSchedule,
    /// Pieces received and not yet read (the schedule's window counts them).
    have: Vec<bool>,
    count: usize,
}

/// What node `peer` is announced to hold under `strategy`.
fn announced(strategy: Strategy, peer: usize, have: &[bool], count: usize, pieces: usize) -> Have {
    match strategy {
        _ if count == pieces => Have::All,
        Strategy::Swarm => Have::Pieces(have.to_vec()),
        Strategy::FromFetcher if peer == 0 => Have::Pieces(have.to_vec()),
        Strategy::FromFetcher => Have::Pieces(Vec::new()),
    }
}

/// Runs the model to completion.
pub fn run(strategy: Strategy, p: Params) -> Outcome {
    let mut rng = Rng::seed_from_u64(p.seed);
    let n = p.nodes;
    let total = p.pieces as u64 * u64::from(PIECE_LEN);
    let config = ScheduleConfig {
        window: 2 * p.link,
        per_peer: 2,
        // Queues at a busy server are waited out; no peer in this model stalls.
        timeout: Duration::from_secs(1_000_000),
        // Every requester hears what its peers hold each tick (below), without asking.
        have_poll: Duration::from_secs(1_000_000),
    };
    // have[node][piece]; node 0 is the rendezvous winner.
    let mut have = vec![vec![false; p.pieces]; n];
    let mut count = vec![0usize; n];
    let mut requesters: Vec<Option<Requester>> = (0..n)
        .map(|node| {
            if node == 0 {
                return None;
            }
            let mut peers = vec![0];
            while peers.len() < (p.view + 1).min(n - 1) {
                let candidate = rng.below(n as u64) as usize;
                if candidate != node && !peers.contains(&candidate) {
                    peers.push(candidate);
                }
            }
            let haves = peers.iter().map(|_| Have::Pieces(Vec::new())).collect();
            Some(Requester {
                schedule: PieceSchedule::new(total, 0, haves, None, config)
                    .with_seed(rng.next_u64()),
                peers,
                have: vec![false; p.pieces],
                count: 0,
            })
        })
        .collect();
    let mut outcome = Outcome {
        ticks: 0,
        upstream_pieces: 0,
        peer_pieces: 0,
    };
    // Requests waiting at each server: (requester, request).
    let mut queues: Vec<VecDeque<(usize, PieceRequest)>> = vec![VecDeque::new(); n];
    let mut next_upstream = 0;
    while count.iter().any(|&c| c < p.pieces) {
        outcome.ticks += 1;
        let now = tick_time(outcome.ticks);
        // The fetcher pulls the next pieces from the upstream.
        for _ in 0..p.upstream {
            if next_upstream < p.pieces {
                have[0][next_upstream] = true;
                count[0] += 1;
                next_upstream += 1;
                outcome.upstream_pieces += 1;
            }
        }
        // Every requester learns what its peers announce and asks, in a random order.
        let mut order: Vec<usize> = (1..n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for &node in &order {
            let Some(requester) = requesters[node].as_mut() else {
                continue;
            };
            for (index, &peer) in requester.peers.iter().enumerate() {
                let have = announced(strategy, peer, &have[peer], count[peer], p.pieces);
                requester.schedule.handle_have(index, have);
                // And how many requests wait at it: a busy peer is asked after an idle one.
                let load = u32::try_from(queues[peer].len()).unwrap_or(u32::MAX);
                requester.schedule.handle_load(index, load);
            }
            for request in requester.schedule.next_requests(now) {
                queues[requester.peers[request.peer]].push_back((node, request));
            }
        }
        // Servers answer up to their link; answers arrive this tick.
        let mut arrivals = Vec::new();
        for queue in queues.iter_mut() {
            for _ in 0..p.link {
                match queue.pop_front() {
                    Some(asked) => arrivals.push(asked),
                    None => break,
                }
            }
        }
        for (node, request) in arrivals {
            let Some(requester) = requesters[node].as_mut() else {
                continue;
            };
            let answer = PieceAnswer {
                total,
                len: u64::from(requester.schedule.piece_len(request.piece)),
                leaf: Hash::default(),
            };
            if let Filed::Accepted { piece, .. } =
                requester.schedule.handle_piece(request.tag, answer)
            {
                requester.have[piece as usize] = true;
                requester.count += 1;
                outcome.peer_pieces += 1;
            }
            while requester.schedule.take_deliverable().is_some() {}
        }
        for node in 1..n {
            if let Some(requester) = &requesters[node] {
                have[node].clone_from(&requester.have);
                count[node] = requester.count;
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
            view: 8,
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
            swarm.ticks < small.ticks * 5,
            "swarm time grows slowly: {small:?} → {swarm:?}"
        );
    }
}
