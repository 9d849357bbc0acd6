//! Ordering of the log's batches by Tendermint (Buchman, Kwon, Milosevic, "The latest gossip on
//! BFT consensus", 2018, Algorithm 1), sans-IO: proposals rotate over the members by height and
//! round, members prevote and precommit, lock on a value with a quorum of prevotes, decide it
//! with a quorum of precommits, and time out with timeouts that grow per round. Every "2f+1"
//! of the paper (which assumes n = 3f+1) is read as the quorum q = ⌈(n+f+1)/2⌉ of
//! [`crate::members::quorum_for`]: at n = 5, 2f+1 = 3 would let one equivocating proposer
//! that votes for both of its values get two values decided at one height.
//!
//! Values are opaque bytes (a batch of entries extending the last final checkpoint); the runtime
//! says which are valid (it replays the batch). Senders are authenticated by the transport;
//! every member is identified by its index in the epoch's member list. A member's own vote
//! leaves only after the runtime confirms it persisted the state the vote depends on
//! ([`OrderingOutput::Persist`] then [`Ordering::handle_persisted`]), so a restart never makes
//! it vote twice differently. A member behind in height is not sent votes (they are not
//! signed here) but the decisions it missed ([`OrderingOutput::SendDecision`]), which the
//! runtime carries with their certificate (the checkpoint's quorum of cosignatures) and the member
//! takes once the runtime checked it ([`Ordering::handle_decision`]).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::members::{faults_for, quorum_for};
use crate::time::{Duration, Instant};

/// A value's identity: SHA-256 of its bytes.
pub type ValueId = [u8; 32];

/// Heights kept for catching up members that are behind.
pub const KEPT_HEIGHTS: u64 = 16;

/// Rounds ahead of the current one whose messages are kept; later ones are dropped, so a
/// member sending votes for absurd rounds cannot grow the tables.
pub const ROUNDS_AHEAD: u32 = 16;

/// A message between members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The round's proposer proposes `value`; `valid_round` is the round it was locked or
    /// seen valid in, if any.
    Proposal {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The batch.
        value: Vec<u8>,
        /// The round `value` got a quorum of prevotes in, if it did.
        valid_round: Option<u32>,
    },
    /// A prevote for a value id, or for nothing.
    Prevote {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The value voted for; `None` is nil.
        id: Option<ValueId>,
    },
    /// A precommit for a value id, or for nothing.
    Precommit {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The value committed to; `None` is nil.
        id: Option<ValueId>,
    },
}

impl Message {
    /// The height and round the message is about.
    pub fn height_round(&self) -> (u64, u32) {
        match self {
            Message::Proposal { height, round, .. }
            | Message::Prevote { height, round, .. }
            | Message::Precommit { height, round, .. } => (*height, *round),
        }
    }
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderingOutput {
    /// Persist the voting state (height, round, lock), then call
    /// [`Ordering::handle_persisted`] with the ticket.
    Persist {
        /// Confirms this persist.
        ticket: u64,
        /// The state to persist.
        state: VotingState,
    },
    /// Send `message` to every other member.
    Broadcast(Message),
    /// Member `to` is behind: send it the decision of `height` with its certificate.
    SendDecision {
        /// The member behind.
        to: usize,
        /// The height it missed.
        height: u64,
        /// The value decided there.
        value: Vec<u8>,
    },
    /// Send again, to every member, the prevotes of others this member holds for `id` at
    /// `height`, `round`: the quorum that made `id` this member's valid value. Members that
    /// missed one of those votes (an equivocator's, sent to some members only, lost in a
    /// partition) could otherwise never accept the proposal of `id` this member makes again,
    /// and the height might never be decided (Tendermint's liveness assumes such gossip).
    /// Emitted with every resend while this member has a valid value.
    RelayProof {
        /// Height.
        height: u64,
        /// The round of the quorum.
        round: u32,
        /// The value.
        id: ValueId,
        /// The members whose prevotes for it to send (not this member: its own are resent).
        voters: Vec<usize>,
    },
    /// `value` is final at `height`.
    Decided {
        /// Height.
        height: u64,
        /// The batch.
        value: Vec<u8>,
    },
}

/// What a member persists before its votes leave: enough to come back after a crash in the
/// same round without ever sending a different vote there (it repeats the ones it cast).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VotingState {
    /// Current height.
    pub height: u64,
    /// Current round.
    pub round: u32,
    /// The round and value id this member is locked on.
    pub locked: Option<(u32, ValueId)>,
    /// The votes this member cast at `height` (the latest [`MAX_RECAST_ROUNDS`] rounds): a
    /// restarted member repeats them, since others may need them to prove a valid round.
    pub votes: Vec<CastVote>,
    /// Whether this member proposed in `round` (it does not propose again there).
    pub proposed: bool,
    /// The value this member saw a quorum of prevotes for, and that round (Tendermint's
    /// validValue; a lock is always on it). A restarted member proposes it again: without the
    /// bytes, a member locked on a value could only propose others it cannot vote for, and
    /// the height might never be decided.
    pub valid: Option<(u32, Vec<u8>)>,
}

