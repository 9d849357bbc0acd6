//! The member thread: one Tendermint instance per height (the final log's size), fed with
//! checked messages, its outputs carried out (persist, then send; a decision becomes a final
//! checkpoint in the log); the mempool of entries waiting to be ordered; membership
//! endorsements. Build rounds are in [`super::builds`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration as StdDuration;

use pyrsia_core::consensus::BuildRound;
use pyrsia_core::consensus::limits::{
    Budget, FUTURE_MESSAGES_PER_MEMBER, VALUES_PER_MEMBER, batch_time_ok, height_plausible,
};
use pyrsia_core::consensus::mempool::Mempool;
use pyrsia_core::consensus::ordering::{Message, Ordering, OrderingOutput, ValueId};
use pyrsia_core::consensus::wire::{Batch, CheckpointHead, Envelope, MemberMessage, Vote};
use pyrsia_core::identity::{KeyId, PublicKey, Purpose, SecretKey, Signature};
use pyrsia_core::members::MemberSet;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::checkpoint::{Cosignature, SignedCheckpoint};
use pyrsia_core::tlog::entry::{Entry, MembershipChange, MembershipOp, SignatureList};

use super::{Input, MemberConfig, MemberLink};
use crate::clock::{MonotonicClock, unix_seconds};
use crate::log::{Applied, Log};
use crate::mirror::Mirror;

/// Membership changes one member may have open endorsements for.
const ENDORSEMENTS_PER_MEMBER: usize = 16;
/// How often the thread looks at the log when nothing else happens (catching up by
/// replication shows there).
const POLL: StdDuration = StdDuration::from_millis(200);

/// The member's state. See the module documentation.
pub(crate) struct Driver {
    pub(super) log: Arc<Log>,
    pub(super) mirror: Arc<Mirror>,
    pub(super) key: SecretKey,
    pub(super) config: MemberConfig,
    pub(super) inputs: SyncSender<Input>,
    pub(super) pending: Arc<Mutex<HashSet<(String, String)>>>,
    pub(super) members: MemberSet,
    pub(super) rounds: BTreeMap<u64, BuildRound>,
    pub(super) building: HashSet<u64>,
    pub(super) early_attestations: Vec<(KeyId, Vec<u8>, Signature)>,
    pub(super) own_attestations: HashMap<u64, (Vec<u8>, Signature)>,
    pub(super) clock: MonotonicClock,
    link: Arc<OnceLock<Arc<dyn MemberLink>>>,
    nonce: u64,
    origin: String,
    member_ids: Vec<KeyId>,
    /// The height being ordered: the time of the last final checkpoint (every batch's
    /// checkpoint is later than the one before, so heights never repeat).
    height: Option<u64>,
    /// The final log's size at that height.
    size: u64,
    ordering: Option<Ordering>,
    started: bool,
    future: Vec<(KeyId, usize, Message)>,
    /// Future messages held per sender.
    future_budget: Budget,
    cosignatures: HashMap<ValueId, (CheckpointHead, BTreeMap<KeyId, Cosignature>)>,
    pub(super) values: HashMap<ValueId, Vec<u8>>,
    /// `--test-byzantine split-votes`: the twin of each batch this member proposed.
    pub(super) twins: HashMap<ValueId, ValueId>,
    /// Values and cosigned heads each member brought into the tables above, this height.
    value_budget: Budget,
    /// Others' sealed prevotes for values, by height, round, value and sender: relayed as
    /// the proof of this member's valid value.
    prevotes: HashMap<(u64, u32, ValueId, KeyId), Vec<u8>>,
    prevote_budget: Budget,
    mempool: Mempool,
    endorsements: HashMap<(bool, u64, [u8; 32]), BTreeMap<KeyId, Signature>>,
    /// Endorsed changes each member opened.
    endorsement_budget: Budget,
}

