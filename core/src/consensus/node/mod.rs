//! The member node (docs/PROTOCOL.md §2–3): one sans-IO state machine that a daemon and the
//! simulation both run. It holds the height's Tendermint instance, the mempool, the values
//! and cosignatures that become a decision's certificate, membership endorsements and the
//! build rounds of open requests, and decides everything on the pure [`LogState`] the
//! caller passes in. It never reads a clock, a socket or a disk: every call brings the
//! monotonic and the wall-clock time ([`Now`]), and what to do comes back from
//! [`MemberNode::poll_output`] ([`NodeOutput`]): persist the voting state, broadcast a sealed
//! message, build an artifact, store a decided batch with its certificate, keep evidence.
//!
//! The caller's loop: feed inputs ([`MemberNode::handle_message`], [`MemberNode::request`],
//! [`MemberNode::endorse`], [`MemberNode::built`], [`MemberNode::persisted`]), call
//! [`MemberNode::tick`] when [`MemberNode::next_deadline`] passes or the log moved (a
//! replicated checkpoint), and carry out every output in order. A `Decided` output must be
//! applied to the log before the next call; then the node starts the next height.

mod byzantine;
mod equivocation;
mod intake;
mod pool;
mod rebuilds;
mod rounds;
mod tags;
#[cfg(test)]
mod tests;
mod votes;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::consensus::BuildRound;
use crate::consensus::limits::Budget;
use crate::consensus::mempool::Mempool;
use crate::consensus::ordering::{Message, Ordering, ValueId, VotingState};
use crate::consensus::wire::{Batch, CheckpointHead, Envelope, MemberMessage};
use crate::identity::{KeyId, SecretKey, Signature};
use crate::members::MemberSet;
use crate::time::{Duration, Instant};
use crate::tlog::checkpoint::{Cosignature, SignedCheckpoint};
use crate::tlog::state::LogState;
use crate::tlog::{Hash, leaf_hash};

pub use byzantine::Misbehaviour;
pub use intake::Rejection;
pub use pool::{ArtifactRequest, PackageRequest};
pub use rebuilds::{AWAITING_REBUILDS_MAX, REBUILD_FETCH_WAIT, RebuildResult};
pub use rounds::{BuildResult, statement_lists};
pub use tags::{TAG_CHECKS_PER_MEMBER, TAG_COMMIT_WAIT, TAG_QUERY_TIMEOUT};

/// The time a call happens at: the monotonic clock (timeouts) and the wall clock in Unix
/// seconds (checkpoint times, the skew horizon). The simulation skews the wall clock per node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timeouts.
    pub mono: Instant,
    /// Wall-clock Unix seconds, for checkpoint times.
    pub wall_secs: u64,
}

/// How a member node runs.
#[derive(Clone, Copy, Debug)]
pub struct NodeConfig {
    /// Tendermint's first-round timeout; each later round adds as much again.
    pub round_timeout: Duration,
    /// How long the selected builders have before the next ones are asked.
    pub build_timeout: Duration,
    /// How old the last final checkpoint may get, in seconds, before members order an empty
    /// batch that refreshes its time (light clients refuse stale checkpoints).
    pub checkpoint_refresh_secs: u64,
    /// Builds this member runs at once (`--max-builds`; at least 1); further selections
    /// queue, fairly across requesters.
    pub max_builds: usize,
    /// Test-only misbehaviour (byzantine member tests and adversaries of the simulation).
    pub misbehaviour: Option<Misbehaviour>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            round_timeout: Duration::from_secs(3),
            build_timeout: Duration::from_secs(300),
            checkpoint_refresh_secs: 3600,
            max_builds: crate::consensus::limits::MAX_CONCURRENT_BUILDS,
            misbehaviour: None,
        }
    }
}

