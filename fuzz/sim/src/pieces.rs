//! How piece scheduling scales: `n` nodes that all want one blob of `pieces` pieces at the
//! same tick, each choosing what to ask of whom with core's [`PieceSchedule`] — the state
//! machine the node's piece fetcher runs — over a random view of `view` peers plus the node
//! fetching the blob from the upstream for the network (node 0, which serves each piece once
//! it arrives: [`PieceSchedule::handle_stream`], as the node's fetcher tells its schedule).
//! Every node announces the pieces it holds to the nodes that know it each tick and serves
//! them; it sends at most `link` pieces per tick and, as the node does, takes
//! [`ANSWERS_AT_ONCE`](pyrsia_core::piece_schedule::ANSWERS_AT_ONCE) requests at a time and
//! answers busy beyond ([`serves_now`]); with [`Params::busy`] off it queues them all instead
//! (the node before the rule, for comparison); the upstream link carries
//! `upstream` pieces per tick. A tick is 100 ms on core's clock, so the schedule's timeout
//! and busy backoff are the node's own.
//!
//! [`Faults`] adds what a real network has: nodes that leave during the download (their
//! connections close: requests to them fail) and as many that join late (with a view of
//! their own; a few nodes already downloading find them, as the node's fetcher rediscovers
//! providers), slow nodes (one piece per tick), and liars that claim every piece and either
//! answer `Missing` or serve wrong bytes (caught by the piece hash list, which every node
//! has here: the blob's piece list committed to the log).
//!
//! Each piece crosses the upstream link once. `pyrsia-sim pieces` prints the table in
//! BENCHMARKS.md; [`lower_bound`] is the fewest ticks any schedule could take, a full mesh
//! included.

use std::collections::VecDeque;

use pyrsia_core::piece_schedule::recent_sends::RecentSends;
use pyrsia_core::piece_schedule::{
    BUSY_BACKOFF, Filed, Have, MAX_PER_PEER, MAX_WINDOW, PER_PEER, POLLS_PER_ROUND, PieceAnswer,
    PieceRequest, PieceSchedule, ScheduleConfig, WINDOW, serves_insisting_now, serves_now,
};
use pyrsia_core::pieces::PIECE_LEN;
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::{Hash, leaf_hash};

/// What goes wrong during a run, each as a percentage of the nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Nodes that leave during the download, and as many that join during it.
    pub churn: usize,
    /// Nodes whose link carries one piece per tick.
    pub slow: usize,
    /// Nodes that claim every piece and never serve a good one (half answer `Missing`, half
    /// serve wrong bytes).
    pub liars: usize,
}

/// The model's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes at the start, the fetcher (and any liars) included.
    pub nodes: usize,
    /// Pieces in the blob.
    pub pieces: usize,
    /// Pieces a node sends per tick.
    pub link: usize,
    /// Pieces the upstream link carries per tick.
    pub upstream: usize,
    /// Peers each node knows besides the fetcher; `nodes - 1` or more is a full mesh.
    pub view: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// What goes wrong.
    pub faults: Faults,
    /// Whether a node answers busy beyond
    /// [`ANSWERS_AT_ONCE`](pyrsia_core::piece_schedule::ANSWERS_AT_ONCE) requests
    /// ([`serves_now`], as the node does) or queues every request (as it did before).
    pub busy: bool,
}

/// What a run measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Ticks until the last node still in the network had every piece.
    pub ticks: u64,
    /// Whether every such node got every piece (else the run stopped at its tick limit).
    pub complete: bool,
    /// Pieces that crossed the upstream link.
    pub upstream_pieces: u64,
    /// Good pieces sent between nodes.
    pub peer_pieces: u64,
    /// Requests answered busy.
    pub busy: u64,
    /// Times an honest node was blamed by a schedule.
    pub honest_blamed: u64,
    /// Times a liar was blamed (wrong bytes) or given up (claimed a piece it lacked).
    pub liars_caught: u64,
    /// Requests an honest node (or the fetcher) answered by naming the peers it sent the
    /// piece to lately (core's `recent_sends`, as the node does).
    pub redirects: u64,
    /// Pieces the fetcher (node 0) sent.
    pub fetcher_upload: u64,
    /// Pieces the node that sent the most sent.
    pub largest_upload: u64,
}