/// Whether `value` may be decided at `height`: a batch extending the final log (which must be
/// at `height`), timed no later than the skew allows, every entry valid; an empty batch (a
/// heartbeat that only refreshes the checkpoint's time) only once half of `refresh` has passed
/// since the last final checkpoint.
fn batch_is_valid(log: &Log, height: u64, value: &[u8], now_secs: u64, refresh: u64) -> bool {
    let Ok(batch) = Batch::decode(value) else {
        return false;
    };
    height == log.consensus_height()
        && batch_time_ok(
            height,
            batch.head.timestamp,
            batch.entries.is_empty(),
            now_secs,
            refresh,
        )
        && log
            .check_batch(&batch)
            .map_err(|e| tracing::debug!(height, error = %e, "refusing a proposed batch"))
            .is_ok()
}

/// Whether `entry` should still be ordered: valid on top of the final log, and not a request
/// or tag observation the log already has (duplicates are ignored, PROTOCOL §2.1).
fn still_wanted(log: &Log, entry: &[u8]) -> bool {
    if log.batch_head(&[entry], 0).is_err() {
        return false;
    }
    match Entry::decode(entry) {
        Ok(Entry::BuildRequest(request)) => log
            .find_request(request.coordinates.name, request.coordinates.version)
            .is_none(),
        Ok(Entry::TagObservation(tag)) => {
            log.find_tag(tag.tag.name, tag.tag.version)
                .map(|(_, digest)| digest)
                != Some(tag.digest)
        }
        _ => true,
    }
}

