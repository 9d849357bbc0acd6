//! One upstream fetch per network, at scale: `n` nodes that want one fresh blob at about the
//! same time, each finding where its bytes come from with core's [`SourceSearch`] (the state
//! machine the node's peer download runs: `runtime-std`'s `peers::search`), and each node asked
//! to fetch the blob for the network answering with core's [`honour`] over its own view, as
//! the node's mirror does (`mirror::serve`). The simulation is the IO around them:
//!
//! - connections: each node dials [`Params::view`] random others (so views differ and no node
//!   sees the whole network);
//! - the DHT: a lookup of the nodes nearest the digest returns the 20 live nodes nearest it,
//!   except that, in [`Params::miss`] percent of lookups, the nearest one is out of reach (at
//!   its connection limit) and left out, and the lookup says it missed some; provider records
//!   (libp2p's store keeps the 20 nearest the key) are found from the tick after a node's
//!   download starts (as the node's flight announces itself before its search begins), and
//!   show what it holds (nothing, while it searches);
//! - reach: a node at its connection limit ([`Params::at_limit`] percent) refuses asks from
//!   nodes it is not connected to;
//! - or, with [`Params::max_peers`], every node holds at most that many connections, as
//!   `--max-peers` does: each node dials the [`Params::view`] nodes started just before it,
//!   then each tries more at random (as Kademlia's lookups connect more), a dial refused when
//!   either end is full (a topology in more than one group is drawn again). A full node
//!   dials nobody new, and the DHT reaches only what connections allow: a lookup returns the
//!   20 nearest among the nodes its node can reach and says it missed some when one nearer
//!   is out of reach, and a provider record (stored on its provider and on the 20 nearest the
//!   provider reaches) is found only by a node whose 20 nearest reachable include one of
//!   those;
//! - time: a tick is 50 ms on core's clock; a lookup, a survey or an ask takes one tick, the
//!   upstream fetch [`UPSTREAM_TICKS`], and a download from a peer ends the tick after that
//!   peer holds the whole blob;
//! - churn ([`Params::kill`]): the first node to fetch from the upstream dies mid-fetch, and
//!   the nodes downloading from it search again as resuming downloads.
//!
//! What is counted: fetches from the upstream (the network's promise is one per blob), asks
//! to fetch for the network, refusals, and the ticks until every live node holds the blob.

use pyrsia_core::pieces::PIECE_LEN;
use pyrsia_core::reach::Path;
use pyrsia_core::rendezvous::{Honour, ask_peers_again, claimants, honour, nearest_first};
use pyrsia_core::rng::Rng;
use pyrsia_core::source_search::{Action, Asking, Holding, Provider, SearchConfig, SourceSearch};
use pyrsia_core::time::{Duration, Instant};

/// One tick on core's clock.
pub const TICK: Duration = Duration::from_millis(50);
/// Ticks the upstream takes to deliver the whole blob (2 s).
pub const UPSTREAM_TICKS: u64 = 40;
/// Ticks after which the first upstream fetcher dies when [`Params::kill`] is set.
pub const KILL_AT: u64 = 10;
/// How long a download waits for its peers to get a piece it lacks before it takes them to
/// have stopped delivering (core's `piece_schedule::FOLLOW_PATIENCE`, 10 s).
const PATIENCE_TICKS: u64 = 200;
/// Pieces in the blob.
const PIECES: u64 = 200;
/// What a DHT lookup of the nodes nearest a key returns, and what a provider record set
/// holds (Kademlia's k).
const K: usize = 20;
/// The ticks after which a run gives up.
const LIMIT: u64 = 4_000;

/// The model's parameters.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// Nodes.
    pub nodes: usize,
    /// Peers each node dials.
    pub view: usize,
    /// Percent of the lookups of the nodes nearest the digest that miss the nearest one.
    pub miss: u64,
    /// Percent of the nodes at their connection limit.
    pub at_limit: u64,
    /// Every node's connection limit (0: none, and the DHT reaches every live node); with it,
    /// the topology and the DHT's reach follow from the limit (module documentation).
    pub max_peers: usize,
    /// Whether the first upstream fetcher dies mid-fetch.
    pub kill: bool,
    /// Nodes arrive over this many ticks (0: all at once).
    pub spread: u64,
    /// The seed of every random choice.
    pub seed: u64,
}