/// A tick, on core's clock.
fn tick_time(tick: u64) -> Instant {
    Instant::from_millis(tick * 100)
}

/// The fewest ticks in which `nodes` nodes can all hold `pieces` pieces here, whatever the
/// schedule (a full mesh included): the last piece leaves the upstream at tick
/// ⌈pieces / upstream⌉ at the earliest, and the number of nodes holding a piece grows at
/// most (1 + link)-fold per tick (each holder sends `link` pieces per tick); and all nodes
/// but the fetcher receive every piece through links carrying `link` pieces per tick.
pub fn lower_bound(nodes: usize, pieces: usize, link: usize, upstream: usize) -> u64 {
    let last_out = pieces.div_ceil(upstream) as u64;
    let mut holders = 1 + link;
    let mut spread = 0;
    while holders < nodes {
        holders = holders.saturating_mul(1 + link);
        spread += 1;
    }
    let bandwidth = ((nodes - 1) * pieces).div_ceil(nodes * link) as u64;
    (last_out + spread).max(bandwidth)
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Fetches the blob from the upstream for the network (node 0).
    Fetcher,
    /// Wants the blob and serves what it holds.
    Honest,
    /// Claims every piece and answers `Missing`.
    ClaimsWhatItLacks,
    /// Claims every piece and serves wrong bytes.
    ServesWrongBytes,
}

/// One requesting node's schedule over its peers (node ids), with what it last told the
/// schedule each of them holds.
struct Requester {
    peers: Vec<usize>,
    told: Vec<usize>,
    schedule: PieceSchedule,
}

struct Node {
    role: Role,
    link: usize,
    joins_at: u64,
    leaves_at: Option<u64>,
    have: Vec<bool>,
    count: usize,
    requester: Option<Requester>,
    /// Requests taken and not yet answered: (requester, request).
    queue: VecDeque<(usize, PieceRequest)>,
    /// Whom it sent each piece lately (it names them to the next askers that do not insist).
    sends: RecentSends<usize>,
    /// Pieces it sent.
    sent: u64,
}

impl Node {
    fn alive(&self, tick: u64) -> bool {
        self.joins_at <= tick && self.leaves_at.is_none_or(|at| tick < at)
    }

    fn wants(&self) -> bool {
        self.role == Role::Honest
    }
}

/// The leaf of each piece (the blob's committed piece list).
fn leaves(pieces: usize) -> Vec<Hash> {
    (0..pieces as u32)
        .map(|i| leaf_hash(&i.to_le_bytes()))
        .collect()
}