pub(super) fn core_duration(d: StdDuration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Driver {
    pub(super) fn new(
        log: Arc<Log>,
        mirror: Arc<Mirror>,
        key: SecretKey,
        config: MemberConfig,
        link: Arc<OnceLock<Arc<dyn MemberLink>>>,
        inputs: SyncSender<Input>,
        pending: Arc<Mutex<HashSet<(String, String)>>>,
    ) -> Driver {
        let origin = log.origin();
        let members = log.members();
        let log_size = log.size();
        // Distinct from every nonce sent before a restart.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Driver {
            log,
            mirror,
            key,
            config,
            inputs,
            pending,
            members,
            rounds: BTreeMap::new(),
            building: HashSet::new(),
            early_attestations: Vec::new(),
            own_attestations: HashMap::new(),
            clock: MonotonicClock::start(),
            link,
            nonce,
            origin,
            member_ids: Vec::new(),
            height: None,
            size: log_size,
            ordering: None,
            started: false,
            future: Vec::new(),
            future_budget: Budget::default(),
            cosignatures: HashMap::new(),
            values: HashMap::new(),
            twins: HashMap::new(),
            value_budget: Budget::default(),
            prevotes: HashMap::new(),
            prevote_budget: Budget::default(),
            mempool: Mempool::default(),
            endorsements: HashMap::new(),
            endorsement_budget: Budget::default(),
        }
    }

    /// Runs until the node stops.
    pub(crate) fn run(&mut self, inputs: &Receiver<Input>) {
        let flooding = self.config.byzantine == Some(super::Byzantine::Flood);
        if flooding {
            tracing::warn!("TEST BYZANTINE MEMBER: flooding the other members at full rate");
        }
        loop {
            self.follow_log();
            if !self.started && self.ordering.is_some() && self.heartbeat_due() {
                self.refresh_candidate();
                self.start();
            }
            let mut wait = self.next_wait();
            if flooding {
                self.flood();
                wait = wait.min(StdDuration::from_millis(5));
            }
            match inputs.recv_timeout(wait) {
                Ok(input) => self.on_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.on_timeouts();
        }
    }

    pub(super) fn my_id(&self) -> KeyId {
        self.key.public().key_id()
    }

    /// The height being ordered, once known.
    pub(super) fn height(&self) -> Option<u64> {
        self.height
    }

    /// The log's name.
    pub(super) fn origin(&self) -> String {
        self.origin.clone()
    }

    /// A nonce never used before by this member (its messages must all differ).
    pub(super) fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    fn next_wait(&self) -> StdDuration {
        let now = self.clock.now();
        let deadlines = self
            .ordering
            .as_ref()
            .filter(|_| self.started)
            .and_then(Ordering::poll_timeout)
            .into_iter()
            .chain(self.rounds.values().filter_map(BuildRound::deadline));
        deadlines
            .map(|at| StdDuration::from_micros(at.saturating_since(now).as_micros()))
            .fold(POLL, StdDuration::min)
    }

    /// Starts the height the final log is at when it moved (a decision, or replication from
    /// a peer), and the build rounds of new requests.
    fn follow_log(&mut self) {
        let size = self.log.size();
        let height = self.log.consensus_height();
        let members = self.log.members();
        if self.height == Some(height) && members.epoch() == self.members.epoch() {
            return;
        }
        if size > self.size {
            // What the log took in is no longer waiting.
            let ordered: HashSet<Vec<u8>> = self
                .log
                .entries(self.size, size - self.size, usize::MAX)
                .into_iter()
                .collect();
            self.mempool.retain(|entry| !ordered.contains(entry));
        }
        self.size = size;
        if members.epoch() != self.members.epoch() {
            // Endorsements of an epoch that has passed can no longer apply.
            let epoch = members.epoch();
            self.endorsements.retain(|(_, e, _), _| *e > epoch);
            self.endorsement_budget.reset();
        }
        self.member_ids = members.keys().map(|k| k.key_id()).collect();
        self.members = members;
        self.height = Some(height);
        self.started = false;
        let me = self.my_id();
        let Some(index) = self.member_ids.iter().position(|id| *id == me) else {
            tracing::warn!("this node is not a member of the current epoch; it stops voting");
            self.ordering = None;
            return;
        };
        let n = self.member_ids.len();
        let timeout = core_duration(self.config.round_timeout);
        let ordering = match self.log.voting_state() {
            Some(state) if state.height == height => {
                tracing::info!(
                    height,
                    round = state.round,
                    "resuming the height this member voted in before it stopped"
                );
                Ordering::resume(index, n, &state, timeout, timeout)
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
        if size == 0 {
            // A new network: its first batch is the genesis entry.
            self.mempool.add(self.my_id(), self.log.genesis());
        }
        let log = self.log.clone();
        self.mempool.retain(|entry| still_wanted(&log, entry));
        // A submitted request is pending until committed or found unverifiable.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(name, version)| {
                log.find_commit(name, version).is_none()
                    && log
                        .find_dispute(name, version)
                        .is_none_or(|(_, unverifiable)| !unverifiable)
            });
        self.future_budget.reset();
        for (sender, from, message) in std::mem::take(&mut self.future) {
            self.on_vote(sender, from, message);
        }
        self.refresh_candidate();
        if !self.mempool.is_empty() || self.heartbeat_due() {
            self.start();
        }
        self.sync_rounds();
    }

    /// Whether the last final checkpoint is older than the refresh interval: then members
    /// order an empty batch, so that light clients' freshness checks keep passing on a quiet
    /// log.
    fn heartbeat_due(&self) -> bool {
        self.log.checkpoint().is_some_and(|c| {
            unix_seconds() >= c.checkpoint.timestamp + self.config.checkpoint_refresh.as_secs()
        })
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Message(bytes) => self.on_message(&bytes),
            Input::Request(job) => self.on_request(job),
            Input::Endorse(op, key) => self.endorse(op, key),
            Input::Built(index, result) => self.on_built(index, result),
        }
    }

    fn on_message(&mut self, bytes: &[u8]) {
        let message = Envelope::decode(bytes).and_then(|e| Ok((e.sender, e.open(&self.members)?)));
        let (sender, message) = match message {
            Ok(ok) => ok,
            Err(e) => {
                tracing::debug!(error = %e, "dropping a member message");
                return;
            }
        };
        match message {
            MemberMessage::Submit { entry } => {
                if still_wanted(&self.log, entry) && self.mempool.add(sender, entry.to_vec()) {
                    self.refresh_candidate();
                    self.start();
                }
            }
            MemberMessage::Attestation {
                statement,
                signature,
            } => self.on_attestation(sender, statement.to_vec(), signature),
            MemberMessage::Vote(vote) => {
                if let Vote::Prevote {
                    height,
                    round,
                    id: Some(id),
                } = vote
                {
                    self.keep_prevote(sender, (height, round, id), bytes);
                }
                self.on_vote_message(sender, &vote)
            }
            MemberMessage::Endorse {
                op,
                epoch,
                key,
                signature,
            } => self.on_endorsement(sender, op, epoch, key, signature),
        }
    }

    /// Keeps the sealed prevote of `sender` for `(height, round, id)`, within the sender's
    /// budget, so that it can be relayed as part of a lock's proof ([`OrderingOutput::RelayProof`]).
    fn keep_prevote(&mut self, sender: KeyId, at: (u64, u32, ValueId), bytes: &[u8]) {
        let key = (at.0, at.1, at.2, sender);
        if at.0 >= self.height.unwrap_or(0)
            && height_plausible(at.0, unix_seconds())
            && !self.prevotes.contains_key(&key)
            && self.prevote_budget.take(sender, VALUES_PER_MEMBER)
        {
            self.prevotes.insert(key, bytes.to_vec());
        }
    }

    /// Publishes again the sealed prevotes of `voters` for `id` at `height`, `round` (their
    /// senders' own envelopes, checked by every receiver as any member message).
    fn relay_proof(&mut self, height: u64, round: u32, id: ValueId, voters: &[usize]) {
        let Some(link) = self.link.get().cloned() else {
            return;
        };
        for voter in voters {
            let Some(sender) = self.member_ids.get(*voter) else {
                continue;
            };
            if let Some(sealed) = self.prevotes.get(&(height, round, id, *sender)) {
                link.broadcast(sealed.clone());
            }
        }
    }

    /// Submits an entry of this member: into the mempool and to every member.
    pub(super) fn submit(&mut self, entry: Vec<u8>) {
        if self.mempool.add(self.my_id(), entry.clone()) {
            self.broadcast(&MemberMessage::Submit { entry: &entry });
            self.refresh_candidate();
            self.start();
        }
    }

    /// Whether an equivalent entry waits in the mempool (`same` says which are).
    pub(super) fn waiting(&self, same: impl Fn(&Entry<'_>) -> bool) -> bool {
        self.mempool
            .any(|e| Entry::decode(e).is_ok_and(|e| same(&e)))
    }

    /// Seals and sends a message to the members; a node that is not a member sends nothing
    /// (members would refuse it).
    pub(super) fn broadcast(&mut self, message: &MemberMessage<'_>) {
        if self.ordering.is_none() {
            return;
        }
        self.nonce += 1;
        let sealed = Envelope::seal(&self.key, self.nonce, message);
        if let Some(link) = self.link.get() {
            link.broadcast(sealed);
        }
    }

    /// What this member proposes when it is the proposer: the mempool's entries that are
    /// valid together, in order, under a checkpoint timed now.
    fn refresh_candidate(&mut self) {
        let heartbeat = self.heartbeat_due();
        let Some(ordering) = &mut self.ordering else {
            return;
        };
        let candidates: Vec<&[u8]> = self.mempool.fair_order();
        let last = self.log.checkpoint().map_or(0, |c| c.checkpoint.timestamp);
        let timestamp = unix_seconds().max(last + 1);
        let Ok((chosen, head)) = self.log.choose_batch(&candidates, timestamp) else {
            return;
        };
        if chosen.is_empty() && !heartbeat {
            return;
        }
        let value = Batch {
            head,
            entries: chosen,
        }
        .encode();
        self.values.insert(head.id(), value.clone());
        ordering.set_candidate(value);
    }

    /// Starts the height's first round: when there is something to order, or another member
    /// started.
    fn start(&mut self) {
        if self.started {
            return;
        }
        let Some(ordering) = &mut self.ordering else {
            return;
        };
        self.started = true;
        let log = self.log.clone();
        let now_secs = unix_seconds();
        let refresh = self.config.checkpoint_refresh.as_secs();
        ordering.start(self.clock.now(), &|h, v| {
            batch_is_valid(&log, h, v, now_secs, refresh)
        });
        self.drain();
    }

    fn on_vote_message(&mut self, sender: KeyId, vote: &Vote<'_>) {
        let Some(from) = self.member_ids.iter().position(|id| *id == sender) else {
            return;
        };
        let now_secs = unix_seconds();
        let (height, _) = vote.to_message().height_round();
        if !height_plausible(height, now_secs) {
            tracing::debug!(member = %sender, height, "dropping a vote for an implausible height");
            return;
        }
        match vote.check_cosignature(&self.origin, &sender, &self.members) {
            Ok(Some((head, cosignature))) => {
                let known = self.cosignatures.contains_key(&head.id());
                if height_plausible(head.timestamp, now_secs)
                    && (known || self.value_budget.take(sender, VALUES_PER_MEMBER))
                {
                    self.cosignatures
                        .entry(head.id())
                        .or_insert_with(|| (head, BTreeMap::new()))
                        .1
                        .insert(sender, cosignature);
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(member = %sender, error = %e, "refusing a precommit");
                return;
            }
        }
        if let Vote::Proposal { value, .. } = vote {
            let id = Batch::id(value);
            let plausible =
                Batch::decode(value).is_ok_and(|b| height_plausible(b.head.timestamp, now_secs));
            if plausible
                && !self.values.contains_key(&id)
                && self.value_budget.take(sender, VALUES_PER_MEMBER)
            {
                self.values.insert(id, value.to_vec());
            }
        }
        self.on_vote(sender, from, vote.to_message());
    }

    fn on_vote(&mut self, sender: KeyId, from: usize, message: Message) {
        let Some(height) = self.height else {
            return;
        };
        let (at, _) = message.height_round();
        if at > height {
            if self.future_budget.take(sender, FUTURE_MESSAGES_PER_MEMBER) {
                self.future.push((sender, from, message));
            }
            return;
        }
        if at < height || self.ordering.is_none() {
            return;
        }
        self.start();
        let log = self.log.clone();
        let now_secs = unix_seconds();
        let refresh = self.config.checkpoint_refresh.as_secs();
        let now = self.clock.now();
        if let Some(ordering) = &mut self.ordering {
            ordering.handle_message(now, from, message, &|h, v| {
                batch_is_valid(&log, h, v, now_secs, refresh)
            });
        }
        self.drain();
    }

    fn on_timeouts(&mut self) {
        let now = self.clock.now();
        if self.started
            && let Some(ordering) = &mut self.ordering
            && ordering.poll_timeout().is_some_and(|at| at <= now)
        {
            let log = self.log.clone();
            let now_secs = unix_seconds();
            let refresh = self.config.checkpoint_refresh.as_secs();
            ordering.handle_timeout(now, &|h, v| batch_is_valid(&log, h, v, now_secs, refresh));
            self.drain();
        }
        self.on_round_timeouts(now);
    }

    /// Carries out the ordering's outputs: persist (synced) before the vote leaves, sign a
    /// precommit's checkpoint, and turn a decision into the log's final checkpoint.
    fn drain(&mut self) {
        let mut decided = None;
        while let Some(output) = self.ordering.as_mut().and_then(Ordering::poll_output) {
            match output {
                OrderingOutput::Persist { ticket, state } => {
                    match self.log.save_voting_state(&state) {
                        Ok(()) => {
                            if let Some(ordering) = &mut self.ordering {
                                ordering.handle_persisted(ticket);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot persist the voting state; not voting");
                        }
                    }
                }
                OrderingOutput::Broadcast(message) => {
                    let extra = self.split_extra(&message);
                    self.send_vote(message);
                    if let Some(extra) = extra {
                        self.send_vote(extra);
                    }
                }
                // A member behind catches up through log replication.
                OrderingOutput::SendDecision { .. } => {}
                OrderingOutput::RelayProof {
                    height,
                    round,
                    id,
                    voters,
                } => self.relay_proof(height, round, id, &voters),
                // The votes queued with it still leave: others may need this precommit.
                OrderingOutput::Decided { value, .. } => decided = Some(value),
            }
        }
        if let Some(value) = decided {
            self.on_decided(&value);
        }
    }

    fn send_vote(&mut self, message: Message) {
        let vote_value;
        let vote = match message {
            Message::Proposal {
                height,
                round,
                value,
                valid_round,
            } => {
                vote_value = value;
                Vote::Proposal {
                    height,
                    round,
                    value: &vote_value,
                    valid_round,
                }
            }
            Message::Prevote { height, round, id } => Vote::Prevote { height, round, id },
            Message::Precommit { height, round, id } => {
                let signed = id.and_then(|id| {
                    let value = self.values.get(&id)?;
                    let head = Batch::decode(value).ok()?.head;
                    let checkpoint = head.checkpoint(&self.origin)?;
                    let cosignature = checkpoint.sign(&self.key);
                    self.cosignatures
                        .entry(id)
                        .or_insert_with(|| (head, BTreeMap::new()))
                        .1
                        .insert(cosignature.key_id, cosignature);
                    Some((head, cosignature.signature))
                });
                if id.is_some() && signed.is_none() {
                    tracing::error!(height, round, "precommit for a value this member never saw");
                    return;
                }
                Vote::Precommit {
                    height,
                    round,
                    value: signed,
                }
            }
        };
        self.broadcast(&MemberMessage::Vote(vote));
    }

    /// A decided batch: its checkpoint with the precommits' cosignatures (this member's
    /// included) is final; the log checks the quorum and the entries again and stores both.
    fn on_decided(&mut self, value: &[u8]) {
        let Ok(batch) = Batch::decode(value) else {
            tracing::error!("decided a value that is not a batch");
            return;
        };
        let Some(checkpoint) = batch.head.checkpoint(&self.origin) else {
            return;
        };
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        let mine = checkpoint.sign(&self.key);
        let _ = note.add(mine);
        if let Some((_, cosignatures)) = self.cosignatures.get(&batch.head.id()) {
            for cosignature in cosignatures.values() {
                if cosignature.key_id != mine.key_id {
                    let _ = note.add(*cosignature);
                }
            }
        }
        let entries: Vec<Vec<u8>> = batch.entries.iter().map(|e| e.to_vec()).collect();
        match self.log.apply_checkpoint(&note, &entries) {
            Ok(Applied::Extended(size)) => tracing::info!(
                size,
                entries = entries.len(),
                cosignatures = note.cosignatures.len(),
                "final checkpoint: the members ordered a batch"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot store the decided checkpoint"),
        }
        self.height = None;
        self.follow_log();
    }

    /// This operator endorses a membership change: sign it for the next epoch and send it.
    fn endorse(&mut self, op: MembershipOp, key: PublicKey) {
        let epoch = self.members.epoch() + 1;
        let change = MembershipChange {
            epoch,
            key,
            signatures: SignatureList(&[]),
        };
        let signed = change.sign(&self.origin, op, &self.key);
        tracing::info!(key = %key.key_id(), ?op, epoch, "endorsing a membership change");
        self.broadcast(&MemberMessage::Endorse {
            op,
            epoch,
            key: key.to_bytes(),
            signature: signed.signature,
        });
        self.on_endorsement(signed.signer, op, epoch, key.to_bytes(), signed.signature);
    }

    fn on_endorsement(
        &mut self,
        sender: KeyId,
        op: MembershipOp,
        epoch: u64,
        key: [u8; 32],
        signature: Signature,
    ) {
        let (Some(signer), Ok(subject)) = (self.members.find(&sender), PublicKey::from_bytes(&key))
        else {
            return;
        };
        if epoch != self.members.epoch() + 1 {
            return;
        }
        let change = MembershipChange {
            epoch,
            key: subject,
            signatures: SignatureList(&[]),
        };
        let message = change.message(&self.origin, op);
        if signer
            .verify(Purpose::Membership, &message, &signature)
            .is_err()
        {
            tracing::warn!(member = %sender, "refusing an endorsement with a bad signature");
            return;
        }
        let add = op == MembershipOp::Add;
        if !self.endorsements.contains_key(&(add, epoch, key))
            && !self
                .endorsement_budget
                .take(sender, ENDORSEMENTS_PER_MEMBER)
        {
            return;
        }
        let signers = self.endorsements.entry((add, epoch, key)).or_default();
        signers.insert(sender, signature);
        if signers.len() < self.members.quorum() {
            return;
        }
        let signatures: Vec<u8> = signers
            .iter()
            .flat_map(|(signer, signature)| {
                pyrsia_core::tlog::entry::Signed {
                    signer: *signer,
                    signature: *signature,
                }
                .to_bytes()
            })
            .collect();
        let change = MembershipChange {
            signatures: SignatureList(&signatures),
            ..change
        };
        let entry = if add {
            Entry::AddMember(change)
        } else {
            Entry::RemoveMember(change)
        }
        .encode();
        self.submit(entry);
    }

    /// Now on the monotonic clock, for build rounds.
    pub(super) fn now(&self) -> Instant {
        self.clock.now()
    }
}
