//! Build rounds under faults: `n` members each run a [`BuildRound`] for one request; builders
//! answer asks by broadcasting their attestation over a seeded [`SimNet`] that drops, delays,
//! duplicates and reorders. Up to f members are byzantine behind an adversary that attests a
//! colluding wrong digest, stays silent, replays an attestation of another request, or
//! equivocates. After every step the invariants of PROTOCOL.md §5 that concern builds are
//! checked; after the faults stop, every honest round must finish within a bound.

use pyrsia_core::consensus::{
    BuildOutput, BuildRound, DEFAULT_SLACK, RoundState, builder_order, selection_seed,
};
use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::identity::{KeyId, SecretKey, Signature};
use pyrsia_core::members::MemberSet;
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::entry::{
    Coordinates, DOCKER_FETCH_V1, DigestList, ECOSYSTEM_DOCKER, Genesis, KeyList, PieceRootList,
    Statement,
};

use crate::net::{Faults, NodeIndex, SimNet};

/// The request every simulated member verifies.
const COORDINATES: Coordinates<'static> = Coordinates {
    ecosystem: ECOSYSTEM_DOCKER,
    name: "docker.io/library/sim",
    version: "sha256:5151",
};
const REQUEST_INDEX: u64 = 3;
const SELECTION_SIZE: u64 = 3;
const SELECTION_ROOT: [u8; 32] = [0x51; 32];
/// A build type's timeout (one deadline).
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long faults last before the network heals.
const FAULTY_FOR: Duration = Duration::from_secs(120);

/// One simulation's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Members (n ≥ 3f+1).
    pub nodes: usize,
    /// Byzantine members (≤ f).
    pub byzantine: usize,
    /// Everything random derives from it.
    pub seed: u64,
    /// Every byzantine member behaves so; `None` lets the seed pick each one's behaviour.
    pub adversary: Option<Adversary>,
}

/// What a byzantine member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Attests the wrong digest every byzantine member agrees on (cases 3, 4).
    Collude,
    /// Never answers (case 5).
    Silent,
    /// Answers with an attestation bound to another request (case 12).
    Replay,
    /// Attests the wrong digest, then the right one.
    Equivocate,
    /// Grinds the selection seed (as a proposer placing the request could) so that the
    /// byzantine members rank first, then colludes on the wrong digest (case 35).
    Grind,
}

/// A message between members.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    /// Build and attest, please.
    Ask,
    /// A signed statement of `outputs` for `request_index`.
    Attestation {
        signer: KeyId,
        outputs: [u8; 32],
        request_index: u64,
        signature: Signature,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SHA-256 over every delivery and every round output, in order: the same seed gives the
    /// same trace.
    pub trace: [u8; 32],
    /// Deliveries processed.
    pub steps: u64,
    /// Messages sent.
    pub messages: u64,
    /// Honest members that committed the honest digest.
    pub committed: usize,
    /// Honest members that found it unverifiable.
    pub unverifiable: usize,
    /// The build was not reproducible in this run (every honest builder had its own outputs).
    pub nondeterministic: bool,
    /// When the last honest member committed (virtual time).
    pub last_commit: Option<Instant>,
    /// Invariant violations (empty when the run is correct).
    pub violations: Vec<String>,
}

fn statement(outputs: &[u8; 32], request_index: u64, root: [u8; 32]) -> Statement<'_> {
    Statement {
        request_index,
        coordinates: COORDINATES,
        build_type: DOCKER_FETCH_V1,
        outputs: DigestList(outputs),
        epoch: 0,
        selection_size: SELECTION_SIZE,
        selection_root: root,
        piece_roots: PieceRootList(&[]),
    }
}