/// Runs the model until every node still in the network holds the blob (or a tick limit).
pub fn run(p: Params) -> Outcome {
    let mut rng = Rng::seed_from_u64(p.seed);
    let total = p.pieces as u64 * u64::from(PIECE_LEN);
    let leaves = leaves(p.pieces);
    let full_mesh = p.view + 1 >= p.nodes;
    let config = ScheduleConfig {
        // The node's own pipelines.
        window: WINDOW,
        max_window: MAX_WINDOW,
        per_peer: PER_PEER,
        max_per_peer: MAX_PER_PEER,
        timeout: Duration::from_secs(5),
        // Announcements come every tick (below); nothing is polled.
        have_poll: Duration::from_secs(1_000_000),
        polls_per_round: POLLS_PER_ROUND,
        busy_backoff: BUSY_BACKOFF,
    };
    let spread = p.pieces.div_ceil(p.upstream) as u64;
    let churned = p.nodes * p.faults.churn / 100;
    let liars = p.nodes * p.faults.liars / 100;
    let slow = p.nodes * p.faults.slow / 100;
    let mut nodes: Vec<Node> = (0..p.nodes + churned)
        .map(|i| Node {
            role: if i == 0 { Role::Fetcher } else { Role::Honest },
            link: p.link,
            joins_at: 0,
            leaves_at: None,
            have: vec![false; p.pieces],
            count: 0,
            requester: None,
            queue: VecDeque::new(),
            sends: RecentSends::new(),
            sent: 0,
        })
        .collect();
    // Roles among the first nodes (the fetcher aside), in a random order.
    let mut order: Vec<usize> = (1..p.nodes).collect();
    shuffle(&mut order, &mut rng);
    for (k, &i) in order.iter().enumerate() {
        let node = &mut nodes[i];
        if k < liars {
            node.role = if k % 2 == 0 {
                Role::ClaimsWhatItLacks
            } else {
                Role::ServesWrongBytes
            };
        } else if k < liars + slow {
            node.link = 1;
        } else if k < liars + slow + churned {
            node.leaves_at = Some(1 + rng.below(spread));
        }
    }
    for node in nodes.iter_mut().skip(p.nodes) {
        node.joins_at = 1 + rng.below(spread);
    }
    let mut outcome = Outcome {
        ticks: 0,
        complete: false,
        upstream_pieces: 0,
        peer_pieces: 0,
        busy: 0,
        honest_blamed: 0,
        liars_caught: 0,
        redirects: 0,
        fetcher_upload: 0,
        largest_upload: 0,
    };
    let limit = 20 * p.pieces as u64 + 1000;
    let mut next_upstream = 0;
    for tick in 0..limit {
        outcome.ticks = tick;
        let now = tick_time(tick);
        join(
            &mut nodes, tick, p, full_mesh, total, &leaves, config, &mut rng,
        );
        if (1..nodes.len())
            .all(|i| !nodes[i].alive(tick) || !nodes[i].wants() || nodes[i].count == p.pieces)
            && tick > 0
        {
            outcome.complete = true;
            outcome.fetcher_upload = nodes[0].sent;
            outcome.largest_upload = nodes.iter().map(|n| n.sent).max().unwrap_or(0);
            return outcome;
        }
        // Nodes leaving now: their connections close, every request they hold fails.
        for i in 0..nodes.len() {
            if nodes[i].leaves_at == Some(tick) {
                let queue = std::mem::take(&mut nodes[i].queue);
                for (asker, request) in queue {
                    if let Some(r) = nodes[asker].requester.as_mut() {
                        r.schedule.handle_failure(request.tag, false);
                    }
                }
            }
        }
        // The fetcher pulls the next pieces from the upstream.
        for _ in 0..p.upstream {
            if next_upstream < p.pieces {
                nodes[0].have[next_upstream] = true;
                nodes[0].count += 1;
                next_upstream += 1;
                outcome.upstream_pieces += 1;
            }
        }
        // Every requester hears what its peers announce and asks, in a random order.
        let mut order: Vec<usize> = (1..nodes.len())
            .filter(|&i| nodes[i].alive(tick) && nodes[i].requester.is_some())
            .collect();
        shuffle(&mut order, &mut rng);
        for &i in &order {
            let mut requester = nodes[i].requester.take().expect("a requester");
            for (index, &peer) in requester.peers.iter().enumerate() {
                let server = &nodes[peer];
                if server.count != requester.told[index] && server.alive(tick) {
                    requester.told[index] = server.count;
                    if server.role == Role::Fetcher {
                        requester.schedule.handle_stream(index, server.count as u32);
                    } else if server.role == Role::Honest {
                        let have = if server.count == p.pieces {
                            Have::All
                        } else {
                            Have::Pieces(server.have.clone())
                        };
                        requester.schedule.handle_have(index, have);
                    }
                }
            }
            requester.schedule.handle_timeout(now);
            for request in requester.schedule.next_requests(now) {
                let server = &mut nodes[requester.peers[request.peer]];
                let honest = matches!(server.role, Role::Fetcher | Role::Honest);
                let elsewhere = (honest && !request.insist && server.alive(tick))
                    .then(|| server.sends.redirect(request.piece, &i, now))
                    .flatten();
                if !server.alive(tick) {
                    requester.schedule.handle_failure(request.tag, false);
                } else if let Some(named) = elsewhere {
                    // Named by node id; the asker's schedule knows its peers by index.
                    let named: Vec<usize> = named
                        .iter()
                        .filter_map(|n| requester.peers.iter().position(|peer| peer == n))
                        .collect();
                    outcome.redirects += 1;
                    requester.schedule.handle_elsewhere(request.tag, &named);
                } else if !p.busy
                    || (request.insist
                        && serves_insisting_now(
                            server.queue.len(),
                            server.sends.sent_lately(request.piece, now),
                        ))
                    || (!request.insist && serves_now(server.queue.len()))
                {
                    if honest {
                        server.sends.record(request.piece, i, now);
                    }
                    server.queue.push_back((i, request));
                } else {
                    outcome.busy += 1;
                    requester.schedule.handle_busy(request.tag, now);
                }
            }
            nodes[i].requester = Some(requester);
        }
        // Servers answer up to their link; answers arrive this tick. The fetcher answers a
        // piece once it has arrived from the upstream (the rest wait in its queue).
        let mut arrivals = Vec::new();
        for (s, server) in nodes.iter_mut().enumerate() {
            let mut sent = 0;
            let mut kept = VecDeque::new();
            while let Some((asker, request)) = server.queue.pop_front() {
                if sent == server.link {
                    kept.push_back((asker, request));
                    continue;
                }
                let holds = server.have[request.piece as usize];
                if server.role == Role::Fetcher && !holds {
                    kept.push_back((asker, request));
                    continue;
                }
                sent += 1;
                server.sent += 1;
                arrivals.push((s, asker, request));
            }
            server.queue = kept;
        }
        for (s, asker, request) in arrivals {
            let role = nodes[s].role;
            let holds = nodes[s].have[request.piece as usize];
            let Some(requester) = nodes[asker].requester.as_mut() else {
                continue;
            };
            let schedule = &mut requester.schedule;
            let answer = |leaf| PieceAnswer {
                total,
                len: u64::from(schedule.piece_len(request.piece)),
                leaf,
            };
            let filed = match role {
                Role::ClaimsWhatItLacks => {
                    schedule.handle_missing(request.tag);
                    outcome.liars_caught += 1;
                    continue;
                }
                Role::ServesWrongBytes => {
                    schedule.handle_piece(request.tag, answer(Hash::default()), now)
                }
                _ if !holds => {
                    schedule.handle_missing(request.tag);
                    continue;
                }
                _ => {
                    schedule.handle_piece(request.tag, answer(leaves[request.piece as usize]), now)
                }
            };
            match filed {
                Filed::Accepted { piece, .. } => {
                    let node = &mut nodes[asker];
                    node.have[piece as usize] = true;
                    node.count += 1;
                    outcome.peer_pieces += 1;
                }
                Filed::Rejected { blame: Some(_), .. } if role == Role::ServesWrongBytes => {
                    outcome.liars_caught += 1;
                }
                Filed::Rejected { blame: Some(_), .. } => outcome.honest_blamed += 1,
                _ => {}
            }
            if let Some(requester) = nodes[asker].requester.as_mut() {
                while requester.schedule.take_deliverable().is_some() {}
            }
        }
    }
    outcome
}