/// What the caller does for the node, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutput {
    /// Persist the voting state (synced to disk), then call [`MemberNode::persisted`] with
    /// `ticket`. Votes that depend on it wait; a failure only delays them (retry later).
    Persist {
        /// Passed back once persisted.
        ticket: u64,
        /// The state to persist.
        state: VotingState,
    },
    /// Send this sealed member message to every other member.
    Broadcast(Vec<u8>),
    /// This member is selected to build the request at `index` (its entry's bytes): fetch it
    /// as its build type says, then call [`MemberNode::built`].
    Build {
        /// The request's log index.
        index: u64,
        /// The `BuildRequest` entry.
        request: Vec<u8>,
    },
    /// The members decided a batch: store `entries` under `checkpoint` (it carries the
    /// quorum's cosignatures) in the log before the next call.
    Decided {
        /// The final checkpoint.
        checkpoint: Box<SignedCheckpoint>,
        /// The batch's entries.
        entries: Vec<Vec<u8>>,
    },
    /// Another member asks whether `name:tag` resolves where it says: resolve the tag at this
    /// node's upstream (never from a cache): an image tag to its manifest digest, an npm
    /// dist-tag to the version the packument names, a Maven `release` or `latest` to the
    /// version the artifact's `maven-metadata.xml` names; then call
    /// [`MemberNode::tag_resolved`] with `ticket`. Hosts the node does not fetch from resolve
    /// to nothing.
    ResolveTag {
        /// The ecosystem (`docker`, `npm`, `maven`).
        ecosystem: String,
        /// The name in the ecosystem (an image's canonical name, e.g.
        /// `docker.io/library/alpine`; an npm package name; a Maven `groupId:artifactId`).
        name: String,
        /// The tag.
        tag: String,
        /// Passed back with the answer.
        ticket: Vec<u8>,
    },
    /// Keep `bytes` as evidence of misbehaviour under `key`.
    Evidence {
        /// What the evidence shows.
        kind: EvidenceKind,
        /// Where to keep it.
        key: Vec<u8>,
        /// The signed messages that show it.
        bytes: Vec<u8>,
    },
}

/// What a piece of evidence shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// A member attested outputs that contradict a commit (PROTOCOL case 3): the statement and
    /// the signed record.
    ContradictingAttestation,
    /// A member sent two different prevotes or precommits for one height and round (PROTOCOL
    /// case 8): both sealed messages, a postcard pair of byte strings.
    Equivocation,
}

/// How often, at most, the candidate batch is chosen again as entries arrive.
const CANDIDATE_EVERY: Duration = Duration::from_millis(100);
/// A member node's state at a glance, for operators' logs and status pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// The height being ordered (the last final checkpoint's time).
    pub height: u64,
    /// The round of that height.
    pub round: u32,
    /// Whether the height started (something to order, or another member started it).
    pub started: bool,
    /// Whether this member has a batch to propose.
    pub has_candidate: bool,
    /// Entries waiting to be ordered.
    pub mempool: usize,
    /// Build rounds followed (open requests).
    pub rounds: usize,
    /// Builds running and waiting for a slot.
    pub builds: (usize, usize),
}

/// Membership changes one member may have open endorsements for.
const ENDORSEMENTS_PER_MEMBER: usize = 16;
/// Tags this member saw and waits to observe in the log (their digest is not committed yet).
const MAX_PENDING_TAGS: usize = 1024;
/// Attestations for requests this member does not know yet, kept until it does.
const MAX_EARLY_ATTESTATIONS: usize = 256;