/// Runs one simulation.
pub fn run(params: Params) -> Outcome {
    let n = params.nodes;
    let f = (n - 1) / 3;
    // More than f byzantine members is PROTOCOL case 6, the documented limit: the invariant
    // checks are expected to catch what they do then.
    let mut rng = Rng::seed_from_u64(params.seed);
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            SecretKey::from_seed(seed)
        })
        .collect();
    let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.public().to_bytes()).collect();
    let members = MemberSet::from_genesis(&Genesis {
        origin: "pyrsia.sim/builds",
        faults: f as u32,
        members: KeyList(&key_bytes),
        created: 0,
    })
    .expect("a valid member set");
    let ids: Vec<KeyId> = keys.iter().map(|k| k.public().key_id()).collect();
    // Which members are byzantine and how: chosen by the seed.
    let mut byzantine: Vec<Option<Adversary>> = vec![None; n];
    let mut chosen = 0;
    while chosen < params.byzantine {
        let i = rng.below(n as u64) as usize;
        if byzantine[i].is_none() {
            byzantine[i] = Some(params.adversary.unwrap_or(match rng.below(5) {
                0 => Adversary::Collude,
                1 => Adversary::Silent,
                2 => Adversary::Replay,
                3 => Adversary::Grind,
                _ => Adversary::Equivocate,
            }));
            chosen += 1;
        }
    }
    let root = if byzantine.contains(&Some(Adversary::Grind)) {
        grind(&members, &ids, &byzantine)
    } else {
        SELECTION_ROOT
    };
    let honest_outputs = *Digest::sha256(b"the honest image").as_bytes();
    // Now and then the build is not reproducible (PROTOCOL case 7): every honest builder gets
    // outputs of its own, nothing may commit, and every honest round ends unverifiable.
    let nondeterministic = params.adversary.is_none() && rng.chance(1, 10);
    let own_outputs = |member: usize| {
        if nondeterministic {
            let mut seed = b"a nondeterministic build ".to_vec();
            seed.extend_from_slice(&(member as u64).to_le_bytes());
            *Digest::sha256(&seed).as_bytes()
        } else {
            honest_outputs
        }
    };
    let wrong_outputs = *Digest::sha256(b"a colluding trojan").as_bytes();
    let faults = Faults {
        drop_per_mille: rng.below(100),
        duplicate_per_mille: rng.below(100),
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(1 + rng.below(5_000)),
    };
    let mut net: SimNet<Message> = SimNet::new(rng.next_u64(), faults);
    let mut trace = Hasher::new();
    let mut rounds: Vec<Option<BuildRound>> = (0..n)
        .map(|i| {
            byzantine[i].is_none().then(|| {
                BuildRound::start(
                    REQUEST_INDEX,
                    &COORDINATES,
                    &members,
                    SELECTION_SIZE,
                    root,
                    Instant::ZERO,
                    TIMEOUT,
                )
            })
        })
        .collect();
    let mut outcome = Outcome {
        trace: [0; 32],
        steps: 0,
        messages: 0,
        committed: 0,
        unverifiable: 0,
        nondeterministic,
        last_commit: None,
        violations: Vec::new(),
    };
    let mut committed: Vec<Option<[u8; 32]>> = vec![None; n];
    let mut now = Instant::ZERO;
    let mut healed = false;
    let bound = Instant::ZERO + FAULTY_FOR + TIMEOUT.saturating_mul(2 * n as u64 + 4);
    loop {
        // Outputs of every honest round become messages.
        for i in 0..n {
            let Some(round) = rounds[i].as_mut() else {
                continue;
            };
            while let Some(output) = round.poll_output() {
                trace.update(&(i as u64).to_le_bytes());
                trace.update(format!("{output:?}").as_bytes());
                match output {
                    BuildOutput::Ask(id) => {
                        if let Some(to) = ids.iter().position(|x| *x == id) {
                            net.send(now, i, to, Message::Ask);
                            outcome.messages += 1;
                        }
                    }
                    BuildOutput::Commit {
                        statement: bytes,
                        attestations,
                        ..
                    } => {
                        check_commit(&bytes, &attestations, &members, &mut outcome.violations, i);
                        let Ok(decoded) = postcard::from_bytes::<Statement<'_>>(&bytes) else {
                            outcome
                                .violations
                                .push(format!("node {i} committed undecodable bytes"));
                            continue;
                        };
                        let outputs: [u8; 32] = decoded.outputs.0.try_into().unwrap_or([0; 32]);
                        if outputs != honest_outputs {
                            outcome
                                .violations
                                .push(format!("node {i} committed a wrong digest"));
                        }
                        committed[i] = Some(outputs);
                        outcome.last_commit = Some(now);
                    }
                    BuildOutput::Contradiction(_, signed) => {
                        // Only a byzantine member contradicts a commit of honest outputs.
                        let signer = ids.iter().position(|x| *x == signed.signer);
                        if signer.is_none_or(|s| byzantine[s].is_none()) {
                            outcome.violations.push(format!(
                                "node {i} blamed an honest member for contradicting the commit"
                            ));
                        }
                    }
                    BuildOutput::Dispute(_) | BuildOutput::Unverifiable(_) => {}
                }
            }
        }
        // At most one outcome per coordinate across honest members.
        let mut seen: Option<[u8; 32]> = None;
        for c in committed.iter().flatten() {
            if seen.is_some_and(|s| s != *c) {
                outcome
                    .violations
                    .push("two honest members committed different statements".into());
            }
            seen = Some(*c);
        }
        if net.len() > 64 * n * n {
            outcome
                .violations
                .push(format!("{} messages in flight: unbounded", net.len()));
        }
        if !outcome.violations.is_empty() {
            break;
        }
        // Heal after the faulty period: the remaining deliveries go through a clean network.
        if now >= Instant::ZERO + FAULTY_FOR && !healed {
            net.heal(now, Faults::reliable(Duration::from_millis(50)));
            healed = true;
        }
        let next_deadline = rounds
            .iter()
            .flatten()
            .filter_map(BuildRound::deadline)
            .min();
        let next_delivery = net.next_at();
        let Some(next) = next_delivery.into_iter().chain(next_deadline).min() else {
            break;
        };
        if next > bound {
            break;
        }
        now = now.max(next);
        if next_delivery == Some(next) {
            let Some(delivery) = net.pop() else { break };
            outcome.steps += 1;
            trace.update(&delivery.at.as_micros().to_le_bytes());
            trace.update(&(delivery.from as u64).to_le_bytes());
            trace.update(&(delivery.to as u64).to_le_bytes());
            let to = delivery.to;
            match delivery.message {
                Message::Ask => {
                    let answers = answer(
                        byzantine[to],
                        &keys[to],
                        own_outputs(to),
                        wrong_outputs,
                        root,
                    );
                    for message in answers {
                        for peer in 0..n {
                            net.send(now, to, peer, message.clone());
                            outcome.messages += 1;
                        }
                    }
                }
                Message::Attestation {
                    signer,
                    outputs,
                    request_index,
                    signature,
                } => {
                    trace.update(&outputs);
                    if let Some(round) = rounds[to].as_mut() {
                        let _ = round.handle_attestation(
                            signer,
                            &statement(&outputs, request_index, root),
                            signature,
                        );
                    }
                }
            }
        } else {
            for round in rounds.iter_mut().flatten() {
                round.handle_timeout(now);
            }
        }
    }
    for (i, round) in rounds.iter().enumerate() {
        let Some(round) = round else { continue };
        match round.state() {
            RoundState::Committed => outcome.committed += 1,
            RoundState::Unverifiable => outcome.unverifiable += 1,
            open => outcome.violations.push(format!(
                "liveness: node {i} still {open:?} at {} s after healing",
                (bound.as_micros() - FAULTY_FOR.as_micros()) / 1_000_000
            )),
        }
    }
    outcome.trace = *trace.finish().as_bytes();
    outcome
}