impl Params {
    /// `nodes` nodes with 16-peer views, no faults, all at once, seeded with `seed`.
    pub fn calm(nodes: usize, seed: u64) -> Params {
        Params {
            nodes,
            view: 16,
            miss: 0,
            at_limit: 0,
            max_peers: 0,
            kill: false,
            spread: 0,
            seed,
        }
    }

    /// `nodes` nodes each holding at most `max_peers` connections, each dialling 3 earlier
    /// ones first (as the end-to-end tests start them), no other fault, all at once.
    pub fn capped(nodes: usize, seed: u64, max_peers: usize) -> Params {
        Params {
            view: 3,
            max_peers,
            ..Params::calm(nodes, seed)
        }
    }
}

/// What a run measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Fetches of the blob from the upstream (resumed ones included).
    pub upstream_fetches: u64,
    /// Pieces that crossed the upstream link, over all those fetches (the blob has 200).
    pub upstream_pieces: u64,
    /// Ticks until the last live node held the blob.
    pub ticks: u64,
    /// Whether every live node got it (else the run stopped at its limit).
    pub complete: bool,
    /// Asks to fetch the blob for the network.
    pub claim_asks: u64,
    /// Of those, refused (the asked node is not among the claimants in its own view).
    pub refused: u64,
    /// Downloads that searched again after their source died.
    pub resumed: u64,
}

/// Where a node's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// From the upstream, from piece `offset` on (a resumed download keeps what it has).
    Upstream {
        started: u64,
        offset: u64,
    },
    Peer(usize),
}

enum State {
    /// Wants nothing yet (arrives at this tick).
    Idle {
        arrives: u64,
    },
    /// Searching: the action to answer, and when.
    Searching {
        search: Box<SourceSearch<usize>>,
        action: Action<usize>,
        at: u64,
        /// When it started downloading (for its provider record), if it did.
        since: u64,
    },
    Downloading {
        from: Source,
        since: u64,
    },
    Done,
    Dead,
    /// Its search's answer is being worked out (a placeholder while [`World::answer`] runs).
    Answering,
}

struct World {
    params: Params,
    rng: Rng,
    key: [u8; 32],
    keys: Vec<[u8; 32]>,
    connected: Vec<Vec<usize>>,
    at_limit: Vec<bool>,
    /// Every node, nearest the digest first.
    by_distance: Vec<usize>,
    states: Vec<State>,
    /// The pieces each node kept when its source last changed.
    held: Vec<u64>,
    /// Each node's round of asking the peers (`rendezvous::ask_peers_again`), and the
    /// pieces it held when that round began.
    round: Vec<(usize, u64)>,
    /// Each node's pieces when they last grew, and the tick.
    watch: Vec<(u64, u64)>,
    outcome: Outcome,
    first_upstream: Option<usize>,
    /// What happened, when traced ([`run_traced`]).
    trace: Option<Vec<String>>,
    /// With [`Params::max_peers`], each node's [`World::dht_reach`].
    reach: Vec<(Vec<usize>, bool)>,
}

/// Runs one simulation.
pub fn run(params: Params) -> Outcome {
    run_traced(params, false).0
}

/// Runs one simulation; with `trace`, also returns what happened, a line per event: each ask
/// to fetch for the network, each download whose peers stopped delivering, each upstream
/// fetch, nodes named by their rank nearest the digest (`r0` is the nearest).
pub fn run_traced(params: Params, trace: bool) -> (Outcome, Vec<String>) {
    let mut world = World::new(params);
    world.trace = trace.then(Vec::new);
    if trace {
        let line = world.describe_topology();
        if let Some(t) = &mut world.trace {
            t.push(line);
        }
    }
    let outcome = world.run();
    (outcome, world.trace.unwrap_or_default())
}

impl World {
    fn run(&mut self) -> Outcome {
        let params = self.params;
        let world = self;
        for tick in 0..LIMIT {
            if params.kill && tick == KILL_AT {
                world.kill_first_upstream();
            }
            for node in 0..params.nodes {
                world.step(node, tick);
            }
            let done = world
                .states
                .iter()
                .all(|s| matches!(s, State::Done | State::Dead));
            if done {
                world.outcome.ticks = tick;
                world.outcome.complete = true;
                return world.outcome;
            }
        }
        world.outcome.ticks = LIMIT;
        world.outcome
    }
}