/// Nodes joining at `tick` get a schedule over a random view of the nodes alive (the
/// fetcher and `view` others; every other node in a full mesh), and a few nodes already
/// downloading (as many as the view) find them, as the node's fetcher rediscovers providers.
#[allow(clippy::too_many_arguments)]
fn join(
    nodes: &mut [Node],
    tick: u64,
    p: Params,
    full_mesh: bool,
    total: u64,
    leaves: &[Hash],
    config: ScheduleConfig,
    rng: &mut Rng,
) {
    let joining: Vec<usize> = (1..nodes.len())
        .filter(|&i| nodes[i].joins_at == tick && nodes[i].wants())
        .collect();
    if joining.is_empty() {
        return;
    }
    let alive: Vec<usize> = (1..nodes.len()).filter(|&i| nodes[i].alive(tick)).collect();
    for &i in &joining {
        let mut peers = vec![0];
        if full_mesh {
            peers.extend(alive.iter().copied().filter(|&j| j != i));
        } else {
            let want = (p.view + 1).min(alive.len());
            let mut tries = 0;
            while peers.len() < want && tries < 100 * want {
                tries += 1;
                let candidate = alive[rng.below(alive.len() as u64) as usize];
                if candidate != i && !peers.contains(&candidate) {
                    peers.push(candidate);
                }
            }
        }
        let haves = peers
            .iter()
            .map(|&j| match nodes[j].role {
                Role::Fetcher | Role::ClaimsWhatItLacks | Role::ServesWrongBytes => Have::All,
                Role::Honest => Have::Pieces(Vec::new()),
            })
            .collect();
        let mut schedule = PieceSchedule::new(total, 0, haves, Some(leaves.to_vec()), config)
            .with_seed(rng.next_u64());
        schedule.handle_stream(0, nodes[0].count as u32);
        nodes[i].requester = Some(Requester {
            told: vec![usize::MAX; peers.len()],
            peers,
            schedule,
        });
        if tick == 0 {
            continue;
        }
        // Found by nodes already downloading.
        let finders: Vec<usize> = if full_mesh {
            alive.clone()
        } else {
            (0..p.view)
                .map(|_| alive[rng.below(alive.len() as u64) as usize])
                .collect()
        };
        for j in finders {
            if j == i {
                continue;
            }
            if let Some(r) = nodes[j].requester.as_mut()
                && !r.peers.contains(&i)
            {
                r.schedule.add_peer(Have::Pieces(Vec::new()));
                r.peers.push(i);
                r.told.push(usize::MAX);
            }
        }
    }
}

