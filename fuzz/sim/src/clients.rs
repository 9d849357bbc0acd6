//! Light clients against the members' final checkpoints (PROTOCOL cases 8–11, 33 and 34):
//! the honest log is a real genesis followed by the decided batches, each final checkpoint
//! cosigned by a quorum of honest members of `n`; clients follow it while byzantine members and a
//! crowd of non-members feed them forged notes (another root at the same size, signed by the
//! f byzantine members and by non-members), equivocations (byzantine members sign both roots),
//! older notes (rollback) and notes replayed long after (freeze); some clients are eclipsed
//! (they hear only the adversary) and some are offline. Time passes between offers.
//!
//! After every offer: no client trusts a root the honest log does not have at that size, no
//! client's trusted size shrinks, an online client never trusts a checkpoint older than
//! T_fresh, and an offline one flags as stale what is older. At the end, every client that is
//! not eclipsed trusts the latest honest checkpoint once offered it.

use pyrsia_core::digest::Hasher;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::light::{Connectivity, Freshness, LightClient, LightError, Policy};
use pyrsia_core::rng::Rng;
use pyrsia_core::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};
use pyrsia_core::tlog::tree::MerkleTree;

const ORIGIN: &str = "pyrsia.sim/clients";
/// The genesis time; every checkpoint is signed after it.
const START: u64 = 1_800_000_000;
/// Non-members that sign forged notes (case 33): with the byzantine members' signatures they
/// still fit in one note.
const NON_MEMBERS: u8 = 8;
/// Offers per run.
const STEPS: u64 = 80;

/// One simulation's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Members (n ≥ 3f+1).
    pub nodes: usize,
    /// Byzantine members (≤ f).
    pub byzantine: usize,
    /// Everything random derives from it.
    pub seed: u64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SHA-256 over every offer and its result, in order.
    pub trace: [u8; 32],
    /// Notes offered to clients.
    pub offers: u64,
    /// Notes a client accepted.
    pub accepted: u64,
    /// Notes refused for too few member signatures (forged, split views, non-members).
    pub no_quorum: u64,
    /// Notes refused as rollbacks.
    pub rollbacks: u64,
    /// Notes refused as too old (frozen views, online).
    pub too_old: u64,
    /// Notes accepted as stale (offline).
    pub stale: u64,
    /// Invariant violations.
    pub violations: Vec<String>,
}

/// What an offer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offer {
    /// The latest honest checkpoint.
    Latest,
    /// Another root at the latest size, signed by the byzantine members and non-members.
    Forged,
    /// An earlier honest checkpoint (rollback once a later one is trusted).
    Older,
    /// The first honest checkpoint, offered as if it were news.
    Frozen,
}

struct Client {
    light: LightClient,
    connectivity: Connectivity,
    eclipsed: bool,
}