/// See the module documentation.
pub struct MemberNode {
    key: SecretKey,
    config: NodeConfig,
    nonce: u64,
    origin: String,
    members: MemberSet,
    member_ids: Vec<KeyId>,
    /// The height being ordered: the time of the last final checkpoint.
    height: Option<u64>,
    /// The final log's size at that height.
    size: u64,
    ordering: Option<Ordering>,
    started: bool,
    /// Whether the height's Tendermint instance has this member's candidate batch.
    has_candidate: bool,
    /// When the candidate was last chosen, and whether entries arrived since.
    candidate_at: Option<Instant>,
    candidate_stale: bool,
    /// The voting state persisted last (a restart passes it in).
    saved: Option<VotingState>,
    future: Vec<(KeyId, usize, Message)>,
    future_budget: Budget,
    cosignatures: BTreeMap<ValueId, (CheckpointHead, BTreeMap<KeyId, Cosignature>)>,
    values: BTreeMap<ValueId, Vec<u8>>,
    value_budget: Budget,
    /// Others' sealed prevotes for values, relayed as the proof of this member's valid value.
    prevotes: BTreeMap<(u64, u32, ValueId, KeyId), Vec<u8>>,
    prevote_budget: Budget,
    mempool: Mempool,
    endorsements: BTreeMap<(bool, u64, [u8; 32]), BTreeMap<KeyId, Signature>>,
    endorsement_budget: Budget,
    rounds: BTreeMap<u64, BuildRound>,
    building: BTreeSet<u64>,
    /// Builds this member was asked for that wait for a slot, with their requester.
    build_queue: BTreeMap<u64, KeyId>,
    /// Builds started per requester (the queue serves the requester with the fewest first).
    builds_served: BTreeMap<KeyId, u64>,
    early_attestations: Vec<(KeyId, Vec<u8>, Signature)>,
    own_attestations: BTreeMap<u64, (Vec<u8>, Signature)>,
    /// Requests this member asked for that are not committed or unverifiable yet.
    pending: BTreeSet<(String, String)>,
    /// Rebuilds this member's mirror wants, by rebuild subject and version, until the
    /// version's fetch commits.
    awaiting_rebuilds: BTreeMap<(String, String), rebuilds::AwaitingRebuild>,
    /// Tags this member's mirror resolved, by subject and tag, until the log observes them.
    pending_tags: BTreeMap<(String, String), tags::PendingTag>,
    /// Other members' tag queries this member is resolving, by statement.
    tag_checks: BTreeMap<Vec<u8>, tags::TagCheck>,
    /// The vote-splitter's twin of each batch it proposed.
    twins: BTreeMap<ValueId, ValueId>,
    /// The wrong-digest member's builds in progress: each request's bytes and selection, so
    /// that it attests even once the request settled.
    late_attestations: BTreeMap<u64, (Vec<u8>, (u64, Hash))>,
    outputs: VecDeque<NodeOutput>,
    /// Acts of test misbehaviour so far.
    misbehaved: u64,
    /// Each member's first prevote and precommit per round of the current height (what it
    /// chose and the sealed message), within its share, and who was caught equivocating.
    first_votes: equivocation::FirstVotes,
    vote_budget: Budget,
    equivocated: BTreeSet<equivocation::VoteSlot>,
    /// The log size the tag forger last forged at.
    forged_at: Option<u64>,
}

impl MemberNode {
    /// A member with `key` (a member of the log's current epoch, or waiting to become one).
    /// `nonce` must exceed every nonce this key sealed before (e.g. the wall clock in
    /// microseconds); `saved` is the voting state persisted before a restart.
    pub fn new(
        key: SecretKey,
        config: NodeConfig,
        nonce: u64,
        saved: Option<VotingState>,
    ) -> MemberNode {
        MemberNode {
            key,
            config,
            nonce,
            origin: String::new(),
            members: MemberSet::EMPTY,
            member_ids: Vec::new(),
            height: None,
            size: 0,
            ordering: None,
            started: false,
            has_candidate: false,
            candidate_at: None,
            candidate_stale: false,
            saved,
            future: Vec::new(),
            future_budget: Budget::default(),
            cosignatures: BTreeMap::new(),
            values: BTreeMap::new(),
            value_budget: Budget::default(),
            prevotes: BTreeMap::new(),
            prevote_budget: Budget::default(),
            mempool: Mempool::default(),
            endorsements: BTreeMap::new(),
            endorsement_budget: Budget::default(),
            rounds: BTreeMap::new(),
            building: BTreeSet::new(),
            build_queue: BTreeMap::new(),
            builds_served: BTreeMap::new(),
            early_attestations: Vec::new(),
            own_attestations: BTreeMap::new(),
            pending: BTreeSet::new(),
            awaiting_rebuilds: BTreeMap::new(),
            pending_tags: BTreeMap::new(),
            tag_checks: BTreeMap::new(),
            twins: BTreeMap::new(),
            late_attestations: BTreeMap::new(),
            outputs: VecDeque::new(),
            misbehaved: 0,
            forged_at: None,
            first_votes: BTreeMap::new(),
            vote_budget: Budget::default(),
            equivocated: BTreeSet::new(),
        }
    }

