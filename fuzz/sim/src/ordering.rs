//! Tendermint ordering under faults: `n` members run `core::consensus::ordering` over a seeded
//! [`SimNet`] that drops, delays, duplicates and reorders for a while and then heals. Up to f
//! members are byzantine: silent (crashed), equivocating (a proposer sending different values
//! to different members, votes for random values), or proposing invalid batches. After every
//! step: no two honest members decide different values at a height, and no invalid value is
//! decided; after healing every honest member decides every height within a bound.

use pyrsia_core::consensus::ordering::{
    KEPT_HEIGHTS, Message, Ordering, OrderingOutput, ROUNDS_AHEAD,
};
use pyrsia_core::digest::Hasher;
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};

use crate::net::{Faults, SimNet};

/// Heights every honest member must decide.
pub const HEIGHTS: u64 = 3;
const TIMEOUT: Duration = Duration::from_secs(2);
const FAULTY_FOR: Duration = Duration::from_secs(60);

/// What a byzantine member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Sends nothing.
    Silent,
    /// Proposes a different value to each member and votes for random values.
    Equivocate,
    /// Proposes invalid batches and votes for them.
    Invalid,
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
    /// Virtual time when the last honest member decided the last height.
    pub finished_at: Option<Instant>,
    /// Invariant violations.
    pub violations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Wire {
    Consensus(Message),
    /// A decision with its certificate (modelled: only honest members send these).
    Decision(u64, Vec<u8>),
}

fn valid(_: u64, value: &[u8]) -> bool {
    value.first() == Some(&b'v')
}

/// Runs one simulation.
pub fn run(params: Params) -> Outcome {
    let n = params.nodes;
    let mut rng = Rng::seed_from_u64(params.seed ^ 0x0bd3_0bd3);
    let mut byzantine: Vec<Option<Adversary>> = vec![None; n];
    let mut chosen = 0;
    while chosen < params.byzantine {
        let i = rng.below(n as u64) as usize;
        if byzantine[i].is_none() {
            byzantine[i] = Some(match rng.below(3) {
                0 => Adversary::Silent,
                1 => Adversary::Equivocate,
                _ => Adversary::Invalid,
            });
            chosen += 1;
        }
    }
    let faults = Faults {
        drop_per_mille: rng.below(150),
        duplicate_per_mille: rng.below(100),
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(1 + rng.below(3_000)),
    };
    let mut net: SimNet<Wire> = SimNet::new(rng.next_u64(), faults);
    let mut healed = false;
    let mut members: Vec<Ordering> = (0..n)
        .map(|i| Ordering::new(i, n, 0, TIMEOUT, TIMEOUT))
        .collect();
    let mut decided: Vec<Vec<Vec<u8>>> = vec![Vec::new(); n];
    let mut trace = Hasher::new();
    let mut outcome = Outcome {
        trace: [0; 32],
        steps: 0,
        messages: 0,
        finished_at: None,
        violations: Vec::new(),
    };
    let mut now = Instant::ZERO;
    for (i, m) in members.iter_mut().enumerate() {
        if byzantine[i].is_none() {
            m.set_candidate(vec![b'v', i as u8, 0]);
            m.start(now, &valid);
        }
    }
    let bound = Instant::ZERO + FAULTY_FOR + Duration::from_secs(600);
    loop {
        for i in 0..n {
            if byzantine[i].is_some() {
                continue;
            }
            while let Some(output) = members[i].poll_output() {
                match output {
                    OrderingOutput::Persist { ticket, .. } => members[i].handle_persisted(ticket),
                    OrderingOutput::Broadcast(message) => {
                        for j in (0..n).filter(|j| *j != i) {
                            net.send(now, i, j, Wire::Consensus(message.clone()));
                            outcome.messages += 1;
                        }
                    }
                    OrderingOutput::SendDecision { to, height, value } => {
                        net.send(now, i, to, Wire::Decision(height, value));
                        outcome.messages += 1;
                    }
                    OrderingOutput::Decided { height, value } => {
                        trace.update(&(i as u64).to_le_bytes());
                        trace.update(&height.to_le_bytes());
                        trace.update(&value);
                        if !valid(height, &value) {
                            outcome
                                .violations
                                .push(format!("member {i} decided an invalid value at {height}"));
                        }
                        if decided[i].len() as u64 != height {
                            outcome
                                .violations
                                .push(format!("member {i} decided height {height} out of order"));
                        }
                        decided[i].push(value);
                        members[i].set_candidate(vec![b'v', i as u8, height as u8 + 1]);
                    }
                }
            }
        }
        // Agreement.
        for h in 0..HEIGHTS as usize {
            let mut values = decided.iter().filter_map(|d| d.get(h));
            if let Some(first) = values.next()
                && values.any(|v| v != first)
            {
                outcome.violations.push(format!(
                    "two honest members decided differently at height {h}"
                ));
            }
        }
        // What an honest member holds: a proposal and two votes per member and round, for the
        // rounds so far and the window ahead, over the heights kept.
        for i in (0..n).filter(|i| byzantine[*i].is_none()) {
            let rounds = members[i].round() as usize + ROUNDS_AHEAD as usize + 1;
            let most = (KEPT_HEIGHTS as usize + 1) * rounds * (2 * n + 1);
            if members[i].buffered() > most {
                outcome.violations.push(format!(
                    "member {i} holds {} messages, more than {most}",
                    members[i].buffered()
                ));
            }
        }
        if !outcome.violations.is_empty() {
            break;
        }
        let honest_done = (0..n)
            .filter(|i| byzantine[*i].is_none())
            .all(|i| decided[i].len() as u64 >= HEIGHTS);
        if honest_done {
            outcome.finished_at = Some(now);
            break;
        }
        if now >= Instant::ZERO + FAULTY_FOR && !healed {
            net.heal(now, Faults::reliable(Duration::from_millis(20)));
            healed = true;
        }
        let next_timer = (0..n)
            .filter(|i| byzantine[*i].is_none())
            .filter_map(|i| members[i].poll_timeout())
            .min();
        let Some(next) = net.next_at().into_iter().chain(next_timer).min() else {
            break;
        };
        if next > bound {
            break;
        }
        now = now.max(next);
        if net.next_at() == Some(next) {
            let Some(d) = net.pop() else { break };
            outcome.steps += 1;
            trace.update(&d.at.as_micros().to_le_bytes());
            trace.update(&(d.from as u64).to_le_bytes());
            trace.update(&(d.to as u64).to_le_bytes());
            match (byzantine[d.to], d.message) {
                (None, Wire::Consensus(message)) => {
                    members[d.to].handle_message(now, d.from, message, &valid)
                }
                (None, Wire::Decision(height, value)) => {
                    members[d.to].handle_decision(now, height, value, &valid)
                }
                (Some(adversary), Wire::Consensus(message)) => {
                    for (to, message) in attack(adversary, d.to, n, &message, &mut rng) {
                        net.send(now, d.to, to, Wire::Consensus(message));
                        outcome.messages += 1;
                    }
                }
                (Some(_), Wire::Decision(..)) => {}
            }
        } else {
            for i in (0..n).filter(|i| byzantine[*i].is_none()) {
                members[i].handle_timeout(now, &valid);
            }
        }
    }
    if outcome.violations.is_empty() && outcome.finished_at.is_none() {
        let behind: Vec<usize> = (0..n)
            .filter(|i| byzantine[*i].is_none() && (decided[*i].len() as u64) < HEIGHTS)
            .collect();
        outcome.violations.push(format!(
            "liveness: members {behind:?} did not decide {HEIGHTS} heights within the bound"
        ));
    }
    outcome.trace = *trace.finish().as_bytes();
    outcome
}