/// Runs one simulation.
pub fn run(params: Params) -> Outcome {
    let n = params.nodes;
    let f = (n - 1) / 3;
    let mut rng = Rng::seed_from_u64(params.seed ^ 0xc11e_4175);
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| SecretKey::from_seed([i as u8 + 1; 32]))
        .collect();
    let outsiders: Vec<SecretKey> = (0..NON_MEMBERS)
        .map(|i| SecretKey::from_seed([200u8.wrapping_add(i); 32]))
        .collect();
    let list: Vec<u8> = keys.iter().flat_map(|k| k.public().to_bytes()).collect();
    let genesis = Entry::Genesis(Genesis {
        origin: ORIGIN,
        faults: f as u32,
        members: KeyList(&list),
        created: START,
    })
    .encode();
    let mut byzantine = vec![false; n];
    let mut chosen = 0;
    while chosen < params.byzantine.min(n) {
        let i = rng.below(n as u64) as usize;
        if !byzantine[i] {
            byzantine[i] = true;
            chosen += 1;
        }
    }
    let honest: Vec<usize> = (0..n).filter(|i| !byzantine[*i]).collect();
    let liars: Vec<usize> = (0..n).filter(|i| byzantine[*i]).collect();
    let policy = Policy::default();

    // The honest log and its final checkpoints (size, note), one per height.
    let mut tree = MerkleTree::new();
    tree.push(&genesis);
    let mut entries: Vec<Vec<u8>> = vec![genesis.clone()];
    let mut finals: Vec<SignedCheckpoint> = Vec::new();
    let mut now = START;
    let mut clients: Vec<Client> = (0..4)
        .map(|c| Client {
            light: LightClient::new(&genesis, policy).expect("a valid genesis"),
            connectivity: if rng.chance(1, 2) {
                Connectivity::Online
            } else {
                Connectivity::Offline
            },
            eclipsed: c > 0 && rng.chance(1, 3),
        })
        .collect();
    let mut outcome = Outcome {
        trace: [0; 32],
        offers: 0,
        accepted: 0,
        no_quorum: 0,
        rollbacks: 0,
        too_old: 0,
        stale: 0,
        violations: Vec::new(),
    };
    let mut trace = Hasher::new();
    let sign = |cp: &Checkpoint, signers: &mut dyn Iterator<Item = &SecretKey>| {
        let mut note = SignedCheckpoint::unsigned(cp.clone());
        for key in signers {
            let _ = note.add(cp.sign(key));
        }
        note
    };
    for step in 0..STEPS {
        // Now and then the members decide a batch: a new final checkpoint, cosigned by the
        // honest members (a quorum of them, whoever they are) and, equivocating, the byzantine ones.
        if finals.is_empty() || rng.chance(1, 4) {
            entries.push(step.to_le_bytes().to_vec());
            tree.push(&step.to_le_bytes());
            let size = tree.size();
            let cp = Checkpoint::new(ORIGIN, size, tree.root(size).expect("root"), now)
                .expect("checkpoint");
            let quorum = pyrsia_core::members::quorum_for(n);
            let mut signers = honest.iter().take(quorum).map(|i| &keys[*i]);
            let mut note = sign(&cp, &mut signers);
            for i in &liars {
                let _ = note.add(cp.sign(&keys[*i]));
            }
            finals.push(note);
        }
        // Time passes: seconds to days (a frozen view gets old).
        now += match rng.below(10) {
            0 => 2 * 24 * 3600,
            1..=3 => 3600,
            _ => 1 + rng.below(600),
        };
        let latest = finals.last().expect("a final checkpoint").clone();
        let c = rng.below(clients.len() as u64) as usize;
        let offer = match rng.below(4) {
            _ if clients[c].eclipsed && rng.chance(2, 3) => match rng.below(3) {
                0 => Offer::Forged,
                1 => Offer::Older,
                _ => Offer::Frozen,
            },
            0 | 1 => Offer::Latest,
            2 => Offer::Forged,
            _ if rng.chance(1, 2) => Offer::Older,
            _ => Offer::Frozen,
        };
        let offer = if clients[c].eclipsed && offer == Offer::Latest {
            Offer::Frozen
        } else {
            offer
        };
        // The note and the proof linking it to what the client trusts.
        let (note, forged_tree) = match offer {
            Offer::Latest => (latest.clone(), None),
            Offer::Older => {
                let i = rng.below(finals.len() as u64) as usize;
                (finals[i].clone(), None)
            }
            Offer::Frozen => (finals[0].clone(), None),
            Offer::Forged => {
                // Same size, another last entry: a fork only the adversary signs (case 9).
                let size = latest.checkpoint.size;
                let mut other = MerkleTree::new();
                for entry in &entries[..size as usize - 1] {
                    other.push(entry);
                }
                other.push(b"a forged batch");
                let cp = Checkpoint::new(
                    ORIGIN,
                    size,
                    other.root(size).expect("root"),
                    latest.checkpoint.timestamp,
                )
                .expect("checkpoint");
                let mut signers = liars.iter().map(|i| &keys[*i]).chain(outsiders.iter());
                (sign(&cp, &mut signers), Some(other))
            }
        };
        let client = &mut clients[c];
        let size = note.checkpoint.size;
        let proof_tree = forged_tree.as_ref().unwrap_or(&tree);
        let link = match client.light.trusted() {
            None => proof_tree.inclusion_proof(0, size).unwrap_or_default(),
            Some(t) if t.size <= size => proof_tree
                .consistency_proof(t.size, size)
                .unwrap_or_default(),
            Some(_) => Vec::new(),
        };
        let before = client.light.trusted().map(|t| t.size);
        let result = client
            .light
            .accept_checkpoint(&note, &link, now, client.connectivity);
        outcome.offers += 1;
        trace.update(&(c as u64).to_le_bytes());
        trace.update(format!("{offer:?} {result:?}").as_bytes());
        match result {
            Ok(freshness) => {
                outcome.accepted += 1;
                let honest_root = tree.root(size).ok();
                if honest_root != Some(note.checkpoint.root) {
                    outcome.violations.push(format!(
                        "client {c} trusted a root the members never decided at size {size}"
                    ));
                }
                if before.is_some_and(|b| b > size) {
                    outcome
                        .violations
                        .push(format!("client {c} rolled back to size {size}"));
                }
                let age = now.saturating_sub(note.checkpoint.timestamp);
                match (client.connectivity, freshness) {
                    (Connectivity::Online, _) if age > policy.fresh_for => {
                        outcome.violations.push(format!(
                            "online client {c} trusted a checkpoint {age} s old"
                        ));
                    }
                    (_, Freshness::Fresh) if age > policy.fresh_for => {
                        outcome
                            .violations
                            .push(format!("client {c} called a checkpoint {age} s old fresh"));
                    }
                    (_, Freshness::Stale) => outcome.stale += 1,
                    _ => {}
                }
            }
            Err(LightError::NoQuorum { .. }) => outcome.no_quorum += 1,
            Err(LightError::Rollback) => outcome.rollbacks += 1,
            Err(LightError::TooOld) => outcome.too_old += 1,
            Err(LightError::Fork) => {}
            Err(e) if offer == Offer::Latest => outcome.violations.push(format!(
                "client {c} refused the latest honest checkpoint: {e}"
            )),
            Err(_) => {}
        }
        if offer == Offer::Forged && result.is_ok() {
            outcome
                .violations
                .push(format!("client {c} accepted a forged checkpoint"));
        }
    }
    // Liveness: a client that hears the members trusts the latest checkpoint, signed now.
    tree.push(b"the last batch");
    let size = tree.size();
    let cp = Checkpoint::new(ORIGIN, size, tree.root(size).expect("root"), now).expect("cp");
    let mut signers = honest
        .iter()
        .take(pyrsia_core::members::quorum_for(n))
        .map(|i| &keys[*i]);
    let last = sign(&cp, &mut signers);
    for (c, client) in clients.iter_mut().enumerate().filter(|(_, c)| !c.eclipsed) {
        let link = match client.light.trusted() {
            None => tree.inclusion_proof(0, size).unwrap_or_default(),
            Some(t) => tree.consistency_proof(t.size, size).unwrap_or_default(),
        };
        if let Err(e) = client
            .light
            .accept_checkpoint(&last, &link, now, client.connectivity)
        {
            outcome.violations.push(format!(
                "liveness: client {c} refused the members' latest checkpoint: {e}"
            ));
        }
    }
    outcome.trace = *trace.finish().as_bytes();
    outcome
}