/// A vote a member cast, as its voting state keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CastVote {
    /// The round.
    pub round: u32,
    /// A precommit (else a prevote).
    pub precommit: bool,
    /// The value id, or nil.
    pub id: Option<ValueId>,
}

/// Rounds of own votes a voting state keeps.
pub const MAX_RECAST_ROUNDS: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Propose,
    Prevote,
    Precommit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Propose(u64, u32),
    Prevote(u64, u32),
    Precommit(u64, u32),
    /// Send this height's messages again: messages lost before the network healed are
    /// otherwise never repeated, and a member behind is noticed only by what it sends.
    Resend(u64),
}

/// A proposal as a member keeps it: the value, its valid round, its id.
type Proposal = (Vec<u8>, Option<u32>, ValueId);

/// Distinct values one member's votes of one kind may count for in one height and round,
/// unless another member voted the same value. An honest member casts one; an equivocating one
/// may cast several, and every one of them must be countable: a member that locked on a value
/// with such a vote in its quorum proposes it again later, and the others accept that only if
/// they count the same quorum (Tendermint's liveness argument counts votes per value). The cap
/// bounds what a byzantine member's junk votes can hold.
pub const MAX_VALUES_PER_VOTER: usize = 4;

/// The votes of one kind in one height and round: which values each member voted, and how
/// many distinct members voted each value, so that counting a quorum takes no scan of the
/// voters. Counting per value is safe: two values each with a quorum of voters share f+1
/// voters, one of them honest, and an honest member never votes twice in a round.
#[derive(Default)]
struct Tally {
    cast: BTreeMap<usize, Vec<Option<ValueId>>>,
    counts: BTreeMap<Option<ValueId>, usize>,
    pairs: usize,
}

impl Tally {
    /// Records `from`'s vote for `id` (again: nothing). A further value from an equivocating
    /// member counts while it has fewer than [`MAX_VALUES_PER_VOTER`], or when another member
    /// voted that value too.
    fn add(&mut self, from: usize, id: Option<ValueId>) {
        let votes = self.cast.entry(from).or_default();
        if votes.contains(&id) {
            return;
        }
        let others = self.counts.get(&id).copied().unwrap_or(0);
        if votes.len() >= MAX_VALUES_PER_VOTER && others == 0 {
            return;
        }
        votes.push(id);
        self.pairs += 1;
        *self.counts.entry(id).or_default() += 1;
    }

    /// `from`'s first vote (an honest member's only one).
    fn get(&self, from: &usize) -> Option<&Option<ValueId>> {
        self.cast.get(from).and_then(|votes| votes.first())
    }

    /// Votes held (for the bound on buffers).
    fn len(&self) -> usize {
        self.pairs
    }

    fn voters(&self) -> impl Iterator<Item = usize> + '_ {
        self.cast.keys().copied()
    }

    /// Members that voted `want` (`None`: members that voted anything).
    fn count(&self, want: Option<Option<ValueId>>) -> usize {
        match want {
            None => self.cast.len(),
            Some(id) => self.counts.get(&id).copied().unwrap_or(0),
        }
    }
}

