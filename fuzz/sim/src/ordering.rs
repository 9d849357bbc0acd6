//! Tendermint ordering under faults: `n` members run `core::consensus::ordering` over a seeded
//! [`SimNet`] that, for a while, drops, delays, duplicates and reorders messages, partitions
//! the members (symmetric split, one-way cut, or one member isolated), crashes honest members
//! and restarts them with only what they had synced (votes wait for their state to be synced,
//! so a crash loses unsent votes, never makes a member vote twice), and skews every member's
//! clock by up to ±5 minutes; then it heals. Up to f members are byzantine: silent,
//! equivocating (a proposer sending different values to different members, votes for random
//! values), proposing invalid batches, or splitting its proposals and votes between two halves
//! of the members in every round.
//!
//! After every step: no two honest members decide different values at a height, no invalid
//! value is decided, heights are decided in order, no honest member (even across a restart)
//! sends two different votes for one height, round and step, and buffers stay bounded. After
//! healing every honest member decides every height within a bound.

use std::collections::{BTreeSet, HashMap};

use pyrsia_core::consensus::limits::{MessageClass, RateLimit};
use pyrsia_core::consensus::ordering::{
    KEPT_HEIGHTS, MAX_VALUES_PER_VOTER, Message, Ordering, OrderingOutput, ROUNDS_AHEAD, ValueId,
    VotingState, sha256_id,
};
use pyrsia_core::consensus::wire::{CheckpointHead, MemberMessage, Vote};
use pyrsia_core::digest::Hasher;
use pyrsia_core::identity::{KeyId, Signature};
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};

use crate::net::{Faults, Partition, SimNet};

/// Heights every honest member must decide.
pub const HEIGHTS: u64 = 3;
const TIMEOUT: Duration = Duration::from_secs(2);
const FAULTY_FOR: Duration = Duration::from_secs(60);
/// Byzantine messages an honest member keeps for gossip (a bounded cache, as gossipsub's).
const MAX_RELAYED: usize = 20_000;
/// Members' clocks differ from true time by up to this much either way (PROTOCOL case 29).
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// Local clocks start this far after true time zero, so a skewed clock never goes negative.
const CLOCK_BASE: Duration = Duration::from_secs(600);
/// What a signed envelope adds to every member message (sender id, nonce, signature, lengths).
const ENVELOPE_BYTES: usize = 32 + 10 + 64 + 3;

/// What a byzantine member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Sends nothing.
    Silent,
    /// Proposes a different value to each member and votes for random values.
    Equivocate,
    /// Proposes invalid batches and votes for them.
    Invalid,
    /// The vote-splitter (PROTOCOL case 8): in every height and round it hears of, sends one
    /// value to the lower half of the members and another to the upper half (as the proposal
    /// when it is the round's proposer) and prevotes and precommits each half's value to that
    /// half. With a quorum of 2f+1 at n = 5 this forks; with q = ⌈(n+f+1)/2⌉ it cannot.
    SplitVotes,
    /// The flooder: on every message it hears, sends each member junk prevotes and precommits
    /// for random values over the rounds ahead and the next heights, and proposals for far
    /// heights; when it is a round's proposer, only invalid values.
    Flood,
}

/// One simulation's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Members.
    pub nodes: usize,
    /// Byzantine members (≤ f).
    pub byzantine: usize,
    /// Everything random derives from it.
    pub seed: u64,
    /// What every byzantine member does; `None`: each draws one from the seed.
    pub adversary: Option<Adversary>,
}

/// The faults of a run: drawn from the seed, or none ([`Scenario::calm`], for measuring).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The network's behaviour until it heals.
    pub faults: Faults,
    /// The partition until it heals.
    pub partition: Option<Partition>,
    /// Crash an honest member and restart it.
    pub crashes: bool,
    /// Skew every member's clock.
    pub skew: bool,
    /// Sync written voting state only at a later step, now and then (a crash in between
    /// loses it); otherwise at once.
    pub lazy_sync: bool,
    /// Heights to decide.
    pub heights: u64,
    /// Bytes of each proposed value (a batch).
    pub value_len: usize,
}

impl Scenario {
    /// A network that delivers everything once after `delay`, with no partition, crash or skew.
    pub fn calm(delay: Duration, heights: u64, value_len: usize) -> Scenario {
        Scenario {
            faults: Faults::reliable(delay),
            partition: None,
            crashes: false,
            skew: false,
            lazy_sync: false,
            heights,
            value_len,
        }
    }

