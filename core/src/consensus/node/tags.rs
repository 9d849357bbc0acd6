//! Tag observations (docs/PROTOCOL.md §2.1): a tag enters the log only as f+1 members saw it.
//! The member whose mirror served an image by tag proposes a [`TagStatement`] and signs it
//! (a `TagVouch` whose signer is the statement's observer is a query); every member that gets
//! the query resolves the tag at its own upstream ([`NodeOutput::ResolveTag`]) and, when it
//! gets the same digest, signs the statement unchanged and sends its vouch. Once f+1 members
//! vouched and the digest is committed, the observer submits the `TagObservation`.
//!
//! Each member checks at most [`TAG_CHECKS_PER_MEMBER`] queries of one observer at a time,
//! so a member asking about junk tags costs the others a bounded number of upstream lookups.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::consensus::wire::MemberMessage;
use crate::digest::Digest;
use crate::identity::{KeyId, Signature};
use crate::time::{Duration, Instant};
use crate::tlog::entry::{
    Coordinates, ECOSYSTEM_DOCKER, Entry, SignatureList, Signed, TagObservation, TagStatement,
};
use crate::tlog::state::LogState;

use super::{MAX_PENDING_TAGS, MemberNode, NodeOutput, Now, Rejection, pool};

/// Queries of one observer this member resolves at once; more wait for a later ask.
pub const TAG_CHECKS_PER_MEMBER: usize = 8;
/// How long an observer waits for f+1 vouches before it asks again with a fresh statement,
/// and how long a member keeps a query it is resolving.
pub const TAG_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times an observer asks about one tag before it gives the observation up (the
/// tag moved upstream, or the others cannot reach it).
const TAG_QUERY_ATTEMPTS: u8 = 3;

/// A tag this member's mirror resolved, waiting to be observed in the log.
#[derive(Clone, Debug)]
pub(super) struct PendingTag {
    digest: Digest,
    observed_at: u64,
    /// The statement asked about last, the vouches for it, and when it was asked.
    query: Option<Query>,
    attempts: u8,
}

#[derive(Clone, Debug)]
struct Query {
    statement: Vec<u8>,
    epoch: u64,
    vouches: BTreeMap<KeyId, Signature>,
    asked_at: Instant,
    /// The entry submitted once f+1 vouched and the digest was committed.
    submitted: Option<Vec<u8>>,
}

impl Query {
    /// Still worth waiting for: f+1 vouched (it waits for its digest's commit, however long
    /// the build takes), or the others still have time to answer.
    fn live(&self, now: Instant, threshold: usize, epoch: u64) -> bool {
        self.epoch == epoch
            && (self.vouches.len() >= threshold
                || now.saturating_since(self.asked_at) < TAG_QUERY_TIMEOUT)
    }
}

/// Another member's query this member is resolving.
#[derive(Clone, Debug)]
pub(super) struct TagCheck {
    observer: KeyId,
    digest: Digest,
    asked_at: Instant,
}

/// Decodes a statement a member sent: canonical postcard, nothing after it.
fn decode_statement(bytes: &[u8]) -> Option<TagStatement<'_>> {
    let (statement, rest) = postcard::take_from_bytes::<TagStatement<'_>>(bytes).ok()?;
    (rest.is_empty() && statement.to_bytes() == bytes).then_some(statement)
}

impl MemberNode {
    /// When the earliest query still short of f+1 vouches expires (and is asked again).
    pub(super) fn tag_deadline(&self) -> Option<Instant> {
        let threshold = self.members.commit_threshold();
        self.pending_tags
            .values()
            .filter_map(|p| p.query.as_ref())
            .filter(|q| q.vouches.len() < threshold)
            .filter_map(|q| q.asked_at.checked_add(TAG_QUERY_TIMEOUT))
            .min()
    }

    /// The mirror resolved `name:tag` to `digest` now: remember it (when the log does not say
    /// so already) and ask the members.
    pub(super) fn saw_tag(
        &mut self,
        log: &LogState,
        now: Now,
        name: &str,
        tag: &str,
        digest: Digest,
    ) {
        let moved = log
            .index()
            .tag(name, tag)
            .is_none_or(|(_, latest)| latest != digest);
        let key = (String::from(name), String::from(tag));
        let same = self
            .pending_tags
            .get(&key)
            .is_some_and(|p| p.digest == digest);
        if !moved || same || self.pending_tags.len() >= MAX_PENDING_TAGS {
            return;
        }
        self.pending_tags.insert(
            key,
            PendingTag {
                digest,
                observed_at: now.wall_secs,
                query: None,
                attempts: 0,
            },
        );
        self.submit_committed_tags(log, now, None);
    }