/// One member's Tendermint state machine.
pub struct Ordering {
    me: usize,
    n: usize,
    f: usize,
    quorum: usize,
    height: u64,
    round: u32,
    step: Step,
    locked: Option<(u32, ValueId)>,
    valid: Option<(u32, Vec<u8>)>,
    candidate: Option<Vec<u8>>,
    proposals: BTreeMap<(u64, u32), Proposal>,
    /// Whether each value id proposed at this height is valid (asked once per value).
    validity: BTreeMap<ValueId, bool>,
    prevotes: BTreeMap<(u64, u32), Tally>,
    precommits: BTreeMap<(u64, u32), Tally>,
    decided: BTreeMap<u64, Vec<u8>>,
    certified: BTreeMap<u64, Vec<u8>>,
    fired: BTreeSet<(u8, u64, u32)>,
    timers: BTreeSet<(Instant, Timer)>,
    outputs: VecDeque<OrderingOutput>,
    unsent: BTreeMap<u64, Message>,
    sent: Vec<Message>,
    ticket: u64,
    timeout: Duration,
    timeout_step: Duration,
    value_id: fn(&[u8]) -> ValueId,
    resumed: Option<VotingState>,
    started: bool,
}

/// The default value identity: SHA-256 of the value's bytes.
pub fn sha256_id(value: &[u8]) -> ValueId {
    *Digest::sha256(value).as_bytes()
}