impl World {
    fn new(params: Params) -> World {
        let mut rng = Rng::seed_from_u64(params.seed);
        let n = params.nodes;
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let keys: Vec<[u8; 32]> = (0..n)
            .map(|_| {
                let mut k = [0u8; 32];
                rng.fill_bytes(&mut k);
                k
            })
            .collect();
        let (connected, at_limit) = if params.max_peers > 0 {
            capped_topology(n, params.view, params.max_peers, &mut rng)
        } else {
            let mut connected = vec![Vec::new(); n];
            for node in 0..n {
                for _ in 0..params.view.min(n.saturating_sub(1)) {
                    let other = rng.below(n as u64) as usize;
                    if other != node && !connected[node].contains(&other) {
                        connected[node].push(other);
                        connected[other].push(node);
                    }
                }
            }
            let at_limit = (0..n).map(|_| rng.chance(params.at_limit, 100)).collect();
            (connected, at_limit)
        };
        let all: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let by_distance = nearest_first(&key, all.iter().copied(), n)
            .into_iter()
            .map(|k| all.iter().position(|a| *a == k).expect("a node's key"))
            .collect();
        let states = (0..n)
            .map(|_| State::Idle {
                arrives: if params.spread == 0 {
                    0
                } else {
                    rng.below(params.spread)
                },
            })
            .collect();
        let mut world = World {
            params,
            rng,
            key,
            keys,
            connected,
            at_limit,
            by_distance,
            states,
            held: vec![0; n],
            round: vec![(0, 0); n],
            watch: vec![(0, 0); n],
            outcome: Outcome::default(),
            first_upstream: None,
            trace: None,
            reach: Vec::new(),
        };
        if params.max_peers > 0 {
            world.reach = (0..n).map(|node| world.dht_reach(node)).collect();
        }
        world
    }

    fn now(tick: u64) -> Instant {
        Instant::ZERO
            .checked_add(TICK.saturating_mul(tick))
            .unwrap_or(Instant::ZERO)
    }

    fn alive(&self, node: usize) -> bool {
        !matches!(self.states[node], State::Dead)
    }

    /// Whether `asker` can ask `node` now: alive, and connected or not at its limit (nor,
    /// with [`Params::max_peers`], `asker` at its own: a full node dials nobody new).
    fn reachable(&self, asker: usize, node: usize) -> bool {
        let asker_full = self.params.max_peers > 0 && self.at_limit[asker];
        self.alive(node)
            && (self.connected[asker].contains(&node) || !(self.at_limit[node] || asker_full))
    }

    /// With [`Params::max_peers`]: the [`K`] nodes nearest the digest among those `node`
    /// can reach (computed once, at the start: the capped runs have no churn), and whether
    /// a node nearer than the last of them was out of its reach (its lookups may miss the
    /// nearest).
    fn dht_reach(&self, node: usize) -> (Vec<usize>, bool) {
        let mut reached = Vec::new();
        let mut missed = false;
        for &p in &self.by_distance {
            if reached.len() == K {
                break;
            }
            if p == node {
                continue;
            }
            if self.reachable(node, p) {
                reached.push(p);
            } else {
                missed = true;
            }
        }
        (reached, missed)
    }

    fn path(&self, asker: usize, node: usize) -> Path<usize> {
        if self.connected[asker].contains(&node) {
            Path::Direct
        } else {
            Path::NotConnected
        }
    }

