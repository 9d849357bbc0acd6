//! The member node itself under faults: `n` processes' worth of
//! `core::consensus::node::MemberNode` — the state machine the daemon runs — each on its own
//! `core::tlog::state::LogState`, exchanging the sealed messages the daemon sends over a seeded
//! [`SimNet`] that drops, delays, duplicates and reorders them and partitions the members for
//! a while; honest members crash and restart with what they persisted; every member's wall
//! clock is skewed by up to ±5 minutes (the clock the node sees, so checkpoint times and the
//! skew horizon are exercised). Gossip is modelled as the daemon's: every member relays each
//! signed message it accepts once, within each sender's message rate
//! (`core::consensus::limits::RateLimit`), and publishes nothing it has seen (gossipsub's
//! duplicate cache: bytes published again unchanged never leave); a member behind catches up
//! by log replication.
//!
//! Up to f members are byzantine and run the same node with a misbehaviour switched on: the
//! vote-splitter, the flooder (junk proposals, far-future heights, junk requests and
//! endorsements at full rate), a builder attesting wrong digests; or the forger, who submits
//! `Unverifiable` verdicts without evidence for every open request and runs the node's tag
//! forger (tag observations on its own word, vouches for every query unseen); or silence.
//!
//! Invariants: no honest member publishes bytes it has seen (they would never leave); no two
//! honest members decide different batches at one height; no two
//! checkpoints of one size with different roots each carry a quorum of valid cosignatures
//! (what a light client accepts), and none among honest members' final checkpoints; every
//! decided batch is a valid
//! extension of the deciding member's log; after healing, every honest member's log commits
//! every artifact honest members requested, images and PyPI package versions (honest
//! requests keep committing under a flooder), and observed the tag an image was pulled by, and holds the same entries; every tag in an honest
//! log points at the digest the upstream serves for it (f+1 members resolved it; a forger's
//! word alone never moves a tag), and no honest request ends under a forged verdict.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use pyrsia_core::consensus::limits::{MessageClass, RateLimit};
use pyrsia_core::consensus::node::{
    ArtifactRequest, BuildResult, EvidenceKind, MemberNode, Misbehaviour, NodeConfig, NodeOutput,
    Now, PackageRequest, RebuildResult, Rejection,
};
use pyrsia_core::consensus::ordering::VotingState;
use pyrsia_core::consensus::wire::{Batch, Envelope, MemberMessage, Vote};
use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::identity::{KeyId, SecretKey};
use pyrsia_core::members::faults_for;
use pyrsia_core::package::rebuild::{Diff, EntryDiff, Side, encode_diff};
use pyrsia_core::rng::Rng;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::Hash;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::coordinates::subject;
use pyrsia_core::tlog::entry::{
    Coordinates, Dispute, ECOSYSTEM_DOCKER, ECOSYSTEM_MAVEN, ECOSYSTEM_PYPI, Entry, Genesis,
    KeyList,
};
use pyrsia_core::tlog::rebuilt::{ECOSYSTEM_PYPI_REBUILD, RebuildVerdict, rebuilt_ecosystem};
use pyrsia_core::tlog::state::{LogState, Offer};

use crate::net::{Faults, Partition, SimNet};

/// The log's name.
const ORIGIN: &str = "pyrsia.sim/members";
/// Wall-clock time at simulated zero (Unix seconds).
const WALL_BASE: u64 = 1_800_000_000;
/// Members' wall clocks differ from true time by up to this much either way (PROTOCOL case 29).
pub const MAX_SKEW_SECS: u64 = 300;
/// How often every member's `tick` runs (and a flooder's burst goes out).
const TICK: Duration = Duration::from_millis(50);
/// How often a member asks a peer for a newer log (checkpoint gossip and entry fetch).
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// How long the network misbehaves before it heals.
const FAULTY_FOR: Duration = Duration::from_secs(60);
/// How long after healing every honest member must have every request committed.
const LIVENESS_BOUND: Duration = Duration::from_secs(240);
/// How often clients pull again what they pulled.
const PULL_EVERY: Duration = Duration::from_secs(20);
/// How long a build takes.
const BUILD_TIME: Duration = Duration::from_millis(300);
/// How long a member's tag lookup at its upstream takes.
const LOOKUP_TIME: Duration = Duration::from_millis(50);
/// Artifacts honest members request during a run.
pub const REQUESTS: usize = 3;

/// What a byzantine member does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adversary {
    /// Sends nothing.
    Silent,
    /// The node with [`Misbehaviour::SplitVotes`].
    SplitVotes,
    /// The node with [`Misbehaviour::Flood`].
    Flood,
    /// The node with [`Misbehaviour::WrongDigest`].
    WrongDigest,
    /// The node with [`Misbehaviour::ForgeTags`] that also submits an `Unverifiable` without
    /// evidence for every open request it sees (censorship by forged verdict).
    Forger,
}

/// Every adversary, in the order `--adversary` names them.
pub const ADVERSARIES: [Adversary; 5] = [
    Adversary::Silent,
    Adversary::SplitVotes,
    Adversary::Flood,
    Adversary::WrongDigest,
    Adversary::Forger,
];

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
    /// Whether the network misbehaves (drops, delays, partitions, crashes) before healing.
    pub faults: bool,
}