/// What a byzantine member sends on hearing `heard`: lies in the same height and round.
fn attack(
    adversary: Adversary,
    me: usize,
    n: usize,
    heard: &Message,
    rng: &mut Rng,
) -> Vec<(usize, Message)> {
    let (height, round) = match heard {
        Message::Proposal { height, round, .. }
        | Message::Prevote { height, round, .. }
        | Message::Precommit { height, round, .. } => (*height, *round),
    };
    let mut out = Vec::new();
    match adversary {
        Adversary::Silent => {}
        Adversary::Equivocate => {
            for to in (0..n).filter(|to| *to != me) {
                let value = vec![b'v', me as u8, to as u8, rng.below(4) as u8];
                let id = Some(*pyrsia_core::digest::Digest::sha256(&value).as_bytes());
                out.push((
                    to,
                    Message::Proposal {
                        height,
                        round,
                        value,
                        valid_round: None,
                    },
                ));
                out.push((to, Message::Prevote { height, round, id }));
                out.push((to, Message::Precommit { height, round, id }));
            }
        }
        Adversary::Invalid => {
            let value = b"bad batch".to_vec();
            let id = Some(*pyrsia_core::digest::Digest::sha256(&value).as_bytes());
            for to in (0..n).filter(|to| *to != me) {
                out.push((
                    to,
                    Message::Proposal {
                        height,
                        round,
                        value: value.clone(),
                        valid_round: None,
                    },
                ));
                out.push((to, Message::Prevote { height, round, id }));
                out.push((to, Message::Precommit { height, round, id }));
            }
        }
    }
    // Answer only now and then: an adversary that answers every message floods the queue.
    if rng.chance(1, 8) { out } else { Vec::new() }
}