    /// Since when `node` has a provider record (it downloads or holds the blob).
    fn providing_since(&self, node: usize) -> Option<u64> {
        match &self.states[node] {
            State::Downloading { since, .. } => Some(*since),
            State::Searching { since, .. } if *since != u64::MAX => Some(*since),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// The pieces `node` holds at `tick` (a peer's download trails its source by a tick).
    fn pieces(&self, node: usize, tick: u64, depth: usize) -> u64 {
        if depth > 64 {
            return 0;
        }
        match &self.states[node] {
            State::Done => PIECES,
            State::Downloading {
                from: Source::Upstream { started, offset },
                ..
            } => (offset + tick.saturating_sub(*started) * PIECES / UPSTREAM_TICKS).min(PIECES),
            State::Downloading {
                from: Source::Peer(p),
                ..
            } => self.held[node].max(self.pieces(*p, tick.saturating_sub(1), depth + 1)),
            State::Searching { .. } => self.held[node],
            _ => 0,
        }
    }

    fn start_search(&mut self, node: usize, tick: u64, resuming: bool, since: u64) {
        self.start_search_for(node, tick, resuming, since, false);
    }

    fn start_search_for(
        &mut self,
        node: usize,
        tick: u64,
        resuming: bool,
        since: u64,
        serving_others: bool,
    ) {
        let config = SearchConfig {
            serving_others,
            // runtime-std's `peers::LOOKUP_TIMEOUT` and `HAVE_POLL`.
            lookup_timeout: Duration::from_secs(3),
            poll: Duration::from_millis(250),
        };
        let mut search = Box::new(SourceSearch::new(
            &self.key,
            &self.keys[node],
            true,
            resuming,
            config,
        ));
        let action = search.start();
        self.states[node] = State::Searching {
            search,
            action,
            at: tick + 1,
            since,
        };
    }

    /// A node's rank nearest the digest, for traces.
    fn rank(&self, node: usize) -> usize {
        self.by_distance
            .iter()
            .position(|n| *n == node)
            .unwrap_or(usize::MAX)
    }

    /// A node's state in a few words, for traces.
    fn describe(&self, node: usize) -> String {
        match &self.states[node] {
            State::Idle { .. } => "idle".into(),
            State::Searching { .. } | State::Answering => "searching".into(),
            State::Downloading {
                from: Source::Upstream { .. },
                ..
            } => "fetching from the upstream".into(),
            State::Downloading {
                from: Source::Peer(p),
                ..
            } => format!("downloading from r{}", self.rank(*p)),
            State::Done => "done".into(),
            State::Dead => "dead".into(),
        }
    }

    /// Each node's connections, nodes named by rank nearest the digest, for traces.
    fn describe_topology(&self) -> String {
        let mut line = String::from("connections:");
        for &node in &self.by_distance {
            let mut peers: Vec<usize> =
                self.connected[node].iter().map(|p| self.rank(*p)).collect();
            peers.sort();
            line.push_str(&format!(
                " r{}{}→{:?}",
                self.rank(node),
                if self.at_limit[node] { "(full)" } else { "" },
                peers
            ));
        }
        line
    }

    /// Records an event when traced.
    fn note(&mut self, tick: u64, event: impl FnOnce(&World) -> String) {
        if self.trace.is_some() {
            let line = format!("tick {tick}: {}", event(self));
            if let Some(trace) = &mut self.trace {
                trace.push(line);
            }
        }
    }

    fn fetch_upstream(&mut self, node: usize, tick: u64, since: u64) {
        self.note(tick, |w| {
            format!(
                "r{} fetches from the upstream at piece {} (was {})",
                w.rank(node),
                w.held[node],
                w.describe(node)
            )
        });
        self.outcome.upstream_fetches += 1;
        self.first_upstream.get_or_insert(node);
        self.states[node] = State::Downloading {
            from: Source::Upstream {
                started: tick,
                offset: self.held[node],
            },
            since: since.min(tick),
        };
    }

    fn kill_first_upstream(&mut self) {
        let Some(dying) = self.first_upstream else {
            return;
        };
        if matches!(self.states[dying], State::Done) {
            return;
        }
        // What every node holds at that moment stays with it (a resumed download keeps it).
        let tick = KILL_AT;
        for node in 0..self.params.nodes {
            self.held[node] = self.pieces(node, tick, 0);
        }
        if let State::Downloading {
            from: Source::Upstream { offset, .. },
            ..
        } = self.states[dying]
        {
            self.outcome.upstream_pieces += self.held[dying] - offset;
        }
        self.states[dying] = State::Dead;
    }

    fn step(&mut self, node: usize, tick: u64) {
        match &self.states[node] {
            State::Idle { arrives } if *arrives <= tick => {
                self.start_search(node, tick, false, tick);
            }
            State::Downloading {
                from: Source::Upstream { started, offset },
                ..
            } if tick >= started + (PIECES - offset) * UPSTREAM_TICKS / PIECES => {
                self.outcome.upstream_pieces += PIECES - offset;
                self.states[node] = State::Done;
            }
            State::Downloading {
                from: Source::Peer(p),
                since,
            } => {
                let (p, since) = (*p, *since);
                if matches!(self.states[p], State::Done) {
                    self.states[node] = State::Done;
                    return;
                }
                let mine = self.pieces(node, tick, 0);
                let (seen, at) = self.watch[node];
                if mine > seen {
                    self.watch[node] = (mine, tick);
                }
                let stalled = mine <= seen && tick.saturating_sub(at) >= PATIENCE_TICKS;
                if matches!(self.states[p], State::Dead) || stalled {
                    self.stopped_delivering(node, tick, since, mine);
                }
            }
            State::Searching { at, .. } if *at <= tick => self.answer(node, tick),
            _ => {}
        }
    }

    /// The peers `node` downloads from stopped delivering (died, or have nothing it lacks for
    /// [`PATIENCE_TICKS`]): as the node's flight does, it asks the peers again from the
    /// offset reached while core's `ask_peers_again` says so, else resumes from the upstream.
    fn stopped_delivering(&mut self, node: usize, tick: u64, since: u64, mine: u64) {
        self.note(tick, |w| {
            format!(
                "r{}'s peers stopped delivering ({}, {mine} pieces, round {})",
                w.rank(node),
                w.describe(node),
                w.round[node].0
            )
        });
        self.held[node] = mine;
        self.watch[node] = (mine, tick);
        let (round, offset) = self.round[node];
        if ask_peers_again(round, mine > offset) {
            self.outcome.resumed += 1;
            self.round[node] = (round + 1, mine);
            self.start_search(node, tick, mine > 0, since);
        } else {
            self.fetch_upstream(node, tick, since);
        }
    }

    /// Answers the search's pending action, as the node's IO would.
    fn answer(&mut self, node: usize, tick: u64) {
        let State::Searching {
            mut search,
            action,
            since,
            ..
        } = std::mem::replace(&mut self.states[node], State::Answering)
        else {
            return;
        };
        let now = Self::now(tick);
        let next = match action {
            Action::FindProviders { .. } => {
                let providers = self.providers(node, tick);
                search.providers_found(providers, now)
            }
            Action::Survey { providers } => {
                let holdings = providers
                    .into_iter()
                    .filter(|p| self.reachable(node, *p))
                    .filter_map(|p| {
                        let pieces = self.pieces(p, tick, 0);
                        (pieces > 0).then(|| Holding {
                            peer: p,
                            path: self.path(node, p),
                            total: PIECES * u64::from(PIECE_LEN),
                            pieces: pieces as u32,
                            ahead: Vec::new(),
                        })
                    })
                    .collect();
                search.surveyed(holdings, now)
            }
            Action::FindClaimants => {
                let (found, missed) = self.nearest_lookup(node);
                let mut peers: Vec<usize> = found;
                for c in &self.connected[node] {
                    if self.alive(*c) && !peers.contains(c) {
                        peers.push(*c);
                    }
                }
                let keys: Vec<&[u8]> = peers.iter().map(|p| self.keys[*p].as_slice()).collect();
                let chosen = claimants(&self.key, &self.keys[node], &keys)
                    .into_iter()
                    .map(|c| c.map(|i| (peers[i], self.path(node, peers[i]))))
                    .collect();
                search.claimants_found(chosen, missed, now)
            }
            Action::Try { peers, asking } => {
                let first = peers[0].0;
                let served = match asking {
                    Asking::Holders | Asking::Following => self.reachable(node, first),
                    Asking::Claimant | Asking::Bridge | Asking::BridgeToClaimant => {
                        self.ask_to_fetch(node, first, tick)
                    }
                };
                if served {
                    self.watch[node] = (self.held[node], tick);
                    self.states[node] = State::Downloading {
                        from: Source::Peer(first),
                        since: since.min(tick),
                    };
                    return;
                }
                search.none_served(now)
            }
            Action::Wait { .. } => search.waited(now),
            Action::Upstream => {
                self.fetch_upstream(node, tick, since);
                return;
            }
        };
        let at = match &next {
            Action::Wait { until } => until.as_micros().div_ceil(TICK.as_micros()).max(tick + 1),
            _ => tick + 1,
        };
        self.states[node] = State::Searching {
            search,
            action: next,
            at,
            since,
        };
    }

    /// The provider records of the blob `node` finds: the 20 nearest the key of those
    /// whose download (search included) started before this tick.
    fn providers(&self, node: usize, tick: u64) -> Vec<Provider<usize>> {
        // With a connection limit: only the records stored where this node's lookup reaches
        // (a provider stores its record on the nodes nearest the key that it reaches).
        let found = |p: usize| match self.reach.get(node) {
            None => true,
            Some((asked, _)) => {
                asked.contains(&p) || self.reach[p].0.iter().any(|s| asked.contains(s))
            }
        };
        self.by_distance
            .iter()
            .copied()
            .filter(|p| *p != node && self.providing_since(*p).is_some_and(|s| s < tick))
            .filter(|p| found(*p))
            .take(K)
            .map(|p| Provider {
                peer: p,
                key: self.keys[p].to_vec(),
                path: self.path(node, p),
            })
            .collect()
    }

    /// The DHT's lookup of the live nodes nearest the digest, as `node` runs it, and whether
    /// it missed one.
    fn nearest_lookup(&mut self, node: usize) -> (Vec<usize>, bool) {
        if let Some((reached, missed)) = self.reach.get(node) {
            let live = reached.iter().copied().filter(|p| self.alive(*p)).collect();
            return (live, *missed);
        }
        let missed = self.rng.chance(self.params.miss, 100);
        let mut live = self
            .by_distance
            .iter()
            .copied()
            .filter(|p| *p != node && self.alive(*p));
        if missed {
            live.next();
        }
        (live.take(K).collect(), missed)
    }

    /// `asker` asks `node` to fetch the blob for the network: served when `node` already
    /// downloads or holds it, or when it honours the ask (from its upstream, or through the
    /// nodes nearer the digest it knows).
    fn ask_to_fetch(&mut self, asker: usize, node: usize, tick: u64) -> bool {
        self.outcome.claim_asks += 1;
        self.note(tick, |w| {
            format!(
                "r{} asks r{} to fetch for the network (r{} is {}{})",
                w.rank(asker),
                w.rank(node),
                w.rank(node),
                w.describe(node),
                if w.reachable(asker, node) {
                    ""
                } else {
                    "; out of reach"
                }
            )
        });
        if !self.reachable(asker, node) {
            return false;
        }
        let in_flight = match &self.states[node] {
            State::Done
            | State::Downloading {
                from: Source::Upstream { .. },
                ..
            } => return true,
            State::Downloading { .. } | State::Searching { .. } | State::Answering => true,
            State::Idle { .. } | State::Dead => false,
        };
        if in_flight {
            // Its download (from the upstream or from peers) serves the asker as it goes.
            return true;
        }
        // The asked node's own view: its lookup and its connections.
        let (found, _) = self.nearest_lookup(node);
        let mut peers = found;
        for c in &self.connected[node] {
            if self.alive(*c) && !peers.contains(c) {
                peers.push(*c);
            }
        }
        let keys: Vec<&[u8]> = peers.iter().map(|p| self.keys[*p].as_slice()).collect();
        let order = claimants(&self.key, &self.keys[node], &keys);
        match honour(&order) {
            Honour::Refuse => {
                self.outcome.refused += 1;
                false
            }
            Honour::Upstream => {
                self.fetch_upstream(node, tick, tick);
                true
            }
            Honour::ThroughNearer => {
                self.start_search_for(node, tick, false, tick, true);
                true
            }
        }
    }
}

/// The connections of `n` nodes each holding at most `max_peers`, and which are full: each
/// node dials up to `view` of the latest earlier nodes (as the end-to-end tests start each
/// node with the earlier ones as peers); then, as Kademlia's lookups connect more, each node
/// in turn tries `2 × max_peers` random others; a dial is refused when either end is full. A
/// draw that leaves the nodes in more than one group is drawn again (nodes that cannot reach
/// each other at all each fetch the blob, rightly), up to 16 draws.
fn capped_topology(
    n: usize,
    view: usize,
    max_peers: usize,
    rng: &mut Rng,
) -> (Vec<Vec<usize>>, Vec<bool>) {
    let dial = |connected: &mut Vec<Vec<usize>>, a: usize, b: usize| {
        if a != b
            && connected[a].len() < max_peers
            && connected[b].len() < max_peers
            && !connected[a].contains(&b)
        {
            connected[a].push(b);
            connected[b].push(a);
        }
    };
    let mut connected: Vec<Vec<usize>> = vec![Vec::new(); n];
    for _draw in 0..16 {
        connected = vec![Vec::new(); n];
        for node in 1..n {
            for earlier in (0..node).rev().take(view) {
                dial(&mut connected, node, earlier);
            }
        }
        for node in 0..n {
            for _ in 0..2 * max_peers {
                let other = rng.below(n as u64) as usize;
                dial(&mut connected, node, other);
            }
        }
        if one_group(&connected) {
            break;
        }
    }
    let full = connected.iter().map(|c| c.len() >= max_peers).collect();
    (connected, full)
}

/// Whether every node reaches every other over `connected`'s connections.
fn one_group(connected: &[Vec<usize>]) -> bool {
    if connected.is_empty() {
        return true;
    }
    let mut seen = vec![false; connected.len()];
    let mut stack = vec![0];
    while let Some(node) = stack.pop() {
        if core::mem::replace(&mut seen[node], true) {
            continue;
        }
        stack.extend(connected[node].iter().copied().filter(|p| !seen[*p]));
    }
    seen.iter().all(|s| *s)
}