/// What clients ask for during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// [`REQUESTS`] artifacts at times drawn from the seed in the first 50 s.
    Seeded,
    /// `count` artifacts, one every `every` from 1 s on (for measuring).
    Steady {
        /// Artifacts requested.
        count: usize,
        /// Between two requests.
        every: Duration,
    },
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SHA-256 over every delivery and final checkpoint, in order.
    pub trace: [u8; 32],
    /// Deliveries processed.
    pub steps: u64,
    /// Final checkpoints (distinct sizes) the honest members reached.
    pub checkpoints: usize,
    /// When every honest member had every request committed.
    pub finished_at: Option<Instant>,
    /// Member messages sent (each broadcast once, relays not counted) and their bytes.
    pub messages: u64,
    /// See `messages`.
    pub bytes: u64,
    /// For each request: from the pull to every honest member holding its commit.
    pub latencies: Vec<Duration>,
    /// Acts of misbehaviour of the byzantine members' nodes (twin proposals, wrong
    /// attestations, junk bursts, forged tags): what shows an adversary attacked.
    pub misbehaved: u64,
    /// Pieces of equivocation evidence honest members kept (each naming a byzantine member).
    pub equivocations: u64,
    /// Invariant violations.
    pub violations: Vec<String>,
}

/// One member process: the node, and what survives a crash (its log and persisted state).
struct Member {
    key: SecretKey,
    node: Option<MemberNode>,
    log: LogState,
    entries: Vec<Vec<u8>>,
    saved: Option<VotingState>,
    skew: i64,
    adversary: Option<Adversary>,
    seen: HashSet<[u8; 32]>,
    rate: RateLimit,
    nonce: u64,
    /// Messages of each sender this member's rate limit ignored.
    limited: BTreeMap<KeyId, u64>,
    /// A vote-splitter's values and the half each goes to.
    halves: BTreeMap<[u8; 32], bool>,
}

impl Member {
    fn now(&self, at: Instant) -> Now {
        let secs = (at.as_micros() / 1_000_000) as i64;
        Now {
            mono: at,
            wall_secs: (WALL_BASE as i64 + secs + self.skew) as u64,
        }
    }

    fn start_node(&mut self, config: NodeConfig) {
        self.nonce += 1_000_000;
        self.node = Some(MemberNode::new(
            SecretKey::from_seed(self.key.to_seed()),
            config,
            self.nonce,
            self.saved.clone(),
        ));
    }
}

/// The images the upstream has (anything else is not found).
const UPSTREAM_IMAGES: &str = "docker.io/sim/";

/// The packages the upstream has, by the start of their subject, requested as packages (every
/// third new artifact, PyPI projects and Maven releases in turn) at [`PACKAGE_VERSION`].
const UPSTREAM_PACKAGES: [&str; 2] = ["pypi:sim-pkg", "maven:sim.group:pkg"];

/// Whether the upstream has the package `subject` names.
fn is_upstream_package(subject: &str) -> bool {
    UPSTREAM_PACKAGES.iter().any(|p| subject.starts_with(p))
}
/// What honest rebuilders find for an upstream PyPI release (`fetched`, its `pypi:` subject):
/// its wheel has a module its sdist does not produce. A byzantine rebuilder
/// ([`Misbehaviour::WrongDigest`]) attests `Reproduced` instead.
fn honest_rebuild(fetched: &str) -> RebuildResult {
    let diff = Diff {
        entries: vec![EntryDiff {
            name: "sim_pkg/_injected.py".into(),
            upstream: Some(Side {
                size: 42,
                sha256: Digest::sha256(fetched.as_bytes()),
            }),
            rebuilt: None,
        }],
        more: 0,
    };
    RebuildResult {
        artifact: format!(
            "{}-1.0-py3-none-any.whl",
            fetched.trim_start_matches("pypi:")
        ),
        upstream: upstream_digest(fetched),
        rebuilt: Some(Digest::sha256(b"the wheel rebuilt from the sdist")),
        stabilized: Some(Digest::sha256(b"its stabilised entries")),
        verdict: RebuildVerdict::NotReproduced,
        recipe: "pypi-rebuild/v1; sim".into(),
        diff: encode_diff(&diff),
        failure: String::new(),
    }
}

/// The one version of each upstream package.
const PACKAGE_VERSION: &str = "1.0";
/// The tag every upstream Maven artifact's metadata sets (at [`PACKAGE_VERSION`]); PyPI has
/// no tags.
const PACKAGE_TAG: &str = "release";

/// The digest an honest upstream serves for an artifact (an image's manifest, a package
/// version's one file).
fn upstream_digest(name: &str) -> Digest {
    Digest::sha256(name.as_bytes())
}

/// The version an artifact is committed at: a package's version, an image's manifest digest.
fn committed_version(name: &str) -> String {
    if is_upstream_package(name) {
        PACKAGE_VERSION.to_string()
    } else {
        upstream_digest(name).to_string()
    }
}

struct Sim {
    params: Params,
    rng: Rng,
    net: SimNet<Vec<u8>>,
    partition: Option<Partition>,
    members: Vec<Member>,
    /// The two halves of the honest members a vote-splitter plays against each other.
    halves: Vec<bool>,
    builds: Vec<(Instant, usize, u64, Result<BuildResult, ()>)>,
    /// Rebuilds under way (`pypi-rebuild/v1`), each with what it will find.
    rebuilds: Vec<(Instant, usize, u64, Result<RebuildResult, ()>)>,
    /// Tag lookups members carry out for others' queries: when, who, ticket, what they find.
    lookups: Vec<(Instant, usize, Vec<u8>, Option<String>)>,
    /// What honest members decided at each height: size and root.
    decisions: BTreeMap<u64, (u64, Hash)>,
    /// Every final checkpoint any honest member reached: size → root.
    finals: BTreeMap<u64, Hash>,
    requested: Vec<String>,
    /// When each request was made, and when every honest member first held its commit.
    requested_at: Vec<Instant>,
    committed_at: Vec<Option<Instant>>,
    messages: u64,
    bytes: u64,
    /// Every checkpoint any member validly cosigned in a precommit, with its cosigners: what
    /// anyone (a byzantine member too) can assemble into a note for light clients.
    cosigned: BTreeMap<(u64, Hash), BTreeSet<KeyId>>,
    /// Messages whose cosignature was recorded.
    recorded: HashSet<[u8; 32]>,
    trace: Hasher,
    steps: u64,
    /// Equivocation evidence honest members kept.
    equivocations: u64,
    violations: Vec<String>,
}