    /// Moves every pending tag on: forgets those the log shows (or that were asked about too
    /// often), asks again where a query expired, and submits the observations that have f+1
    /// vouches and a committed digest.
    ///
    /// `just_committed` names a commit this member has just submitted (name and version): its
    /// tags go with it, to be ordered in the same batch after it.
    pub(super) fn submit_committed_tags(
        &mut self,
        log: &LogState,
        now: Now,
        just_committed: Option<(&str, &str)>,
    ) {
        let index = log.index();
        let (threshold, epoch) = (self.members.commit_threshold(), self.members.epoch());
        self.pending_tags.retain(|(name, tag), pending| {
            let shown = index
                .tag(name, tag)
                .is_some_and(|(_, d)| d == pending.digest);
            let unverifiable = index
                .dispute(name, &pending.digest.to_string())
                .is_some_and(|(_, settled)| settled);
            let given_up = pending.attempts >= TAG_QUERY_ATTEMPTS
                && pending
                    .query
                    .as_ref()
                    .is_none_or(|q| !q.live(now.mono, threshold, epoch));
            !shown && !unverifiable && !given_up
        });
        let keys: Vec<(String, String)> = self.pending_tags.keys().cloned().collect();
        for (name, tag) in keys {
            self.move_tag_on(log, now, &name, &tag, just_committed);
        }
    }

    /// One pending tag: ask (again) if no query is live, else submit it once it can be ordered.
    fn move_tag_on(
        &mut self,
        log: &LogState,
        now: Now,
        name: &str,
        tag: &str,
        just_committed: Option<(&str, &str)>,
    ) {
        let key = (String::from(name), String::from(tag));
        let Some(pending) = self.pending_tags.get(&key) else {
            return;
        };
        if log
            .index()
            .tag(name, tag)
            .is_some_and(|(_, d)| d == pending.digest)
        {
            self.pending_tags.remove(&key);
            return;
        }
        let threshold = self.members.commit_threshold();
        let live = pending
            .query
            .as_ref()
            .is_some_and(|q| q.live(now.mono, threshold, self.members.epoch()));
        if !live {
            self.ask(log, now, name, tag);
            return;
        }
        let (digest, query) = (pending.digest, pending.query.clone());
        let Some(query) = query else {
            return;
        };
        if query
            .submitted
            .as_ref()
            .is_some_and(|entry| self.mempool.any(|e| e == entry.as_slice()))
        {
            return;
        }
        // Not submitted yet, or dropped from the mempool (its commit was not ordered yet, or a
        // later observation of the tag was): submitted again below once it can be ordered.
        if query.vouches.len() < threshold {
            return;
        }
        let version = digest.to_string();
        let committed = log.index().commit(name, &version).is_some()
            || just_committed == Some((name, version.as_str()));
        if !committed {
            return;
        }
        let Some(statement) = decode_statement(&query.statement) else {
            return;
        };
        let signatures = Signed::list_bytes(&query.vouches);
        let entry = Entry::TagObservation(TagObservation {
            statement,
            attestations: SignatureList(&signatures),
        })
        .encode();
        if just_committed.is_none() && !pool::still_wanted(log, &entry) {
            // Ordered after a later observation of the tag: ask again with a fresh statement.
            self.ask(log, now, name, tag);
            return;
        }
        if let Some(query) = self
            .pending_tags
            .get_mut(&key)
            .and_then(|p| p.query.as_mut())
        {
            query.submitted = Some(entry.clone());
        }
        self.submit(log, now, entry);
    }