    fn from_seed(n: usize, rng: &mut Rng) -> Scenario {
        let faults = Faults {
            drop_per_mille: rng.below(150),
            duplicate_per_mille: rng.below(100),
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(1 + rng.below(3_000)),
        };
        let sides = |rng: &mut Rng| (0..n).map(|_| rng.chance(1, 2)).collect();
        let partition = match rng.below(4) {
            0 => None,
            1 => Some(Partition::Split(sides(rng))),
            2 => Some(Partition::OneWay(sides(rng))),
            _ => Some(Partition::Isolate(rng.below(n as u64) as usize)),
        };
        Scenario {
            faults,
            partition,
            crashes: rng.chance(1, 2),
            skew: true,
            lazy_sync: true,
            heights: HEIGHTS,
            value_len: 3,
        }
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SHA-256 over every delivery and decision, in order.
    pub trace: [u8; 32],
    /// Deliveries processed.
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Bytes those messages take on the wire (signed member messages).
    pub bytes: u64,
    /// Virtual time when the last honest member decided the last height.
    pub finished_at: Option<Instant>,
    /// When the last honest member decided each height.
    pub decided_at: Vec<Instant>,
    /// Honest members crashed and restarted.
    pub crashes: u32,
    /// Invariant violations.
    pub violations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Wire {
    Consensus(Message),
    /// A byzantine member's message relayed by an honest one, as gossipsub floods every
    /// signed message to the whole mesh: `.0` is the original sender. Tendermint's liveness
    /// assumes such gossip (an honest member locked on a value eventually lets the others see
    /// the prevotes it locked on); without it a vote-splitter's one-off votes leave members
    /// locked on evidence the others never saw.
    Relayed(usize, Message),
    /// A decision with its certificate (modelled: only honest members send these).
    Decision(u64, Vec<u8>),
    /// Log replication: the decisions from `.0` on, with their final checkpoints, for a
    /// member further behind than the decisions the state machine keeps (as a node fetches
    /// the entries under a newer checkpoint from a peer).
    Sync(u64, Vec<Vec<u8>>),
}

fn valid(_: u64, value: &[u8]) -> bool {
    value.first() == Some(&b'v')
}

/// What a message takes on the wire: the member message as `core::consensus::wire` encodes
/// it (a precommit for a value carries a checkpoint head and a cosignature) in its envelope.
fn wire_len(wire: &Wire) -> usize {
    let head = CheckpointHead {
        size: 0,
        root: [0; 32],
        timestamp: 0,
    };
    let signature = Signature::from_bytes(&[0; 64]);
    let vote = match wire {
        Wire::Consensus(Message::Proposal {
            height,
            round,
            value,
            valid_round,
        })
        | Wire::Relayed(
            _,
            Message::Proposal {
                height,
                round,
                value,
                valid_round,
            },
        ) => Vote::Proposal {
            height: *height,
            round: *round,
            value,
            valid_round: *valid_round,
        },
        Wire::Consensus(Message::Prevote { height, round, id })
        | Wire::Relayed(_, Message::Prevote { height, round, id }) => Vote::Prevote {
            height: *height,
            round: *round,
            id: *id,
        },
        Wire::Consensus(Message::Precommit { height, round, id })
        | Wire::Relayed(_, Message::Precommit { height, round, id }) => Vote::Precommit {
            height: *height,
            round: *round,
            value: id.map(|_| (head, signature)),
        },
        // A decision travels as its batch and final checkpoint (a quorum of signature lines).
        Wire::Decision(_, value) => return ENVELOPE_BYTES + value.len() + 400,
        Wire::Sync(_, values) => {
            return ENVELOPE_BYTES + values.iter().map(|v| v.len() + 8).sum::<usize>() + 400;
        }
    };
    ENVELOPE_BYTES
        + postcard::to_allocvec(&MemberMessage::Vote(vote))
            .map(|v| v.len())
            .unwrap_or(0)
}

/// One simulated member.
struct Member {
    /// `None` while crashed, and for byzantine members.
    ordering: Option<Ordering>,
    adversary: Option<Adversary>,
    /// The voting state on disk.
    durable: Option<VotingState>,
    /// Written but not synced yet: lost in a crash, and the votes waiting for it with it.
    unsynced: Vec<(u64, VotingState)>,
    /// Local clock minus true time minus [`CLOCK_BASE`], in microseconds.
    skew: i64,
    crash_at: Option<Instant>,
    restart_at: Option<Instant>,
    /// The decided values, in height order (the persisted log: it survives crashes).
    decided: Vec<Vec<u8>>,
    /// Byzantine members' messages this member heard and relayed (gossip keeps them until
    /// they are delivered: they are relayed again when the network heals).
    relayed: Vec<(usize, Message)>,
    /// What `relayed` holds, by sender and message digest, for the duplicate check.
    relayed_keys: std::collections::HashSet<(usize, [u8; 32])>,
    /// Each other member's message rate, as the network layer limits it.
    rate: RateLimit,
}

impl Member {
    /// Keeps a byzantine member's message for gossip: its key, or `None` when it was kept
    /// already or falls outside what gossip relays.
    fn keep_relayed(&mut self, origin: usize, message: &Message) -> Option<[u8; 32]> {
        // Gossip relays what the receiving state machine would keep (the window of heights
        // and rounds it holds), within a bounded cache.
        let (height, round) = message.height_round();
        let decided = self.decided.len() as u64;
        if height + KEPT_HEIGHTS < decided
            || height > decided + KEPT_HEIGHTS
            || round > ROUNDS_AHEAD * 4
            || self.relayed.len() >= MAX_RELAYED
        {
            return None;
        }
        let mut hasher = Hasher::new();
        let (kind, id) = match message {
            Message::Proposal { value, .. } => (0u8, sha256_id(value)),
            Message::Prevote { id, .. } => (1, id.unwrap_or_default()),
            Message::Precommit { id, .. } => (2, id.unwrap_or_default()),
        };
        hasher.update(&[kind]);
        hasher.update(&height.to_le_bytes());
        hasher.update(&round.to_le_bytes());
        hasher.update(&id);
        let key = *hasher.finish().as_bytes();
        if !self.relayed_keys.insert((origin, key)) {
            return None;
        }
        self.relayed.push((origin, message.clone()));
        Some(key)
    }
}

impl Member {
    fn local(&self, now: Instant) -> Instant {
        let base = CLOCK_BASE.as_micros() as i64;
        Instant::from_micros((now.as_micros() as i64 + base + self.skew).max(0) as u64)
    }

    fn global(&self, local: Instant) -> Instant {
        let base = CLOCK_BASE.as_micros() as i64;
        Instant::from_micros((local.as_micros() as i64 - base - self.skew).max(0) as u64)
    }

    fn honest_and_up(&self) -> bool {
        self.adversary.is_none() && self.ordering.is_some()
    }

    /// Syncs what was written: the votes waiting for it may leave.
    fn sync(&mut self) {
        let Some(ordering) = &mut self.ordering else {
            return;
        };
        for (ticket, state) in self.unsynced.drain(..) {
            self.durable = Some(state);
            ordering.handle_persisted(ticket);
        }
    }
}

/// Re-indexes member `i`'s next timer after it changed (or after it crashed).
fn refresh_timer(
    members: &[Member],
    timers: &mut BTreeSet<(Instant, usize)>,
    timer_of: &mut [Option<Instant>],
    i: usize,
) {
    if let Some(old) = timer_of[i].take() {
        timers.remove(&(old, i));
    }
    let member = &members[i];
    let next = member
        .ordering
        .as_ref()
        .filter(|_| member.adversary.is_none())
        .and_then(Ordering::poll_timeout)
        .map(|t| member.global(t));
    if let Some(at) = next {
        timers.insert((at, i));
        timer_of[i] = Some(at);
    }
}

fn candidate(i: usize, height: u64, len: usize) -> Vec<u8> {
    let mut value = vec![b'v', i as u8, height as u8];
    value.resize(len.max(3), 0);
    value
}

/// Runs one simulation with the faults its seed draws.
pub fn run(params: Params) -> Outcome {
    let mut rng = Rng::seed_from_u64(params.seed ^ 0x0bd3_0bd3);
    let scenario = Scenario::from_seed(params.nodes, &mut rng);
    run_scenario(params, &scenario, &mut rng)
}

/// Runs one simulation under `scenario` (byzantine members and crash times still come from
/// the seed).
pub fn run_scenario(params: Params, scenario: &Scenario, rng: &mut Rng) -> Outcome {
    let n = params.nodes;
    let heights = scenario.heights;
    let mut members: Vec<Member> = (0..n)
        .map(|i| Member {
            ordering: Some(Ordering::new(i, n, 0, TIMEOUT, TIMEOUT)),
            adversary: None,
            durable: None,
            unsynced: Vec::new(),
            skew: 0,
            crash_at: None,
            restart_at: None,
            decided: Vec::new(),
            relayed: Vec::new(),
            relayed_keys: Default::default(),
            rate: RateLimit::default(),
        })
        .collect();
    let mut chosen = 0;
    while chosen < params.byzantine {
        let i = rng.below(n as u64) as usize;
        if members[i].adversary.is_none() {
            let drawn = match rng.below(5) {
                0 => Adversary::Silent,
                1 => Adversary::Equivocate,
                2 => Adversary::Invalid,
                3 => Adversary::Flood,
                _ => Adversary::SplitVotes,
            };
            members[i].adversary = Some(params.adversary.unwrap_or(drawn));
            members[i].ordering = None;
            chosen += 1;
        }
    }
    let skew_range = MAX_SKEW.as_micros() * 2 + 1;
    for member in members.iter_mut() {
        if scenario.skew {
            member.skew = rng.below(skew_range) as i64 - MAX_SKEW.as_micros() as i64;
        }
    }
    let byzantine: Vec<bool> = members.iter().map(|m| m.adversary.is_some()).collect();
    // Byzantine messages some honest member relayed already.
    let mut relayed_once: std::collections::HashSet<(usize, [u8; 32])> = Default::default();
    let mut victim = None;
    if scenario.crashes {
        let honest: Vec<usize> = (0..n).filter(|i| members[*i].adversary.is_none()).collect();
        let chosen = honest[rng.below(honest.len() as u64) as usize];
        victim = Some(chosen);
        let victim = chosen;
        let at = Instant::ZERO + Duration::from_micros(rng.below(FAULTY_FOR.as_micros()));
        members[victim].crash_at = Some(at);
        members[victim].restart_at = Some(at + Duration::from_micros(1 + rng.below(30_000_000)));
    }
    let mut net: SimNet<Wire> = SimNet::new(rng.next_u64(), scenario.faults);
    if let Some(partition) = &scenario.partition {
        net.partition(partition.clone());
    }
    let mut healed = false;
    // The (splitter, height, round) a vote-splitter has split already: once per round.
    let mut split: BTreeSet<(usize, u64, u32)> = BTreeSet::new();
    let mut votes: HashMap<(usize, u8, u64, u32), Option<ValueId>> = HashMap::new();
    // The first value decided at each height, and the member the last step touched (`None`:
    // every member, after timers).
    let mut agreed: Vec<Vec<u8>> = Vec::new();
    let mut touched: Option<usize> = None;
    // Every live honest member's next timer (true time), indexed so that finding the next one
    // costs no scan of the members.
    let mut timers: BTreeSet<(Instant, usize)> = BTreeSet::new();
    let mut timer_of: Vec<Option<Instant>> = vec![None; n];
    let honest = members.iter().filter(|m| m.adversary.is_none()).count();
    let mut finished = 0;
    let mut trace = Hasher::new();
    let mut outcome = Outcome {
        trace: [0; 32],
        steps: 0,
        messages: 0,
        bytes: 0,
        finished_at: None,
        decided_at: Vec::new(),
        crashes: 0,
        violations: Vec::new(),
    };
    let mut now = Instant::ZERO;
    for (i, m) in members.iter_mut().enumerate() {
        let local = m.local(now);
        if let Some(ordering) = &mut m.ordering {
            ordering.set_candidate(candidate(i, 0, scenario.value_len));
            ordering.start(local, &valid);
        }
    }
    let bound = Instant::ZERO + FAULTY_FOR + Duration::from_secs(600);
    loop {
        // Outputs of the members the last step touched (all of them after timers), until
        // they have none left; then their next timers.
        let scope: Vec<usize> = touched.map_or_else(|| (0..n).collect(), |t| vec![t]);
        for i in scope {
            loop {
                let mut outputs = Vec::new();
                loop {
                    let member = &mut members[i];
                    let Some(ordering) = member
                        .ordering
                        .as_mut()
                        .filter(|_| member.adversary.is_none())
                    else {
                        break;
                    };
                    match ordering.poll_output() {
                        Some(OrderingOutput::Persist { ticket, state }) => {
                            member.unsynced.push((ticket, state));
                        }
                        Some(output) => outputs.push(output),
                        // Written state is synced now or at a later step (a crash in between
                        // loses it, and the votes waiting for it are never sent).
                        None if !member.unsynced.is_empty()
                            && (!scenario.lazy_sync || rng.chance(1, 2)) =>
                        {
                            member.sync()
                        }
                        None => break,
                    }
                }
                if outputs.is_empty() {
                    break;
                }
                for output in outputs {
                    match output {
                        OrderingOutput::Persist { .. } => {}
                        OrderingOutput::Broadcast(message) => {
                            let (kind, height, round, id) = match &message {
                                Message::Proposal {
                                    height,
                                    round,
                                    value,
                                    ..
                                } => (0, *height, *round, Some(sha256_id(value))),
                                Message::Prevote { height, round, id } => (1, *height, *round, *id),
                                Message::Precommit { height, round, id } => {
                                    (2, *height, *round, *id)
                                }
                            };
                            if let Some(earlier) = votes.insert((i, kind, height, round), id)
                                && earlier != id
                            {
                                outcome.violations.push(format!(
                                    "honest member {i} sent two different votes (step {kind}) at height {height} round {round}"
                                ));
                            }
                            let wire = Wire::Consensus(message);
                            let len = wire_len(&wire) as u64;
                            for j in (0..n).filter(|j| *j != i) {
                                net.send(now, i, j, wire.clone());
                                outcome.messages += 1;
                                outcome.bytes += len;
                            }
                        }
                        OrderingOutput::RelayProof {
                            height,
                            round,
                            id,
                            voters,
                        } => {
                            for voter in voters {
                                let vote = Message::Prevote {
                                    height,
                                    round,
                                    id: Some(id),
                                };
                                let wire = Wire::Relayed(voter, vote);
                                let len = wire_len(&wire) as u64;
                                for k in (0..n).filter(|k| *k != i && *k != voter) {
                                    net.send(now, i, k, wire.clone());
                                    outcome.messages += 1;
                                    outcome.bytes += len;
                                }
                            }
                        }
                        OrderingOutput::SendDecision { to, height, value } => {
                            let wire = Wire::Decision(height, value);
                            outcome.bytes += wire_len(&wire) as u64;
                            net.send(now, i, to, wire);
                            outcome.messages += 1;
                        }
                        OrderingOutput::Decided { height, value } => {
                            trace.update(&(i as u64).to_le_bytes());
                            trace.update(&height.to_le_bytes());
                            trace.update(&value);
                            if !valid(height, &value) {
                                outcome.violations.push(format!(
                                    "member {i} decided an invalid value at {height}"
                                ));
                            }
                            let member = &mut members[i];
                            if member.decided.len() as u64 != height {
                                outcome.violations.push(format!(
                                    "member {i} decided height {height} out of order"
                                ));
                            }
                            // Agreement: every honest decision at a height is the first one.
                            match agreed.get(height as usize) {
                                Some(first) if *first != value => outcome.violations.push(format!(
                                    "two honest members decided differently at height {height}"
                                )),
                                Some(_) => {}
                                None => agreed.push(value.clone()),
                            }
                            member.decided.push(value);
                            if member.decided.len() as u64 == heights {
                                finished += 1;
                            }
                            if let Some(ordering) = &mut member.ordering {
                                ordering.set_candidate(candidate(
                                    i,
                                    height + 1,
                                    scenario.value_len,
                                ));
                            }
                            let h = height as usize;
                            let everyone = members
                                .iter()
                                .filter(|m| m.adversary.is_none())
                                .all(|m| m.decided.len() > h);
                            if everyone && outcome.decided_at.len() == h {
                                outcome.decided_at.push(now);
                            }
                        }
                    }
                }
            }
            refresh_timer(&members, &mut timers, &mut timer_of, i);
        }
        // What an honest member holds: a proposal and two votes per member and round, for the
        // rounds so far and the window ahead, over the heights kept (checked for the members
        // the last step touched: only their buffers changed).
        for (i, m) in members
            .iter()
            .enumerate()
            .filter(|(i, m)| m.honest_and_up() && touched.is_none_or(|t| t == *i))
        {
            let Some(ordering) = &m.ordering else {
                continue;
            };
            let rounds = ordering.round() as usize + ROUNDS_AHEAD as usize + 1;
            let most = (KEPT_HEIGHTS as usize + 1) * rounds * (2 * n * MAX_VALUES_PER_VOTER + 1);
            if ordering.buffered() > most {
                outcome.violations.push(format!(
                    "member {i} holds {} messages, more than {most}",
                    ordering.buffered()
                ));
            }
        }
        if !outcome.violations.is_empty() {
            break;
        }
        if finished == honest {
            outcome.finished_at = Some(now);
            break;
        }
        if now >= Instant::ZERO + FAULTY_FOR && !healed {
            net.heal(now, Faults::reliable(Duration::from_millis(20)));
            // Gossip's repair: what was relayed before is delivered now.
            for (j, member) in members.iter().enumerate() {
                let height = member.decided.len() as u64;
                for (origin, message) in &member.relayed {
                    if message.height_round().0 < height {
                        continue;
                    }
                    let wire = Wire::Relayed(*origin, message.clone());
                    for k in (0..n).filter(|k| *k != j && k != origin) {
                        outcome.bytes += wire_len(&wire) as u64;
                        net.send(now, j, k, wire.clone());
                        outcome.messages += 1;
                    }
                }
            }
            healed = true;
        }
        // The next event: a delivery, a member's timer (on its own clock), a crash or restart.
        let next_timer = timers.first().map(|(at, _)| *at);
        let next_fault = victim.and_then(|v| members[v].crash_at.or(members[v].restart_at));
        let Some(next) = [net.next_at(), next_timer, next_fault]
            .into_iter()
            .flatten()
            .min()
        else {
            break;
        };
        if next > bound {
            break;
        }
        now = now.max(next);
        if let Some(i) = victim.filter(|v| members[*v].crash_at.is_some_and(|at| at <= now)) {
            // Crash: what was not synced is lost.
            let member = &mut members[i];
            member.crash_at = None;
            member.ordering = None;
            member.unsynced.clear();
            outcome.crashes += 1;
            trace.update(b"crash");
            trace.update(&(i as u64).to_le_bytes());
            touched = Some(i);
            continue;
        }
        if let Some(i) = victim.filter(|v| {
            members[*v].crash_at.is_none() && members[*v].restart_at.is_some_and(|at| at <= now)
        }) {
            let member = &mut members[i];
            member.restart_at = None;
            let height = member.decided.len() as u64;
            let mut ordering = match &member.durable {
                Some(state) if state.height == height => {
                    Ordering::resume(i, n, state, TIMEOUT, TIMEOUT)
                }
                _ => Ordering::new(i, n, height, TIMEOUT, TIMEOUT),
            };
            ordering.set_candidate(candidate(i, height, scenario.value_len));
            ordering.start(member.local(now), &valid);
            member.ordering = Some(ordering);
            // Its peers sync their gossip with it when it reconnects: the byzantine votes
            // they relayed (which may justify their locks) reach it again.
            for (j, peer) in members.iter().enumerate().filter(|(j, _)| *j != i) {
                for (origin, message) in &peer.relayed {
                    if message.height_round().0 >= height && *origin != i {
                        let wire = Wire::Relayed(*origin, message.clone());
                        outcome.bytes += wire_len(&wire) as u64;
                        net.send(now, j, i, wire);
                        outcome.messages += 1;
                    }
                }
            }
            trace.update(b"restart");
            trace.update(&(i as u64).to_le_bytes());
            touched = Some(i);
            continue;
        }
        touched = None;
        if net.next_at() == Some(next) {
            let Some(d) = net.pop() else { break };
            touched = Some(d.to);
            outcome.steps += 1;
            trace.update(&d.at.as_micros().to_le_bytes());
            trace.update(&(d.from as u64).to_le_bytes());
            trace.update(&(d.to as u64).to_le_bytes());
            let member = &mut members[d.to];
            let local = member.local(now);
            match (member.adversary, d.message) {
                // Over the sender's message rate (the same `RateLimit` the daemon's network
                // applies per member): neither handled nor relayed.
                (None, Wire::Consensus(_))
                    if byzantine[d.from]
                        && !member.rate.allow(
                            KeyId([d.from as u8; 32]),
                            MessageClass::Vote,
                            now.as_micros(),
                        ) => {}
                (None, Wire::Consensus(message)) if byzantine[d.from] => {
                    // Relayed once to everyone else, then handled like any message.
                    // The mesh delivers each message to each member about once: the first
                    // honest member to receive it relays it to the others.
                    let kept = member.keep_relayed(d.from, &message);
                    if kept.is_some_and(|key| relayed_once.insert((d.from, key))) {
                        let wire = Wire::Relayed(d.from, message.clone());
                        for k in (0..n).filter(|k| *k != d.to && *k != d.from) {
                            outcome.bytes += wire_len(&wire) as u64;
                            net.send(now, d.to, k, wire.clone());
                            outcome.messages += 1;
                        }
                    }
                    if let Some(ordering) = &mut member.ordering {
                        ordering.handle_message(local, d.from, message, &valid);
                    }
                }
                (None, Wire::Relayed(origin, message)) => {
                    // Kept for the gossip sync with a peer that reconnects, not forwarded
                    // again (gossip delivers each message once per member).
                    let _ = member.keep_relayed(origin, &message);
                    if let Some(ordering) = &mut member.ordering {
                        ordering.handle_message(local, origin, message, &valid);
                    }
                }
                (None, Wire::Consensus(message)) => {
                    let (height, _) = message.height_round();
                    let decided = member.decided.len() as u64;
                    let kept = member
                        .ordering
                        .as_ref()
                        .is_some_and(|o| o.decision(height).is_some());
                    if member.ordering.is_some() && height < decided && !kept {
                        // The sender is behind by more than the decisions the state machine
                        // keeps (it keeps none from before a restart): it gets the log.
                        let tail = member.decided[height as usize..].to_vec();
                        let wire = Wire::Sync(height, tail);
                        outcome.bytes += wire_len(&wire) as u64;
                        net.send(now, d.to, d.from, wire);
                        outcome.messages += 1;
                    } else if let Some(ordering) = &mut member.ordering {
                        ordering.handle_message(local, d.from, message, &valid);
                    }
                }
                (None, Wire::Sync(first, values)) => {
                    if let Some(ordering) = &mut member.ordering {
                        for (height, value) in (first..).zip(values) {
                            if height == ordering.height() {
                                ordering.handle_decision(local, height, value, &valid);
                            }
                        }
                    }
                }
                (None, Wire::Decision(height, value)) => {
                    if let Some(ordering) = &mut member.ordering {
                        ordering.handle_decision(local, height, value, &valid);
                    }
                }
                // Byzantine members answer honest members only (two flooders answering each
                // other would only measure the simulation).
                (Some(_), Wire::Consensus(_)) if byzantine[d.from] => {}
                (Some(Adversary::SplitVotes), Wire::Consensus(message)) => {
                    // Splits the round it hears of and, ahead of time, the next rounds and
                    // the next height's first rounds that it proposes (honest members keep
                    // early proposals, so its split values are there when their round starts).
                    let (height, round) = message.height_round();
                    let ahead = (round..round + 3)
                        .map(|r| (height, r))
                        .chain((0..3).map(|r| (height + 1, r)));
                    for (h, r) in ahead {
                        let proposer = ((h + u64::from(r)) % n as u64) as usize == d.to;
                        if (proposer || (h, r) == (height, round)) && split.insert((d.to, h, r)) {
                            for (to, message) in split_votes(d.to, n, h, r) {
                                let wire = Wire::Consensus(message);
                                outcome.bytes += wire_len(&wire) as u64;
                                net.send(now, d.to, to, wire);
                                outcome.messages += 1;
                            }
                        }
                    }
                }
                (Some(adversary), Wire::Consensus(message)) => {
                    for (to, message) in attack(adversary, d.to, n, &message, rng) {
                        let wire = Wire::Consensus(message);
                        outcome.bytes += wire_len(&wire) as u64;
                        net.send(now, d.to, to, wire);
                        outcome.messages += 1;
                    }
                }
                (Some(_), Wire::Decision(..) | Wire::Sync(..) | Wire::Relayed(..)) => {}
            }
        } else {
            for member in members.iter_mut().filter(|m| m.honest_and_up()) {
                let local = member.local(now);
                if let Some(ordering) = &mut member.ordering {
                    ordering.handle_timeout(local, &valid);
                }
            }
        }
    }
    if outcome.violations.is_empty() && outcome.finished_at.is_none() {
        let behind: Vec<usize> = (0..n)
            .filter(|i| {
                members[*i].adversary.is_none() && (members[*i].decided.len() as u64) < heights
            })
            .collect();
        if std::env::var_os("SIM_DEBUG").is_some() {
            eprintln!("scenario {scenario:?} now {now:?} in flight {}", net.len());
            for (i, m) in members.iter().enumerate() {
                eprintln!(
                    "member {i}: adversary {:?} up {} height {:?} round {:?} decided {} durable {:?} unsynced {} timeout {:?}",
                    m.adversary,
                    m.ordering.is_some(),
                    m.ordering.as_ref().map(Ordering::height),
                    m.ordering.as_ref().map(Ordering::round),
                    m.decided.len(),
                    m.durable,
                    m.unsynced.len(),
                    m.ordering
                        .as_ref()
                        .and_then(Ordering::poll_timeout)
                        .map(|t| m.global(t))
                );
            }
        }
        if std::env::var_os("SIM_DEBUG").is_some() {
            for (i, m) in members.iter().enumerate() {
                let Some(o) = &m.ordering else { continue };
                let h = o.height();
                for r in 0..=o.round().min(20) {
                    let proposal = o.proposal_id(h, r);
                    let lock =
                        (0..=1u8).map(|half| sha256_id(&[b'v', b'S', half, h as u8, r as u8]));
                    let tallies: Vec<_> = lock.map(|id| o.tally(h, r, Some(id))).collect();
                    let voters: Vec<_> = o
                        .prevoters(h, r)
                        .into_iter()
                        .map(|(v, ids)| {
                            (v, ids.iter().map(|id| id.map(|x| x[0])).collect::<Vec<_>>())
                        })
                        .collect();
                    eprintln!(
                        "member {i} h {h} r {r}: proposal {:?} split tallies {tallies:?} proposal tally {:?} prevoters {voters:?}",
                        proposal.map(|p| p[0]),
                        proposal.map(|p| o.tally(h, r, Some(p)))
                    );
                }
            }
        }
        outcome.violations.push(format!(
            "liveness: members {behind:?} did not decide {heights} heights within the bound"
        ));
    }
    outcome.trace = *trace.finish().as_bytes();
    outcome
}

/// What the vote-splitter `me` sends for `height`, `round`: each half of the members gets its
/// own valid value, as the proposal when `me` proposes that round, and `me`'s prevote and
/// precommit for it.
fn split_votes(me: usize, n: usize, height: u64, round: u32) -> Vec<(usize, Message)> {
    let proposer = ((height + u64::from(round)) % n as u64) as usize == me;
    let mut out = Vec::new();
    for to in (0..n).filter(|to| *to != me) {
        let rank = to - usize::from(to > me);
        let half = u8::from(rank >= (n - 1) / 2);
        let value = vec![b'v', b'S', half, height as u8, round as u8];
        lie(&mut out, to, (height, round), value, proposer);
    }
    out
}

/// Pushes to `to` a byzantine member's prevote and precommit for `value` at `at` (height,
/// round), after `value` as the proposal when `propose`.
fn lie(out: &mut Vec<(usize, Message)>, to: usize, at: (u64, u32), value: Vec<u8>, propose: bool) {
    let ((height, round), id) = (at, Some(sha256_id(&value)));
    if propose {
        let valid_round = None;
        out.push((
            to,
            Message::Proposal {
                height,
                round,
                value,
                valid_round,
            },
        ));
    }
    out.push((to, Message::Prevote { height, round, id }));
    out.push((to, Message::Precommit { height, round, id }));
}

/// What a byzantine member sends on hearing `heard`: lies in the same height and round.
fn attack(
    adversary: Adversary,
    me: usize,
    n: usize,
    heard: &Message,
    rng: &mut Rng,
) -> Vec<(usize, Message)> {
    let (height, round) = heard.height_round();
    let mut out = Vec::new();
    match adversary {
        Adversary::Silent => {}
        Adversary::Equivocate => {
            for to in (0..n).filter(|to| *to != me) {
                let value = vec![b'v', me as u8, to as u8, rng.below(4) as u8];
                lie(&mut out, to, (height, round), value, true);
            }
        }
        Adversary::SplitVotes => return split_votes(me, n, height, round),
        Adversary::Flood => {
            // Answers every message (the others only now and then): that is the flood.
            for to in (0..n).filter(|to| *to != me) {
                let at = (
                    height + rng.below(3),
                    round + rng.below(u64::from(ROUNDS_AHEAD) + 4) as u32,
                );
                let junk = vec![b'j', rng.below(256) as u8, rng.below(256) as u8];
                let propose = ((at.0 + u64::from(at.1)) % n as u64) as usize == me;
                lie(&mut out, to, at, junk, propose);
                if rng.chance(1, 4) {
                    let far = (height + 1_000 + rng.below(1_000), 0);
                    lie(&mut out, to, far, b"junk".to_vec(), true);
                }
            }
            return out;
        }
        Adversary::Invalid => {
            for to in (0..n).filter(|to| *to != me) {
                lie(&mut out, to, (height, round), b"bad batch".to_vec(), true);
            }
        }
    }
    // Answer only now and then: an adversary that answers every message floods the queue.
    if rng.chance(1, 8) { out } else { Vec::new() }
}