/// Runs one simulation.
pub fn run(params: Params) -> Outcome {
    run_workload(params, Workload::Seeded)
}

/// Runs one simulation with `workload`'s requests.
pub fn run_workload(params: Params, workload: Workload) -> Outcome {
    let mut rng = Rng::seed_from_u64(params.seed ^ 0x006d_656d_6265_7273);
    let n = params.nodes;
    let keys: Vec<SecretKey> = (0..n)
        .map(|_| {
            let mut seed = [0; 32];
            rng.fill_bytes(&mut seed);
            SecretKey::from_seed(seed)
        })
        .collect();
    let key_bytes: Vec<u8> = keys.iter().flat_map(|k| k.public().to_bytes()).collect();
    let genesis = Entry::Genesis(Genesis {
        origin: ORIGIN,
        faults: faults_for(n) as u32,
        members: KeyList(&key_bytes),
        created: WALL_BASE,
    })
    .encode();
    let log = LogState::new(genesis).expect("a valid genesis");
    let mut byzantine: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        byzantine.swap(i, rng.below(i as u64 + 1) as usize);
    }
    byzantine.truncate(params.byzantine);
    let faults = if params.faults {
        Faults {
            drop_per_mille: rng.below(100),
            duplicate_per_mille: rng.below(50),
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(1 + rng.below(1_000)),
        }
    } else {
        Faults::reliable(Duration::from_millis(10))
    };
    let mut members = Vec::new();
    for (i, key) in keys.into_iter().enumerate() {
        let adversary = byzantine.contains(&i).then(|| {
            params
                .adversary
                .unwrap_or(ADVERSARIES[rng.below(ADVERSARIES.len() as u64) as usize])
        });
        let skew = rng.below(2 * MAX_SKEW_SECS + 1) as i64 - MAX_SKEW_SECS as i64;
        members.push(Member {
            key,
            node: None,
            log: log.clone(),
            entries: Vec::new(),
            saved: None,
            skew: if params.faults { skew } else { 0 },
            adversary,
            seen: HashSet::new(),
            rate: RateLimit::default(),
            nonce: 0,
            halves: BTreeMap::new(),
            limited: BTreeMap::new(),
        });
    }
    let mut halves = vec![false; n];
    let honest: Vec<usize> = (0..n).filter(|i| !byzantine.contains(i)).collect();
    for i in &honest[..honest.len() / 2] {
        halves[*i] = true;
    }
    let mut sim = Sim {
        params,
        halves,
        net: SimNet::new(params.seed, faults),
        partition: None,
        members,
        builds: Vec::new(),
        rebuilds: Vec::new(),
        lookups: Vec::new(),
        finals: BTreeMap::new(),
        decisions: BTreeMap::new(),
        requested: Vec::new(),
        requested_at: Vec::new(),
        committed_at: Vec::new(),
        messages: 0,
        bytes: 0,
        cosigned: BTreeMap::new(),
        recorded: HashSet::new(),
        trace: Hasher::new(),
        steps: 0,
        equivocations: 0,
        violations: Vec::new(),
        rng,
    };
    for i in 0..n {
        let config = sim.config(i);
        sim.members[i].start_node(config);
    }
    let finished_at = sim.run_until_done(workload);
    let latencies = sim.latencies();
    let misbehaved = sim
        .members
        .iter()
        .filter(|m| m.adversary.is_some())
        .filter_map(|m| m.node.as_ref())
        .map(MemberNode::misbehaved)
        .sum();
    Outcome {
        misbehaved,
        equivocations: sim.equivocations,
        trace: *sim.trace.finish().as_bytes(),
        steps: sim.steps,
        checkpoints: sim.finals.len(),
        finished_at,
        messages: sim.messages,
        bytes: sim.bytes,
        latencies,
        violations: sim.violations,
    }
}

impl Sim {
    fn config(&self, i: usize) -> NodeConfig {
        let misbehaviour = match self.members[i].adversary {
            Some(Adversary::SplitVotes) => Some(Misbehaviour::SplitVotes),
            Some(Adversary::Flood) => Some(Misbehaviour::Flood),
            Some(Adversary::WrongDigest) => Some(Misbehaviour::WrongDigest),
            Some(Adversary::Forger) => Some(Misbehaviour::ForgeTags),
            _ => None,
        };
        NodeConfig {
            round_timeout: Duration::from_secs(2),
            build_timeout: Duration::from_secs(20),
            checkpoint_refresh_secs: 30,
            max_builds: pyrsia_core::consensus::limits::MAX_CONCURRENT_BUILDS,
            misbehaviour,
        }
    }