    /// Proposes a fresh statement of a pending tag, signs it and sends it as a query.
    fn ask(&mut self, log: &LogState, now: Now, name: &str, tag: &str) {
        let key = (String::from(name), String::from(tag));
        let epoch = self.members.epoch();
        let me = self.id();
        let Some(pending) = self.pending_tags.get_mut(&key) else {
            return;
        };
        if pending.attempts >= TAG_QUERY_ATTEMPTS || self.ordering.is_none() {
            return;
        }
        pending.attempts += 1;
        let statement = TagStatement {
            tag: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name,
                version: tag,
            },
            digest: pending.digest,
            epoch,
            checkpoint_size: log.final_size(),
            observer: me,
            observed_at: pending.observed_at,
        };
        let signed = statement.sign(&self.key);
        let bytes = statement.to_bytes();
        let mut vouches = BTreeMap::new();
        vouches.insert(me, signed.signature);
        pending.query = Some(Query {
            statement: bytes.clone(),
            epoch,
            vouches,
            asked_at: now.mono,
            submitted: None,
        });
        self.broadcast(&MemberMessage::TagVouch {
            statement: &bytes,
            signature: signed.signature,
        });
        // With f = 0 this member's word is the f+1.
        self.move_tag_on(log, now, name, tag, None);
    }

    /// A member's signature over a tag statement: a query when it is the observer's, a vouch
    /// for this member's query when this member is the observer; anything else is ignored.
    pub(super) fn on_tag_vouch(
        &mut self,
        log: &LogState,
        now: Now,
        sender: KeyId,
        bytes: &[u8],
        signature: Signature,
    ) -> Result<(), Rejection> {
        let statement = decode_statement(bytes).ok_or(Rejection::BadTagVouch)?;
        let key = self.members.find(&sender).ok_or(Rejection::BadTagVouch)?;
        if statement.epoch != self.members.epoch() || !statement.verify(&key, &signature) {
            return Err(Rejection::BadTagVouch);
        }
        let me = self.id();
        if statement.observer == me {
            let key = (
                String::from(statement.tag.name),
                String::from(statement.tag.version),
            );
            let Some(query) = self
                .pending_tags
                .get_mut(&key)
                .and_then(|p| p.query.as_mut())
                .filter(|q| q.statement == bytes)
            else {
                return Ok(());
            };
            query.vouches.insert(sender, signature);
            let (name, tag) = key;
            self.move_tag_on(log, now, &name, &tag, None);
            return Ok(());
        }
        if statement.observer != sender {
            return Ok(());
        }
        if self.config.misbehaviour == Some(super::Misbehaviour::ForgeTags) {
            // The tag forger vouches for anything without looking.
            self.misbehaved += 1;
            let signed = statement.sign(&self.key);
            self.broadcast(&MemberMessage::TagVouch {
                statement: bytes,
                signature: signed.signature,
            });
            return Ok(());
        }
        // A query: resolve the tag here, within the observer's share.
        self.tag_checks
            .retain(|_, c| now.mono.saturating_since(c.asked_at) < TAG_QUERY_TIMEOUT);
        if self.tag_checks.contains_key(bytes) {
            return Ok(());
        }
        let open = self
            .tag_checks
            .values()
            .filter(|c| c.observer == sender)
            .count();
        if statement.tag.ecosystem != ECOSYSTEM_DOCKER {
            return Err(Rejection::BadTagVouch);
        }
        if statement.checkpoint_size > log.final_size() {
            // Made on a log this member does not hold yet: vouching would let the statement
            // pass as fresh later (its observer asks again). Nobody's fault.
            return Ok(());
        }
        if open >= TAG_CHECKS_PER_MEMBER {
            return Err(Rejection::OverBudget);
        }
        self.tag_checks.insert(
            bytes.to_vec(),
            TagCheck {
                observer: sender,
                digest: statement.digest,
                asked_at: now.mono,
            },
        );
        self.outputs.push_back(NodeOutput::ResolveTag {
            name: statement.tag.name.to_string(),
            tag: statement.tag.version.to_string(),
            ticket: bytes.to_vec(),
        });
        Ok(())
    }

    /// The caller resolved the tag of a [`NodeOutput::ResolveTag`] (`ticket` is the one it
    /// carried) at this node's upstream: `resolved` is the digest, or `None` when the upstream
    /// did not answer or does not have it. The same digest as the query's gets this member's
    /// vouch.
    pub fn tag_resolved(
        &mut self,
        log: &LogState,
        now: Now,
        ticket: &[u8],
        resolved: Option<Digest>,
    ) {
        self.follow_log(log, now);
        let Some(check) = self.tag_checks.remove(ticket) else {
            return;
        };
        if resolved != Some(check.digest) {
            return;
        }
        let Some(statement) = decode_statement(ticket) else {
            return;
        };
        if statement.epoch != self.members.epoch() {
            return;
        }
        let signed = statement.sign(&self.key);
        self.broadcast(&MemberMessage::TagVouch {
            statement: ticket,
            signature: signed.signature,
        });
    }
}