    /// This member's key id.
    pub fn id(&self) -> KeyId {
        self.key.public().key_id()
    }

    /// The height being ordered, once known.
    pub fn height(&self) -> Option<u64> {
        self.height
    }

    /// Whether this node is a member of the epoch it follows (it votes).
    pub fn is_voting(&self) -> bool {
        self.ordering.is_some()
    }

    /// Requests this member asked for that are not committed (or unverifiable) yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The node's state at a glance.
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            height: self.height.unwrap_or(0),
            round: self.ordering.as_ref().map_or(0, Ordering::round),
            started: self.started,
            has_candidate: self.has_candidate,
            mempool: self.mempool.len(),
            rounds: self.rounds.len(),
            builds: (self.building.len(), self.build_queue.len()),
        }
    }

    /// Entries waiting to be ordered.
    pub fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    /// How many times this node misbehaved as its [`Misbehaviour`] asks (twin proposals,
    /// wrong attestations, junk bursts): what a test checks to know the attack happened.
    pub fn misbehaved(&self) -> u64 {
        self.misbehaved
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<NodeOutput> {
        self.outputs.pop_front()
    }

    /// When [`MemberNode::tick`] must run next at the latest (a round or build timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.ordering
            .as_ref()
            .filter(|_| self.started)
            .and_then(Ordering::poll_timeout)
            .into_iter()
            .chain(self.rounds.values().filter_map(BuildRound::deadline))
            .chain(
                self.candidate_at
                    .filter(|_| self.candidate_stale)
                    .and_then(|at| at.checked_add(CANDIDATE_EVERY)),
            )
            .chain(self.tag_deadline())
            .min()
    }

    /// Timeouts that passed, the log having moved (a decision applied, a checkpoint
    /// replicated), a heartbeat that is due, and (test misbehaviour) the flooder's burst.
    pub fn tick(&mut self, log: &LogState, now: Now) {
        self.follow_log(log, now);
        if self.candidate_stale
            && self
                .candidate_at
                .is_none_or(|at| now.mono.saturating_since(at) >= CANDIDATE_EVERY)
        {
            self.refresh_candidate(log, now);
        }
        // A height started by others' messages while nothing waited has no candidate; once
        // the checkpoint needs refreshing, the heartbeat is this member's candidate.
        if !self.has_candidate && self.ordering.is_some() && self.heartbeat_due(log, now) {
            self.refresh_candidate(log, now);
            self.start(log, now);
        }
        if self.started
            && let Some(ordering) = &mut self.ordering
            && ordering.poll_timeout().is_some_and(|at| at <= now.mono)
        {
            let refresh = self.config.checkpoint_refresh_secs;
            ordering.handle_timeout(now.mono, &|h, v| {
                votes::batch_is_valid(log, h, v, now.wall_secs, refresh)
            });
            self.drain(log, now);
        }
        self.on_round_timeouts(log, now);
        if self.tag_deadline().is_some_and(|at| at <= now.mono) {
            self.submit_committed_tags(log, now, None);
        }
        if self.config.misbehaviour == Some(Misbehaviour::Flood) {
            self.flood(log);
        }
        if self.config.misbehaviour == Some(Misbehaviour::ForgeTags) {
            self.forge_tags(log);
        }
    }

    /// The voting state `ticket` asked for is on disk: the votes waiting for it may leave.
    pub fn persisted(&mut self, log: &LogState, now: Now, ticket: u64, state: VotingState) {
        self.saved = Some(state);
        if let Some(ordering) = &mut self.ordering {
            ordering.handle_persisted(ticket);
        }
        self.drain(log, now);
    }

    /// Seals a message and queues it for every member; a node that is not a member sends
    /// nothing (members would refuse it).
    fn broadcast(&mut self, message: &MemberMessage<'_>) {
        if self.ordering.is_none() {
            return;
        }
        self.nonce += 1;
        let sealed = Envelope::seal(&self.key, self.nonce, message);
        self.outputs.push_back(NodeOutput::Broadcast(sealed));
    }

    /// Starts the height the final log is at when it moved (a decision, or replication from
    /// a peer), and the build rounds of new requests.
    fn follow_log(&mut self, log: &LogState, now: Now) {
        let size = log.final_size();
        let height = log.consensus_height();
        let members = log.members();
        if self.height == Some(height) && members.epoch() == self.members.epoch() {
            return;
        }
        self.origin = String::from(log.origin());
        if size > self.size {
            // What the log took in is no longer waiting.
            let ordered: BTreeSet<[u8; 32]> = (self.size..size)
                .filter_map(|i| log.tree().leaf(i).copied())
                .collect();
            self.mempool
                .retain(|entry| !ordered.contains(&leaf_hash(entry)));
        }
        self.size = size;
        if members.epoch() != self.members.epoch() {
            // Endorsements of an epoch that has passed can no longer apply.
            let epoch = members.epoch();
            self.endorsements.retain(|(_, e, _), _| *e > epoch);
            self.endorsement_budget.reset();
        }
        self.member_ids = members.keys().map(|k| k.key_id()).collect();
        self.members = members.clone();
        self.height = Some(height);
        self.started = false;
        self.has_candidate = false;
        let me = self.id();
        let Some(index) = self.member_ids.iter().position(|id| *id == me) else {
            self.ordering = None;
            return;
        };
        let n = self.member_ids.len();
        let timeout = self.config.round_timeout;
        let ordering = match &self.saved {
            Some(state) if state.height == height => {
                Ordering::resume(index, n, state, timeout, timeout)
            }
            _ => Ordering::new(index, n, height, timeout, timeout),
        };
        self.ordering = Some(ordering.with_value_id(Batch::id));
        // Later batches are timed after the last final checkpoint; each member's share of
        // the tables starts again (what is kept is at most the skew ahead of the clock).
        self.cosignatures
            .retain(|_, (head, _)| head.timestamp > height);
        self.values
            .retain(|_, value| Batch::decode(value).is_ok_and(|b| b.head.timestamp > height));
        self.value_budget.reset();
        self.prevotes.retain(|(h, ..), _| *h >= height);
        self.prevote_budget.reset();
        self.first_votes.clear();
        self.vote_budget.reset();
        self.equivocated.clear();
        self.twins.clear();
        if size == 0 {
            // A new network: its first batch is the genesis entry.
            self.mempool.add(me, log.genesis().to_vec());
        }
        self.mempool.retain(|entry| pool::still_wanted(log, entry));
        // This member's own entries go out again at every height until a batch orders them:
        // a lost submission must not lose the request.
        let own: Vec<Vec<u8>> = self.mempool.entries_from(&me).map(<[u8]>::to_vec).collect();
        for entry in own {
            self.broadcast(&MemberMessage::Submit { entry: &entry });
        }
        // A submitted request is pending until committed or found unverifiable.
        let index = log.index();
        self.pending.retain(|(name, version)| {
            index.commit(name, version).is_none()
                && index
                    .dispute(name, version)
                    .is_none_or(|(_, unverifiable)| !unverifiable)
        });
        self.future_budget.reset();
        for (sender, from, message) in core::mem::take(&mut self.future) {
            self.on_vote(log, now, sender, from, message);
        }
        self.submit_committed_tags(log, now, None);
        self.request_awaited_rebuilds(log, now);
        self.refresh_candidate(log, now);
        if !self.mempool.is_empty() || self.heartbeat_due(log, now) {
            self.start(log, now);
        }
        self.sync_rounds(log, now);
    }

    /// Whether the last final checkpoint is older than the refresh interval: then members
    /// order an empty batch, so that light clients' freshness checks keep passing on a quiet
    /// log.
    fn heartbeat_due(&self, log: &LogState, now: Now) -> bool {
        log.latest().is_some_and(|c| {
            now.wall_secs >= c.checkpoint.timestamp + self.config.checkpoint_refresh_secs
        })
    }
}