fn shuffle(items: &mut [usize], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: usize, view: usize, faults: Faults) -> Params {
        Params {
            nodes,
            pieces: 64,
            link: 4,
            upstream: 4,
            view,
            seed: 7,
            faults,
            busy: true,
        }
    }

    #[test]
    fn each_piece_crosses_the_upstream_once_and_runs_repeat() {
        let a = run(params(20, 8, Faults::default()));
        assert!(a.complete, "{a:?}");
        assert_eq!(a.upstream_pieces, 64);
        assert_eq!(a.peer_pieces, 19 * 64, "each node receives each piece once");
        assert_eq!(
            a,
            run(params(20, 8, Faults::default())),
            "same seed, same run"
        );
    }

    #[test]
    fn sixteen_peer_views_stay_within_twice_a_full_mesh_as_the_network_grows() {
        let mesh = run(params(60, 59, Faults::default()));
        let small = run(params(20, 16, Faults::default()));
        let large = run(params(2000, 16, Faults::default()));
        assert!(mesh.complete && small.complete && large.complete);
        assert!(mesh.ticks >= lower_bound(60, 64, 4, 4), "{mesh:?}");
        assert!(
            large.ticks <= 2 * mesh.ticks,
            "2,000 nodes took {} ticks, a full mesh of 60 {}",
            large.ticks,
            mesh.ticks
        );
        assert!(
            large.ticks <= 2 * small.ticks,
            "100 times the nodes, at most twice the time: {small:?} → {large:?}"
        );
        assert!(large.busy > 0, "the fetcher turned askers away: {large:?}");
        // Super-seeding: the fetcher names the peers it sent a piece to instead of sending
        // it a third time, so its upload stays near one copy of the blob however many nodes
        // want it (without the rule it sent the blob once per asker it could take).
        assert!(large.redirects > 0, "{large:?}");
        assert!(
            large.fetcher_upload <= 3 * 64,
            "the fetcher sent {} pieces of 64: {large:?}",
            large.fetcher_upload
        );
        // Queued instead of turned away, every node waits on the fetcher's uplink.
        let queued = run(Params {
            busy: false,
            ..params(2000, 16, Faults::default())
        });
        assert!(
            queued.ticks > 4 * large.ticks,
            "{queued:?} against {large:?}"
        );
    }

    #[test]
    fn churn_slow_nodes_and_liars_cost_time_not_the_download_nor_an_honest_nodes_name() {
        let faults = Faults {
            churn: 5,
            slow: 5,
            liars: 5,
        };
        let run_ = run(params(400, 16, faults));
        assert!(run_.complete, "{run_:?}");
        assert_eq!(run_.upstream_pieces, 64, "still once across the upstream");
        assert_eq!(run_.honest_blamed, 0);
        assert!(
            run_.liars_caught > 0,
            "the liars were met and caught: {run_:?}"
        );
        let calm = run(params(400, 16, Faults::default()));
        assert!(run_.ticks <= 2 * calm.ticks, "{run_:?} against {calm:?}");
    }
}