    fn honest(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.members.len()).filter(|i| self.members[*i].adversary.is_none())
    }

    fn run_until_done(&mut self, workload: Workload) -> Option<Instant> {
        let n = self.members.len();
        let heal_at = Instant::ZERO + FAULTY_FOR;
        let deadline = heal_at + LIVENESS_BOUND;
        // Seeded events: when each request is made and by whom, the partition, a crash.
        let mut requests: Vec<(Instant, usize)> = match workload {
            Workload::Seeded => (0..REQUESTS)
                .map(|_| {
                    let at = Instant::from_millis(1_000 + self.rng.below(50_000));
                    (at, self.rng.below(n as u64) as usize)
                })
                .collect(),
            Workload::Steady { count, every } => (0..count as u64)
                .map(|i| {
                    let at = Instant::from_millis(1_000) + every.saturating_mul(i);
                    (at, self.rng.below(n as u64) as usize)
                })
                .collect(),
        };
        requests.sort();
        let mut crash: Option<(Instant, Instant, usize)> = None;
        if self.params.faults {
            let sides: Vec<bool> = (0..n).map(|_| self.rng.chance(1, 2)).collect();
            let splitters: Vec<usize> = (0..n)
                .filter(|i| self.members[*i].adversary == Some(Adversary::SplitVotes))
                .collect();
            self.partition = match self.rng.below(5) {
                0 => None,
                1 => Some(Partition::Split(sides)),
                2 => Some(Partition::OneWay(sides)),
                // The split a vote-splitter exploits: its two halves cut from each other,
                // while it reaches both.
                3 if !splitters.is_empty() => {
                    Some(Partition::SplitExcept(self.halves.clone(), splitters))
                }
                _ => Some(Partition::Isolate(self.rng.below(n as u64) as usize)),
            };
            if let Some(p) = &self.partition {
                self.net.partition(p.clone());
            }
            let honest: Vec<usize> = self.honest().collect();
            if self.rng.chance(1, 2) && !honest.is_empty() {
                let who = honest[self.rng.below(honest.len() as u64) as usize];
                let down = Instant::from_millis(5_000 + self.rng.below(40_000));
                crash = Some((down, down + Duration::from_secs(10), who));
            }
        }
        let mut healed = !self.params.faults;
        let mut now = Instant::ZERO;
        let mut next_tick = Instant::ZERO;
        let mut ticks: u64 = 0;
        let mut next_sync = Instant::ZERO + SYNC_EVERY;
        let mut next_pull = Instant::ZERO + PULL_EVERY;
        loop {
            if !healed && now >= heal_at {
                healed = true;
                self.partition = None;
                self.net
                    .heal(now, Faults::reliable(Duration::from_millis(10)));
            }
            while requests.first().is_some_and(|(at, _)| *at <= now) {
                let (_, who) = requests.remove(0);
                self.request(now, who, None);
            }
            if now >= next_pull {
                // Clients keep pulling what they pulled (a CI fleet does all day): every pull
                // through a member asks again for what its log has not committed.
                for artifact in 0..self.requested.len() {
                    let who = self.rng.below(n as u64) as usize;
                    self.request(now, who, Some(artifact));
                }
                next_pull = now + PULL_EVERY;
            }
            if let Some((down, up, who)) = crash {
                if now >= down && self.members[who].node.is_some() && now < up {
                    self.members[who].node = None;
                }
                if now >= up && self.members[who].node.is_none() {
                    let config = self.config(who);
                    self.members[who].start_node(config);
                    crash = None;
                }
            }
            if now >= next_tick {
                self.note_commits(now);
                ticks += 1;
                for i in 0..n {
                    // A flooder's burst every fourth tick is already past the rate its
                    // receivers accept from it; more would be dropped unread.
                    if self.members[i].adversary == Some(Adversary::Flood)
                        && !ticks.is_multiple_of(4)
                    {
                        continue;
                    }
                    self.with_node(i, now, |node, log, at| node.tick(log, at));
                }
                next_tick = now + TICK;
            }
            if now >= next_sync {
                for i in 0..n {
                    self.sync(i, now);
                }
                next_sync = now + SYNC_EVERY;
            }
            let ready: Vec<usize> = (0..self.builds.len())
                .filter(|b| self.builds[*b].0 <= now)
                .collect();
            for b in ready.into_iter().rev() {
                let (_, who, index, result) = self.builds.remove(b);
                self.with_node(who, now, |node, log, at| node.built(log, at, index, result));
            }
            let rebuilt: Vec<usize> = (0..self.rebuilds.len())
                .filter(|b| self.rebuilds[*b].0 <= now)
                .collect();
            for b in rebuilt.into_iter().rev() {
                let (_, who, index, result) = self.rebuilds.remove(b);
                self.with_node(who, now, |node, log, at| {
                    node.rebuilt(log, at, index, result)
                });
            }
            let found: Vec<usize> = (0..self.lookups.len())
                .filter(|l| self.lookups[*l].0 <= now)
                .collect();
            for l in found.into_iter().rev() {
                let (_, who, ticket, named) = self.lookups.remove(l);
                self.with_node(who, now, |node, log, at| {
                    node.tag_resolved(log, at, &ticket, named.as_deref())
                });
            }
            while self.net.next_at().is_some_and(|at| at <= now) {
                let delivery = self.net.pop().expect("a delivery");
                self.deliver(now, delivery.from, delivery.to, &delivery.message);
            }
            if healed && requests.is_empty() && crash.is_none() && self.all_committed() {
                self.note_commits(now);
                self.check_same_logs();
                self.check_light_clients();
                self.check_tags_and_verdicts();
                return Some(now);
            }
            if now >= deadline {
                self.check_light_clients();
                self.violations.push(format!(
                    "liveness: not every honest member committed every request {} s after healing; {}",
                    LIVENESS_BOUND.as_millis() / 1000,
                    self.diagnose()
                ));
                return None;
            }
            let next = [
                Some(next_tick),
                Some(next_sync),
                self.net.next_at(),
                self.builds.iter().map(|b| b.0).min(),
                self.rebuilds.iter().map(|b| b.0).min(),
                self.lookups.iter().map(|l| l.0).min(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_tick);
            now = next.max(now);
        }
    }

    /// An honest member's mirror served an artifact (a new one, or `again` one pulled
    /// before): it asks the members to verify it.
    fn request(&mut self, now: Instant, who: usize, again: Option<usize>) {
        // A client pulls through a running honest member.
        let up: Vec<usize> = self
            .honest()
            .filter(|i| self.members[*i].node.is_some())
            .collect();
        let Some(&who) = up.get(who % up.len().max(1)) else {
            return;
        };
        let name = match again {
            Some(artifact) => self.requested[artifact].clone(),
            None => {
                let n = self.requested.len();
                let name = if n % 3 == 2 {
                    format!("{}{n}", UPSTREAM_PACKAGES[(n / 3) % 2])
                } else {
                    format!("{UPSTREAM_IMAGES}image{n}")
                };
                self.requested.push(name.clone());
                name
            }
        };
        if again.is_none() {
            self.requested_at.push(now);
            self.committed_at.push(None);
        }
        let package = match name.split_once(':') {
            Some(("pypi", project)) => Some((ECOSYSTEM_PYPI, project, "https://pypi.sim/simple/")),
            Some(("maven", artifact)) => Some((ECOSYSTEM_MAVEN, artifact, "https://maven.sim/")),
            _ => None,
        };
        if let Some((ecosystem, package_name, source)) = package {
            self.with_node(who, now, |node, log, at| {
                let coordinates = Coordinates {
                    ecosystem,
                    name: package_name,
                    version: PACKAGE_VERSION,
                };
                // A Maven client reads the artifact's metadata first: its `release` tag.
                if ecosystem == ECOSYSTEM_MAVEN {
                    let tag = Coordinates {
                        version: PACKAGE_TAG,
                        ..coordinates
                    };
                    node.saw_package_tag(log, at, tag, PACKAGE_VERSION);
                }
                let package = PackageRequest {
                    coordinates,
                    source,
                };
                node.request_package(log, at, &package);
                // A PyPI release's pure wheel is rebuilt from source once it is committed.
                if ecosystem == ECOSYSTEM_PYPI {
                    let rebuild = PackageRequest {
                        coordinates: Coordinates {
                            ecosystem: ECOSYSTEM_PYPI_REBUILD,
                            ..coordinates
                        },
                        source,
                    };
                    node.request_package(log, at, &rebuild);
                }
            });
            return;
        }
        let manifest = upstream_digest(&name);
        self.with_node(who, now, |node, log, at| {
            node.request(
                log,
                at,
                &ArtifactRequest {
                    name: &name,
                    manifest,
                    tag: Some("latest"),
                    source: "https://registry.sim",
                },
            );
        });
    }

    /// Runs `call` on member `i`'s node (if it is up), then carries out its outputs.
    fn with_node(
        &mut self,
        i: usize,
        now: Instant,
        call: impl FnOnce(&mut MemberNode, &LogState, Now),
    ) {
        let member = &mut self.members[i];
        if member.adversary == Some(Adversary::Silent) {
            return;
        }
        let at = member.now(now);
        let Some(node) = member.node.as_mut() else {
            return;
        };
        call(node, &member.log, at);
        self.carry_out(i, now);
    }

    fn carry_out(&mut self, i: usize, now: Instant) {
        loop {
            let member = &mut self.members[i];
            let at = member.now(now);
            let Some(node) = member.node.as_mut() else {
                return;
            };
            let Some(output) = node.poll_output() else {
                break;
            };
            match output {
                NodeOutput::Persist { ticket, state } => {
                    member.saved = Some(state.clone());
                    node.persisted(&member.log, at, ticket, state);
                }
                NodeOutput::Broadcast(sealed) => self.broadcast(now, i, sealed),
                NodeOutput::Build { index, request } => {
                    if let Ok(Entry::BuildRequest(r)) = Entry::decode(&request)
                        && r.coordinates.ecosystem == ECOSYSTEM_PYPI_REBUILD
                    {
                        let fetched = subject(ECOSYSTEM_PYPI, r.coordinates.name);
                        let result = (is_upstream_package(&fetched)
                            && r.coordinates.version == PACKAGE_VERSION)
                            .then(|| honest_rebuild(&fetched))
                            .ok_or(());
                        self.rebuilds.push((now + BUILD_TIME, i, index, result));
                        continue;
                    }
                    let result = match Entry::decode(&request) {
                        Ok(Entry::BuildRequest(r))
                            if r.coordinates.name.starts_with(UPSTREAM_IMAGES)
                                && r.coordinates.version
                                    == upstream_digest(r.coordinates.name).to_string() =>
                        {
                            Ok(BuildResult {
                                outputs: vec![upstream_digest(r.coordinates.name)],
                                piece_roots: Vec::new(),
                            })
                        }
                        Ok(Entry::BuildRequest(r))
                            if is_upstream_package(&r.coordinates.subject())
                                && r.coordinates.version == PACKAGE_VERSION =>
                        {
                            Ok(BuildResult {
                                outputs: vec![upstream_digest(&r.coordinates.subject())],
                                piece_roots: Vec::new(),
                            })
                        }
                        // The upstream does not have it (a flooder's junk).
                        _ => Err(()),
                    };
                    self.builds.push((now + BUILD_TIME, i, index, result));
                }
                NodeOutput::Decided {
                    checkpoint,
                    entries,
                } => self.apply(i, &checkpoint, &entries, true),
                NodeOutput::ResolveTag {
                    ecosystem,
                    name,
                    tag,
                    ticket,
                } => {
                    // The upstream has one tag per image (`latest`) and per Maven artifact
                    // (`release`).
                    let subject = subject(&ecosystem, &name);
                    let named = if ecosystem == ECOSYSTEM_DOCKER {
                        (name.starts_with(UPSTREAM_IMAGES) && tag == "latest")
                            .then(|| upstream_digest(&name).to_string())
                    } else {
                        (is_upstream_package(&subject) && tag == PACKAGE_TAG)
                            .then(|| PACKAGE_VERSION.to_string())
                    };
                    self.lookups.push((now + LOOKUP_TIME, i, ticket, named));
                }
                NodeOutput::Evidence { kind, key, .. } => {
                    // Evidence of equivocation names the member that voted twice; it must
                    // never name an honest one (they vote once per step, restarts included).
                    if kind == EvidenceKind::Equivocation
                        && member.adversary.is_none()
                        && let Some(accused) = key.get(13..45)
                    {
                        let honest_accused = self.members.iter().position(|m| {
                            m.adversary.is_none() && m.key.public().key_id().0 == accused
                        });
                        if let Some(j) = honest_accused {
                            self.violations.push(format!(
                                "member {i} holds evidence that honest member {j} equivocated"
                            ));
                        }
                        self.equivocations += 1;
                    }
                }
            }
        }
        if self.members[i].adversary == Some(Adversary::Forger) {
            self.forge(now, i);
        }
    }

    /// The forger's verdicts: an `Unverifiable` without evidence for every open request.
    fn forge(&mut self, now: Instant, i: usize) {
        let member = &mut self.members[i];
        let open: Vec<(u64, Vec<u8>)> = member
            .log
            .index()
            .open_requests()
            .map(|(index, bytes)| (index, bytes.to_vec()))
            .collect();
        let mut sealed = Vec::new();
        for (index, bytes) in open {
            let Ok(Entry::BuildRequest(request)) = Entry::decode(&bytes) else {
                continue;
            };
            let forged = Entry::Unverifiable(Dispute {
                request_index: index,
                coordinates: Coordinates {
                    ecosystem: ECOSYSTEM_DOCKER,
                    ..request.coordinates
                },
                evidence: &[0],
            })
            .encode();
            member.nonce += 1;
            sealed.push(Envelope::seal(
                &member.key,
                member.nonce,
                &MemberMessage::Submit { entry: &forged },
            ));
        }
        for message in sealed {
            self.broadcast(now, i, message);
        }
    }

    /// `from` publishes `sealed`, as gossipsub does: not at all when it has seen those bytes
    /// (its own earlier message, or one it received), for gossip drops a message it has seen.
    fn broadcast(&mut self, now: Instant, from: usize, sealed: Vec<u8>) {
        let id = *Digest::sha256(&sealed).as_bytes();
        if !self.members[from].seen.insert(id) {
            if self.members[from].adversary.is_none() {
                self.violations.push(format!(
                    "honest member {from} published a message gossip has seen: it never leaves"
                ));
            }
            return;
        }
        self.messages += 1;
        self.bytes += sealed.len() as u64;
        let n = self.members.len();
        // A vote-splitter sends its proposal to one half of the members and the twin its node
        // makes of it to the other, and each prevote and precommit to the half whose value it
        // is for.
        let mut half = None;
        if self.members[from].adversary == Some(Adversary::SplitVotes)
            && let Ok(envelope) = Envelope::decode(&sealed)
            && let Ok(MemberMessage::Vote(vote)) =
                postcard::from_bytes::<MemberMessage<'_>>(envelope.body)
        {
            let member = &mut self.members[from];
            let id = match vote {
                Vote::Proposal { value, .. } => Some(Batch::id(value)),
                Vote::Prevote { id, .. } => id,
                Vote::Precommit { value, .. } => value.map(|(head, _)| head.id()),
            };
            if let Some(id) = id {
                let next = member.halves.len().is_multiple_of(2);
                half = Some(*member.halves.entry(id).or_insert(next));
            }
        }
        for to in 0..n {
            let lower = self.halves[to];
            if to != from && half.is_none_or(|h| h == lower) {
                self.net.send(now, from, to, sealed.clone());
            }
        }
    }

    /// A message arrives at `to`: counted against its signer's rate, handed to the node, and
    /// relayed once to every member when it is a member's signed message (gossip).
    fn deliver(&mut self, now: Instant, from: usize, to: usize, sealed: &[u8]) {
        self.steps += 1;
        self.trace.update(&now.as_micros().to_le_bytes());
        self.trace.update(&[from as u8, to as u8]);
        let id = *Digest::sha256(sealed).as_bytes();
        let member = &mut self.members[to];
        if member.node.is_none() || !member.seen.insert(id) {
            return;
        }
        let Ok(envelope) = Envelope::decode(sealed) else {
            return;
        };
        if self.recorded.insert(id) {
            self.record_cosignature(&envelope);
        }
        let member = &mut self.members[to];
        let class = postcard::from_bytes::<MemberMessage<'_>>(envelope.body)
            .map_or(MessageClass::Other, |m| m.class());
        if !member.rate.allow(envelope.sender, class, now.as_micros()) {
            *member.limited.entry(envelope.sender).or_default() += 1;
            return;
        }
        let mut signed = true;
        self.with_node(to, now, |node, log, at| {
            signed = !matches!(
                node.handle_message(log, at, sealed),
                Err(Rejection::Wire(_))
            );
        });
        if signed && self.members[to].adversary.is_none() {
            for other in 0..self.members.len() {
                if other != to && other != from {
                    self.net.send(now, to, other, sealed.to_vec());
                }
            }
        }
    }

    /// A precommit's cosignature, if valid, for the light-client invariant.
    fn record_cosignature(&mut self, envelope: &Envelope<'_>) {
        let is_cosigned_precommit = matches!(
            postcard::from_bytes::<MemberMessage<'_>>(envelope.body),
            Ok(MemberMessage::Vote(Vote::Precommit { value: Some(_), .. }))
        );
        let members = self.members[0].log.members();
        if !is_cosigned_precommit {
            return;
        }
        let Ok(MemberMessage::Vote(vote)) = envelope.open(members) else {
            return;
        };
        if let Ok(Some((head, _))) = vote.check_cosignature(ORIGIN, &envelope.sender, members) {
            self.cosigned
                .entry((head.size, head.root))
                .or_default()
                .insert(envelope.sender);
        }
    }

    /// No two checkpoints of one size with different roots each carry a quorum of valid
    /// cosignatures: a light client could be shown both.
    fn check_light_clients(&mut self) {
        let quorum = self.members[0].log.members().quorum();
        let mut final_roots: BTreeMap<u64, Hash> = BTreeMap::new();
        for ((size, root), signers) in &self.cosigned {
            if signers.len() < quorum {
                continue;
            }
            if let Some(other) = final_roots.insert(*size, *root)
                && other != *root
            {
                self.violations.push(format!(
                    "FORK: light clients accept two checkpoints of size {size} with different roots"
                ));
            }
        }
    }

    /// Stores a final checkpoint and its entries in member `i`'s log, as the daemon's log does
    /// (`LogState::check_offer`, then `extend`); records it for the fork invariant.
    fn apply(&mut self, i: usize, note: &SignedCheckpoint, entries: &[Vec<u8>], decided: bool) {
        let honest = self.members[i].adversary.is_none();
        let member = &mut self.members[i];
        let height = member.log.consensus_height();
        match member.log.check_offer(note, entries) {
            Ok(Offer::Extend(checked)) => {
                member.log.extend(checked, note.clone(), entries);
                member.entries.extend_from_slice(entries);
            }
            Ok(Offer::Refresh) => member.log.set_latest(note.clone()),
            Ok(Offer::Stale) => {}
            Err(e) => {
                if honest && decided {
                    self.violations.push(format!(
                        "member {i} decided a batch its own log refuses: {e}"
                    ));
                }
                return;
            }
        }
        if !honest {
            return;
        }
        let checkpoint = &note.checkpoint;
        self.trace.update(&checkpoint.size.to_le_bytes());
        self.trace.update(&checkpoint.root);
        if decided
            && let Some(other) = self
                .decisions
                .insert(height, (checkpoint.size, checkpoint.root))
            && other != (checkpoint.size, checkpoint.root)
        {
            self.violations.push(format!(
                "two honest members decided different batches at height {height}"
            ));
        }
        if let Some(root) = self.finals.insert(checkpoint.size, checkpoint.root)
            && root != checkpoint.root
        {
            self.violations.push(format!(
                "FORK: two final checkpoints of size {} with different roots",
                checkpoint.size
            ));
        }
    }

    /// Log replication: member `i` takes a reachable peer's newer final checkpoint and the
    /// entries under it (what the checkpoint gossip and entry fetch do).
    fn sync(&mut self, i: usize, now: Instant) {
        let n = self.members.len();
        let peer = self.rng.below(n as u64) as usize;
        let blocked = self
            .partition
            .as_ref()
            .is_some_and(|p| p.blocks(peer, i) || p.blocks(i, peer));
        if peer == i || blocked || self.members[i].node.is_none() {
            return;
        }
        let have = self.members[i].log.final_size();
        let Some(note) = self.members[peer].log.latest().cloned() else {
            return;
        };
        if note.checkpoint.size <= have
            && note.checkpoint.timestamp <= self.members[i].log.consensus_height()
        {
            return;
        }
        let entries: Vec<Vec<u8>> = self.members[peer]
            .entries
            .get(have as usize..)
            .map(<[Vec<u8>]>::to_vec)
            .unwrap_or_default();
        self.apply(i, &note, &entries, false);
        self.with_node(i, now, |node, log, at| node.tick(log, at));
    }

    /// Notes when each request became committed on every honest member.
    fn note_commits(&mut self, now: Instant) {
        for r in 0..self.requested.len() {
            if self.committed_at[r].is_some() {
                continue;
            }
            let name = &self.requested[r];
            let version = committed_version(name);
            let everywhere = self
                .honest()
                .all(|i| self.members[i].log.index().commit(name, &version).is_some());
            if everywhere {
                self.committed_at[r] = Some(now);
            }
        }
    }

    fn latencies(&self) -> Vec<Duration> {
        self.requested_at
            .iter()
            .zip(&self.committed_at)
            .filter_map(|(at, done)| done.map(|d| d.saturating_since(*at)))
            .collect()
    }

    /// Each member's state, for a liveness report.
    fn diagnose(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            let index = m.log.index();
            let committed = self
                .requested
                .iter()
                .filter(|name| {
                    index
                        .commit(name, &upstream_digest(name).to_string())
                        .is_some()
                })
                .count();
            let requested = self
                .requested
                .iter()
                .filter(|name| {
                    index
                        .request(name, &upstream_digest(name).to_string())
                        .is_some()
                })
                .count();
            out.push_str(&format!(
                "\n  member {i} {:?}: size {} height {} up {} voting {} status {:?} requested {requested}/{} committed {committed} open {}",
                m.adversary,
                m.log.final_size(),
                m.log.consensus_height(),
                m.node.is_some(),
                m.node.as_ref().is_some_and(MemberNode::is_voting),
                m.node.as_ref().map(MemberNode::status),
                self.requested.len(),
                index.open_requests().count(),
            ));
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &m.entries {
                *kinds
                    .entry(Entry::decode(e).map_or("?", |e| e.kind()))
                    .or_default() += 1;
            }
            out.push_str(&format!(" entries {kinds:?}"));
            let limited: Vec<(usize, u64)> = self
                .members
                .iter()
                .enumerate()
                .filter_map(|(j, o)| Some((j, *m.limited.get(&o.key.public().key_id())?)))
                .collect();
            out.push_str(&format!(" rate-limited {limited:?}"));
        }
        out
    }

    /// Whether the upstream sets `tag` (coordinates with the tag in `version`) at what
    /// `target` names in member `i`'s log: an image's `latest` at its manifest, a Maven
    /// artifact's `release` at the commit of [`PACKAGE_VERSION`].
    fn upstream_tags(&self, i: usize, tag: &Coordinates<'_>, target: Digest) -> bool {
        if tag.ecosystem == ECOSYSTEM_DOCKER {
            return tag.version == "latest" && target == upstream_digest(tag.name);
        }
        let subject = tag.subject();
        let named = self.members[i].log.index().tagged(&subject, &target);
        tag.ecosystem == ECOSYSTEM_MAVEN
            && tag.version == PACKAGE_TAG
            && named.is_some_and(|(_, version)| version == PACKAGE_VERSION)
    }

    fn all_committed(&self) -> bool {
        self.honest().all(|i| {
            let log = &self.members[i].log;
            self.requested.iter().all(|name| {
                let index = log.index();
                let committed = index.commit(name, &committed_version(name)).is_some();
                let tag = |tag| index.tag(name, tag).map(|(_, d)| d);
                let tagged = match name.split_once(':') {
                    // PyPI has no tags; its releases are rebuilt.
                    Some(("pypi", project)) => index
                        .commit(&subject(ECOSYSTEM_PYPI_REBUILD, project), PACKAGE_VERSION)
                        .is_some(),
                    Some(("maven", _)) => {
                        let target = index.tag_target(ECOSYSTEM_MAVEN, name, PACKAGE_VERSION);
                        target.is_some() && tag(PACKAGE_TAG) == target
                    }
                    _ => tag("latest") == Some(upstream_digest(name)),
                };
                committed && tagged
            })
        })
    }

    /// Every tag in honest logs points at a digest committed under its name, and no request
    /// an honest member made ended unverifiable (no forged verdict was ordered).
    fn check_tags_and_verdicts(&mut self) {
        for i in self.honest().collect::<Vec<_>>() {
            for bytes in &self.members[i].entries {
                match Entry::decode(bytes) {
                    Ok(Entry::TagObservation(t))
                        if !self.upstream_tags(i, &t.statement.tag, t.statement.digest) =>
                    {
                        let tag = t.statement.tag;
                        self.violations.push(format!(
                            "member {i}'s log points {}:{} at a digest the upstream does not serve for it",
                            tag.name, tag.version
                        ));
                    }
                    Ok(Entry::UnattestedTag(t)) => {
                        self.violations.push(format!(
                            "member {i}'s log holds an unattested tag {}:{}",
                            t.tag.name, t.tag.version
                        ));
                    }
                    Ok(Entry::Rebuilt(r))
                        if r.statement.verdict != RebuildVerdict::NotReproduced =>
                    {
                        self.violations.push(format!(
                            "member {i}'s log holds the rebuild verdict {:?} for {}, which honest rebuilders found not reproduced",
                            r.statement.verdict, r.statement.coordinates.name
                        ));
                    }
                    Ok(Entry::Unverifiable(d)) | Ok(Entry::Dispute(d))
                        if d.coordinates.name.starts_with(UPSTREAM_IMAGES)
                            || is_upstream_package(&subject(
                                rebuilt_ecosystem(d.coordinates.ecosystem)
                                    .unwrap_or(d.coordinates.ecosystem),
                                d.coordinates.name,
                            )) =>
                    {
                        self.violations.push(format!(
                            "member {i}'s log holds a verdict against {}, which honest builders agree on",
                            d.coordinates.name
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every honest member's log is a prefix of the longest one.
    fn check_same_logs(&mut self) {
        let honest: Vec<usize> = self.honest().collect();
        let Some(longest) = honest
            .iter()
            .copied()
            .max_by_key(|i| self.members[*i].entries.len())
        else {
            return;
        };
        for i in honest {
            let entries = &self.members[i].entries;
            if self.members[longest].entries[..entries.len()] != entries[..] {
                self.violations.push(format!(
                    "member {i}'s log is not a prefix of member {longest}'s"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nodes: usize, seed: u64, adversary: Option<Adversary>, faults: bool) -> Params {
        Params {
            nodes,
            byzantine: faults_for(nodes),
            seed,
            adversary,
            faults,
        }
    }

    #[test]
    fn every_adversary_at_four_and_seven_members_on_a_calm_network() {
        for nodes in [4, 7] {
            for adversary in ADVERSARIES {
                let outcome = run(params(nodes, 1, Some(adversary), false));
                assert_eq!(
                    outcome.violations,
                    Vec::<String>::new(),
                    "{nodes} members, {adversary:?}"
                );
                assert!(outcome.finished_at.is_some());
                // Every adversary but the silent one acted (the vote-splitter only when it
                // proposed, which a short calm run may not reach).
                let acts = !matches!(adversary, Adversary::Silent | Adversary::SplitVotes);
                assert!(
                    !acts || outcome.misbehaved > 0,
                    "{nodes} members, {adversary:?}: the adversary never acted"
                );
            }
        }
    }

    #[test]
    fn seeded_faults_with_mixed_adversaries_hold_every_invariant() {
        for seed in 1..=6 {
            for nodes in [4, 5] {
                let outcome = run(params(nodes, seed, None, true));
                assert_eq!(
                    outcome.violations,
                    Vec::<String>::new(),
                    "seed {seed}, {nodes} members"
                );
            }
        }
    }

    #[test]
    fn a_vote_splitter_between_two_cut_halves_never_forks_five_members() {
        // Under the old quorum of 2f+1 = 3 of 5, seeds 5, 12, 15 and 17 fork here.
        let mut caught = 0;
        for seed in 1..=20 {
            let outcome = run(params(5, seed, Some(Adversary::SplitVotes), true));
            assert_eq!(outcome.violations, Vec::<String>::new(), "seed {seed}");
            caught += outcome.equivocations;
        }
        // Its twin votes reach honest members through relays: they keep the proof (and never
        // one against an honest member, a violation above).
        assert!(
            caught > 0,
            "the splitter's equivocation was never kept as evidence"
        );
    }

    #[test]
    fn forgers_spending_their_message_rate_do_not_stall_seven_members() {
        // Two forgers used up their rate at every member; with one budget for all their
        // messages their votes reached some members and not others (nor did the relays of
        // them), and honest members stayed locked apart for good.
        let outcome = run(params(7, 111, None, true));
        assert_eq!(outcome.violations, Vec::<String>::new());
    }

    #[test]
    fn the_same_seed_gives_the_same_run() {
        let a = run(params(4, 9, None, true));
        let b = run(params(4, 9, None, true));
        assert_eq!(a, b);
    }
}