/// What member `key` broadcasts when asked.
fn answer(
    adversary: Option<Adversary>,
    key: &SecretKey,
    honest: [u8; 32],
    wrong: [u8; 32],
    root: [u8; 32],
) -> Vec<Message> {
    let attest = |outputs: [u8; 32], request_index: u64| {
        let signed = statement(&outputs, request_index, root).sign(key);
        Message::Attestation {
            signer: signed.signer,
            outputs,
            request_index,
            signature: signed.signature,
        }
    };
    match adversary {
        None => vec![attest(honest, REQUEST_INDEX)],
        Some(Adversary::Collude | Adversary::Grind) => vec![attest(wrong, REQUEST_INDEX)],
        Some(Adversary::Silent) => Vec::new(),
        Some(Adversary::Replay) => vec![attest(honest, REQUEST_INDEX + 1)],
        Some(Adversary::Equivocate) => {
            vec![attest(wrong, REQUEST_INDEX), attest(honest, REQUEST_INDEX)]
        }
    }
}

/// The selection root, out of 1,024 a grinding proposer could produce, that ranks the most
/// byzantine members among the first f+1+s builders.
fn grind(members: &MemberSet, ids: &[KeyId], byzantine: &[Option<Adversary>]) -> [u8; 32] {
    let k = members.commit_threshold() + DEFAULT_SLACK;
    let mut best = (0, SELECTION_ROOT);
    for attempt in 0u32..1024 {
        let root = *Digest::sha256(&attempt.to_le_bytes()).as_bytes();
        let order = builder_order(
            &selection_seed(SELECTION_SIZE, &root, &COORDINATES),
            members,
        );
        let ranked = order
            .iter()
            .take(k)
            .filter(|(id, _)| {
                ids.iter()
                    .position(|x| x == id)
                    .is_some_and(|i| byzantine[i].is_some())
            })
            .count();
        if ranked > best.0 {
            best = (ranked, root);
        }
    }
    best.1
}

/// A commit carries f+1 valid, distinct attestations of members over its statement.
fn check_commit(
    bytes: &[u8],
    attestations: &[pyrsia_core::tlog::entry::Signed],
    members: &MemberSet,
    violations: &mut Vec<String>,
    node: NodeIndex,
) {
    let Ok(statement) = postcard::from_bytes::<Statement<'_>>(bytes) else {
        violations.push(format!("node {node}: commit statement does not decode"));
        return;
    };
    let mut signers: Vec<KeyId> = Vec::new();
    for a in attestations {
        let valid = members
            .find(&a.signer)
            .is_some_and(|key| statement.verify(&key, &a.signature));
        if !valid || signers.contains(&a.signer) {
            violations.push(format!(
                "node {node}: commit carries an invalid or repeated attestation"
            ));
        }
        signers.push(a.signer);
    }
    if signers.len() < members.commit_threshold() {
        violations.push(format!(
            "node {node}: commit with {} attestations",
            signers.len()
        ));
    }
    if statement.request_index != REQUEST_INDEX {
        violations.push(format!("node {node}: commit bound to another request"));
    }
}