impl Ordering {
    /// Member `me` of `n` (f and the quorum from [`crate::members`]) starting at `height`; round timeouts are `timeout`
    /// plus `timeout_step` per round. Call [`Ordering::start`] once the runtime is ready.
    pub fn new(
        me: usize,
        n: usize,
        height: u64,
        timeout: Duration,
        timeout_step: Duration,
    ) -> Self {
        Ordering {
            me,
            n,
            f: faults_for(n),
            quorum: quorum_for(n),
            height,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            candidate: None,
            proposals: BTreeMap::new(),
            validity: BTreeMap::new(),
            prevotes: BTreeMap::new(),
            precommits: BTreeMap::new(),
            decided: BTreeMap::new(),
            certified: BTreeMap::new(),
            fired: BTreeSet::new(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            unsent: BTreeMap::new(),
            sent: Vec::new(),
            ticket: 0,
            timeout,
            timeout_step,
            value_id: sha256_id,
            resumed: None,
            started: false,
        }
    }

    /// Identifies values by `value_id` instead of SHA-256 of their bytes: the runtime's
    /// batches are identified by the checkpoint they produce, so that a precommit for an id
    /// is a signature over that checkpoint (see [`super::wire::Batch::id`]).
    pub fn with_value_id(mut self, value_id: fn(&[u8]) -> ValueId) -> Self {
        self.value_id = value_id;
        self
    }

    /// A member restarting from its persisted [`VotingState`]: same height, round and lock;
    /// [`Ordering::start`] repeats the votes it cast in that round (identical ones, so nothing
    /// it sent before the crash is contradicted) and does not propose there again.
    pub fn resume(
        me: usize,
        n: usize,
        state: &VotingState,
        timeout: Duration,
        timeout_step: Duration,
    ) -> Self {
        let mut ordering = Ordering::new(me, n, state.height, timeout, timeout_step);
        ordering.round = state.round;
        ordering.locked = state.locked;
        ordering.valid = state.valid.clone();
        ordering.resumed = Some(state.clone());
        ordering
    }

    fn id(&self, value: &[u8]) -> ValueId {
        (self.value_id)(value)
    }

    /// The proposer of `height`, `round`: round-robin over the members.
    pub fn proposer(&self, height: u64, round: u32) -> usize {
        ((height + u64::from(round)) % self.n as u64) as usize
    }

    /// Proposals and votes held (for the simulation's bound on buffers).
    pub fn buffered(&self) -> usize {
        self.proposals.len()
            + self.prevotes.values().map(Tally::len).sum::<usize>()
            + self.precommits.values().map(Tally::len).sum::<usize>()
    }

    /// Members whose prevotes and precommits for `id` at `height`, `round` this member holds
    /// (for diagnostics: the simulation prints them when a run fails).
    pub fn tally(&self, height: u64, round: u32, id: Option<ValueId>) -> (usize, usize) {
        let key = (height, round);
        (
            Self::count(self.prevotes.get(&key), Some(id)),
            Self::count(self.precommits.get(&key), Some(id)),
        )
    }

    /// The prevotes this member holds at `height`, `round`: each voter with the values it
    /// voted (for diagnostics).
    pub fn prevoters(&self, height: u64, round: u32) -> Vec<(usize, Vec<Option<ValueId>>)> {
        self.prevotes
            .get(&(height, round))
            .map_or_else(Vec::new, |t| {
                t.cast.iter().map(|(v, ids)| (*v, ids.clone())).collect()
            })
    }

    /// Whether this member holds a proposal for `height`, `round`, and its id.
    pub fn proposal_id(&self, height: u64, round: u32) -> Option<ValueId> {
        self.proposals.get(&(height, round)).map(|(_, _, id)| *id)
    }

    /// The current round.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// The height being decided now.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The value decided at `height`, if any.
    pub fn decision(&self, height: u64) -> Option<&[u8]> {
        self.decided.get(&height).map(Vec::as_slice)
    }

    /// What this member proposes when it is the proposer (the next batch); kept until used.
    /// Proposed at once when this member is the proposer of the round it is in and has not
    /// proposed there yet (the candidate arrived after the round started).
    pub fn set_candidate(&mut self, value: Vec<u8>) {
        self.candidate = Some(value);
        let (h, r) = (self.height, self.round);
        if self.started
            && self.step == Step::Propose
            && self.proposer(h, r) == self.me
            && !self.proposals.contains_key(&(h, r))
        {
            self.propose();
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<OrderingOutput> {
        self.outputs.pop_front()
    }

    /// When the next timeout is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Starts the current height at its round (0, or the one after the last vote when
    /// resumed).
    pub fn start(&mut self, now: Instant, valid: &dyn Fn(u64, &[u8]) -> bool) {
        self.started = true;
        let resumed = self.resumed.take();
        let proposed = resumed.as_ref().is_some_and(|s| s.proposed);
        self.enter_round(now, self.round, !proposed);
        if let Some(state) = resumed {
            let (height, current) = (self.height, self.round);
            for vote in state.votes.iter().filter(|v| v.round <= current) {
                let (step, message) = if vote.precommit {
                    let round = vote.round;
                    let id = vote.id;
                    (Step::Precommit, Message::Precommit { height, round, id })
                } else {
                    let (round, id) = (vote.round, vote.id);
                    (Step::Prevote, Message::Prevote { height, round, id })
                };
                self.recast(step, message);
            }
        }
        self.schedule(now, Timer::Resend(self.height), 0);
        self.settle(now, valid);
    }

    /// A vote persisted before a restart: counted and sent again as it was.
    fn recast(&mut self, step: Step, message: Message) {
        let (h, r) = message.height_round();
        match &message {
            Message::Prevote { id, .. } => {
                self.prevotes.entry((h, r)).or_default().add(self.me, *id);
            }
            Message::Precommit { id, .. } => {
                self.precommits.entry((h, r)).or_default().add(self.me, *id);
            }
            Message::Proposal { .. } => {}
        }
        if r == self.round {
            self.step = self.step.max(step);
        }
        self.sent.push(message.clone());
        self.outputs.push_back(OrderingOutput::Broadcast(message));
    }

    /// The runtime persisted the state of `ticket`: the votes waiting for it leave.
    pub fn handle_persisted(&mut self, ticket: u64) {
        let ready: Vec<u64> = self.unsent.range(..=ticket).map(|(t, _)| *t).collect();
        for t in ready {
            if let Some(message) = self.unsent.remove(&t) {
                if message.height_round().0 == self.height {
                    self.sent.push(message.clone());
                }
                self.outputs.push_back(OrderingOutput::Broadcast(message));
            }
        }
    }

    /// A message from member `from`.
    pub fn handle_message(
        &mut self,
        now: Instant,
        from: usize,
        message: Message,
        valid: &dyn Fn(u64, &[u8]) -> bool,
    ) {
        if from >= self.n || from == self.me {
            return;
        }
        let (height, round) = message.height_round();
        if height < self.height {
            self.catch_up(from, height);
            return;
        }
        if height > self.height + KEPT_HEIGHTS
            || (height == self.height && round > self.round.saturating_add(ROUNDS_AHEAD))
            || (height > self.height && round > ROUNDS_AHEAD)
        {
            return;
        }
        match message {
            Message::Proposal {
                value, valid_round, ..
            } => {
                if from == self.proposer(height, round) {
                    let id = self.id(&value);
                    self.proposals
                        .entry((height, round))
                        .or_insert((value, valid_round, id));
                }
            }
            Message::Prevote { id, .. } => {
                self.prevotes
                    .entry((height, round))
                    .or_default()
                    .add(from, id);
            }
            Message::Precommit { id, .. } => {
                self.precommits
                    .entry((height, round))
                    .or_default()
                    .add(from, id);
            }
        }
        self.settle(now, valid);
    }

    /// Timeouts due by `now`.
    pub fn handle_timeout(&mut self, now: Instant, valid: &dyn Fn(u64, &[u8]) -> bool) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            match timer {
                Timer::Propose(h, r)
                    if h == self.height && r == self.round && self.step == Step::Propose =>
                {
                    self.vote(Step::Prevote, None);
                }
                Timer::Prevote(h, r)
                    if h == self.height && r == self.round && self.step == Step::Prevote =>
                {
                    self.vote(Step::Precommit, None);
                }
                Timer::Precommit(h, r) if h == self.height && r == self.round => {
                    self.start_round(now, r + 1);
                }
                Timer::Resend(h) if h == self.height => {
                    for message in &self.sent {
                        self.outputs
                            .push_back(OrderingOutput::Broadcast(message.clone()));
                    }
                    if let Some((round, value)) = &self.valid {
                        let (round, id) = (*round, self.id(value));
                        let voters: Vec<usize> = self
                            .prevotes
                            .get(&(h, round))
                            .map(|t| {
                                t.cast
                                    .iter()
                                    .filter(|(v, ids)| **v != self.me && ids.contains(&Some(id)))
                                    .map(|(v, _)| *v)
                                    .collect()
                            })
                            .unwrap_or_default();
                        self.outputs.push_back(OrderingOutput::RelayProof {
                            height: h,
                            round,
                            id,
                            voters,
                        });
                    }
                    self.schedule(now, Timer::Resend(h), self.round);
                }
                _ => {}
            }
        }
        self.settle(now, valid);
    }

    /// Member `to` sent a message of a height this member decided: it is behind.
    fn catch_up(&mut self, to: usize, height: u64) {
        if let Some(value) = self.decided.get(&height).cloned() {
            self.outputs
                .push_back(OrderingOutput::SendDecision { to, height, value });
        }
    }

    /// A decision whose certificate the runtime checked (a quorum of members' signatures):
    /// taken at once for the current height, kept for a later one.
    pub fn handle_decision(
        &mut self,
        now: Instant,
        height: u64,
        value: Vec<u8>,
        valid: &dyn Fn(u64, &[u8]) -> bool,
    ) {
        if height >= self.height && height <= self.height + KEPT_HEIGHTS {
            self.certified.insert(height, value);
        }
        self.settle(now, valid);
    }

    /// Records `value` as final at the current height and starts the next one.
    fn decide(&mut self, now: Instant, value: Vec<u8>) {
        let h = self.height;
        self.decided.insert(h, value.clone());
        self.outputs
            .push_back(OrderingOutput::Decided { height: h, value });
        self.height += 1;
        self.locked = None;
        self.valid = None;
        self.candidate = None;
        let next = self.height;
        let keep_from = next.saturating_sub(KEPT_HEIGHTS);
        self.proposals.retain(|(ph, _), _| *ph >= next);
        self.validity.clear();
        self.prevotes.retain(|(ph, _), _| *ph >= next);
        self.precommits.retain(|(ph, _), _| *ph >= next);
        self.certified.retain(|ph, _| *ph >= next);
        self.decided.retain(|ph, _| *ph >= keep_from);
        self.fired.retain(|(_, ph, _)| *ph >= next);
        self.timers.retain(|(_, t)| match t {
            Timer::Propose(th, _) | Timer::Prevote(th, _) | Timer::Precommit(th, _) => *th >= next,
            Timer::Resend(th) => *th >= next,
        });
        self.sent.clear();
        self.start_round(now, 0);
        self.schedule(now, Timer::Resend(next), 0);
    }

    fn timeout_for(&self, round: u32) -> Duration {
        Duration::from_micros(
            self.timeout.as_micros() + self.timeout_step.as_micros() * u64::from(round),
        )
    }

    fn schedule(&mut self, now: Instant, timer: Timer, round: u32) {
        self.timers.insert((now + self.timeout_for(round), timer));
    }

    fn start_round(&mut self, now: Instant, round: u32) {
        self.enter_round(now, round, true);
    }

    /// Enters `round` at the propose step, proposing when this member is its proposer (and
    /// `propose` allows: not again after a restart in the round it proposed in).
    fn enter_round(&mut self, now: Instant, round: u32, propose: bool) {
        self.round = round;
        self.step = Step::Propose;
        let (h, r) = (self.height, round);
        if propose && self.proposer(h, r) == self.me {
            self.propose();
        }
        self.schedule(now, Timer::Propose(h, r), r);
    }

    /// Proposes the valid value, else the candidate, in the current round (if there is one).
    fn propose(&mut self) {
        let (h, r) = (self.height, self.round);
        let proposal = match &self.valid {
            Some((vr, v)) => Some((v.clone(), Some(*vr))),
            None => self.candidate.clone().map(|v| (v, None)),
        };
        if let Some((value, valid_round)) = proposal {
            let id = self.id(&value);
            self.proposals
                .insert((h, r), (value.clone(), valid_round, id));
            self.send_own(Message::Proposal {
                height: h,
                round: r,
                value,
                valid_round,
            });
        }
    }

    /// Records and (after persisting) sends this member's vote, and moves to `step`.
    fn vote(&mut self, step: Step, value_id: Option<ValueId>) {
        let (h, r) = (self.height, self.round);
        let message = match step {
            Step::Prevote => {
                self.prevotes
                    .entry((h, r))
                    .or_default()
                    .add(self.me, value_id);
                Message::Prevote {
                    height: h,
                    round: r,
                    id: value_id,
                }
            }
            _ => {
                self.precommits
                    .entry((h, r))
                    .or_default()
                    .add(self.me, value_id);
                Message::Precommit {
                    height: h,
                    round: r,
                    id: value_id,
                }
            }
        };
        self.step = step;
        self.send_own(message);
    }

    fn send_own(&mut self, message: Message) {
        self.ticket += 1;
        self.outputs.push_back(OrderingOutput::Persist {
            ticket: self.ticket,
            state: VotingState {
                height: self.height,
                round: self.round,
                locked: self.locked,
                votes: self.own_votes(),
                proposed: self.proposer(self.height, self.round) == self.me
                    && self.proposals.contains_key(&(self.height, self.round)),
                valid: self.valid.clone(),
            },
        });
        self.unsent.insert(self.ticket, message);
    }

    /// The votes this member cast at this height, in its latest rounds.
    fn own_votes(&self) -> Vec<CastVote> {
        let h = self.height;
        let from = self.round.saturating_sub(MAX_RECAST_ROUNDS - 1);
        let mut votes = Vec::new();
        for (precommit, table) in [(false, &self.prevotes), (true, &self.precommits)] {
            for ((_, round), cast) in table.range((h, from)..(h + 1, 0)) {
                if let Some(id) = cast.get(&self.me) {
                    votes.push(CastVote {
                        round: *round,
                        precommit,
                        id: *id,
                    });
                }
            }
        }
        votes
    }

    fn count(votes: Option<&Tally>, want: Option<Option<ValueId>>) -> usize {
        votes.map_or(0, |t| t.count(want))
    }

    /// Whether the proposal at `key` is valid: asked of the runtime once per value.
    fn proposal_valid(&mut self, key: (u64, u32), valid: &dyn Fn(u64, &[u8]) -> bool) -> bool {
        let Some((value, _, id)) = self.proposals.get(&key) else {
            return false;
        };
        if let Some(known) = self.validity.get(id) {
            return *known;
        }
        let ok = valid(key.0, value);
        self.validity.insert(*id, ok);
        ok
    }

    fn first_time(&mut self, rule: u8, h: u64, r: u32) -> bool {
        self.fired.insert((rule, h, r))
    }

    /// Applies every rule of Algorithm 1 until none fires.
    fn settle(&mut self, now: Instant, valid: &dyn Fn(u64, &[u8]) -> bool) {
        let quorum = self.quorum;
        loop {
            let (h, r) = (self.height, self.round);
            // Decide: a certified decision, or a proposal with a quorum of precommits, in any round.
            if let Some(value) = self.certified.remove(&h) {
                self.decide(now, value);
                continue;
            }
            let committed: Vec<u32> = self
                .proposals
                .range((h, 0)..(h + 1, 0))
                .filter(|((_, pr), (_, _, id))| {
                    Self::count(self.precommits.get(&(h, *pr)), Some(Some(*id))) >= quorum
                })
                .map(|((_, pr), _)| *pr)
                .collect();
            let decidable = committed
                .into_iter()
                .find(|pr| self.proposal_valid((h, *pr), valid));
            if let Some(pr) = decidable
                && let Some((value, _, _)) = self.proposals.get(&(h, pr))
            {
                let value = value.clone();
                self.decide(now, value);
                continue;
            }
            // f+1 messages of a later round: skip to it.
            let later = self
                .prevotes
                .range((h, r + 1)..(h + 1, 0))
                .chain(self.precommits.range((h, r + 1)..(h + 1, 0)))
                .fold(
                    BTreeMap::<u32, BTreeSet<usize>>::new(),
                    |mut acc, ((_, vr), votes)| {
                        acc.entry(*vr).or_default().extend(votes.voters());
                        acc
                    },
                )
                .into_iter()
                .find(|(_, senders)| senders.len() > self.f)
                .map(|(vr, _)| vr);
            if let Some(round) = later {
                self.start_round(now, round);
                continue;
            }
            let proposal = self.proposals.get(&(h, r)).map(|(_, vr, id)| (*vr, *id));
            if self.step == Step::Propose
                && let Some((vr, vid)) = proposal
            {
                match vr {
                    None => {
                        let ok = self.proposal_valid((h, r), valid)
                            && self.locked.is_none_or(|(_, lv)| lv == vid);
                        self.vote(Step::Prevote, ok.then_some(vid));
                        continue;
                    }
                    Some(vr)
                        if vr < r
                            && Self::count(self.prevotes.get(&(h, vr)), Some(Some(vid)))
                                >= quorum =>
                    {
                        let ok = self.proposal_valid((h, r), valid)
                            && self.locked.is_none_or(|(lr, lv)| lr <= vr || lv == vid);
                        self.vote(Step::Prevote, ok.then_some(vid));
                        continue;
                    }
                    _ => {}
                }
            }
            if self.step == Step::Prevote
                && Self::count(self.prevotes.get(&(h, r)), None) >= quorum
                && self.first_time(0, h, r)
            {
                self.schedule(now, Timer::Prevote(h, r), r);
            }
            if self.step >= Step::Prevote
                && let Some((_, vid)) = proposal
                && Self::count(self.prevotes.get(&(h, r)), Some(Some(vid))) >= quorum
                && self.proposal_valid((h, r), valid)
                && self.first_time(1, h, r)
            {
                let value = self
                    .proposals
                    .get(&(h, r))
                    .map(|(v, _, _)| v.clone())
                    .unwrap_or_default();
                self.valid = Some((r, value));
                if self.step == Step::Prevote {
                    self.locked = Some((r, vid));
                    self.vote(Step::Precommit, Some(vid));
                }
                continue;
            }
            if self.step == Step::Prevote
                && Self::count(self.prevotes.get(&(h, r)), Some(None)) >= quorum
            {
                self.vote(Step::Precommit, None);
                continue;
            }
            if Self::count(self.precommits.get(&(h, r)), None) >= quorum && self.first_time(2, h, r)
            {
                self.schedule(now, Timer::Precommit(h, r), r);
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests;
