//! Tag observations (docs/PROTOCOL.md §2.1): a tag enters the log only as f+1 members saw it.
//! The member whose mirror served an image by tag (or a package's tags: npm dist-tags, Maven
//! metadata's `release` and `latest`) proposes a [`TagStatement`] and signs it (a `TagVouch`
//! whose signer is the statement's observer is a query); every member that gets the query
//! resolves the tag at its own upstream ([`NodeOutput::ResolveTag`]) and, when it names the
//! same tag target ([`crate::tlog::coordinates::tag_target`]), signs the statement unchanged and sends its vouch. Once
//! f+1 members vouched and the target is committed, the observer submits the
//! `TagObservation`.
//!
//! An image tag's target is its manifest digest, known as the mirror resolves it, so the
//! query goes out while the image is built. A package tag names a version; its target is the
//! digest of that version's commit's outputs list, so the observer asks only once the commit
//! is final (every member asked then holds it), and forgets a tag whose version is not
//! committed within [`TAG_COMMIT_WAIT`].
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
use crate::tlog::index::LogIndex;
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
/// How long a package tag waits for the version it names to be committed before it is
/// forgotten (the next time the mirror serves the tag, it is seen again).
pub const TAG_COMMIT_WAIT: Duration = Duration::from_secs(600);

/// A tag this member's mirror resolved, waiting to be observed in the log.
#[derive(Clone, Debug)]
pub(super) struct PendingTag {
    ecosystem: String,
    /// The name in the ecosystem (the key is its subject).
    name: String,
    /// What the tag names: an image's manifest digest, a package's version.
    version: String,
    /// The tag target, once known (a package's once its version's commit is final).
    digest: Option<Digest>,
    seen_at: Instant,
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

/// The tag target of `version` in `index` when every member the observer asks holds it: an
/// image's manifest digest at once, a package version's only once its commit is final.
fn final_target(
    index: &LogIndex,
    final_size: u64,
    ecosystem: &str,
    subject: &str,
    version: &str,
) -> Option<Digest> {
    if ecosystem != ECOSYSTEM_DOCKER
        && index
            .commit(subject, version)
            .is_none_or(|at| at >= final_size)
    {
        return None;
    }
    index.tag_target(ecosystem, subject, version)
}

/// Decodes a statement a member sent: canonical postcard, nothing after it.
fn decode_statement(bytes: &[u8]) -> Option<TagStatement<'_>> {
    let (statement, rest) = postcard::take_from_bytes::<TagStatement<'_>>(bytes).ok()?;
    (rest.is_empty() && statement.to_bytes() == bytes).then_some(statement)
}

impl MemberNode {
    /// When the earliest query still short of f+1 vouches expires (and is asked again), or a
    /// package tag's wait for its version's commit ends.
    pub(super) fn tag_deadline(&self) -> Option<Instant> {
        let threshold = self.members.commit_threshold();
        let queries = self
            .pending_tags
            .values()
            .filter_map(|p| p.query.as_ref())
            .filter(|q| q.vouches.len() < threshold)
            .filter_map(|q| q.asked_at.checked_add(TAG_QUERY_TIMEOUT));
        let waits = self
            .pending_tags
            .values()
            .filter(|p| p.digest.is_none())
            .filter_map(|p| p.seen_at.checked_add(TAG_COMMIT_WAIT));
        queries.chain(waits).min()
    }

    /// The mirror resolved `tag` (coordinates with the tag in `version`) to `version` now
    /// (an image's manifest digest, a package's version): remember it (when the log does
    /// not say so already) and ask the members.
    pub(super) fn saw_tag(
        &mut self,
        log: &LogState,
        now: Now,
        tag: Coordinates<'_>,
        version: &str,
    ) {
        let subject = tag.subject();
        let index = log.index();
        let moved = index.tag(&subject, tag.version).is_none_or(|(_, latest)| {
            index.tag_target(tag.ecosystem, &subject, version) != Some(latest)
        });
        let key = (subject.into_owned(), String::from(tag.version));
        let same = self
            .pending_tags
            .get(&key)
            .is_some_and(|p| p.version == version);
        if !moved || same {
            return;
        }
        if self.pending_tags.len() >= MAX_PENDING_TAGS {
            // Full: the package tag that has waited longest for its version's commit makes
            // room (a packument names tags of versions nobody installs; the tags of what is
            // being installed now are the ones worth keeping).
            let oldest_waiting = self
                .pending_tags
                .iter()
                .filter(|(_, p)| p.digest.is_none())
                .min_by_key(|(_, p)| p.seen_at)
                .map(|(key, _)| key.clone());
            let Some(oldest) = oldest_waiting else {
                return;
            };
            self.pending_tags.remove(&oldest);
        }
        let digest = final_target(index, log.final_size(), tag.ecosystem, &key.0, version);
        self.pending_tags.insert(
            key,
            PendingTag {
                ecosystem: String::from(tag.ecosystem),
                name: String::from(tag.name),
                version: String::from(version),
                digest,
                seen_at: now.mono,
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
    /// `just_committed` names a commit this member has just submitted (subject and version):
    /// its image tags go with it, to be ordered in the same batch after it.
    pub(super) fn submit_committed_tags(
        &mut self,
        log: &LogState,
        now: Now,
        just_committed: Option<(&str, &str)>,
    ) {
        let index = log.index();
        let (threshold, epoch) = (self.members.commit_threshold(), self.members.epoch());
        self.pending_tags.retain(|(subject, tag), pending| {
            if pending.digest.is_none() {
                pending.digest = final_target(
                    index,
                    log.final_size(),
                    &pending.ecosystem,
                    subject,
                    &pending.version,
                );
            }
            let shown = pending
                .digest
                .is_some_and(|digest| index.tag(subject, tag).is_some_and(|(_, d)| d == digest));
            let unverifiable = index
                .dispute(subject, &pending.version)
                .is_some_and(|(_, settled)| settled);
            let given_up = pending.attempts >= TAG_QUERY_ATTEMPTS
                && pending
                    .query
                    .as_ref()
                    .is_none_or(|q| !q.live(now.mono, threshold, epoch));
            let never_committed = pending.digest.is_none()
                && now.mono.saturating_since(pending.seen_at) >= TAG_COMMIT_WAIT;
            !shown && !unverifiable && !given_up && !never_committed
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
        let Some(digest) = pending.digest else {
            // A package version not committed yet: asked about once it is.
            return;
        };
        if log.index().tag(name, tag).is_some_and(|(_, d)| d == digest) {
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
        let (version, query) = (pending.version.clone(), pending.query.clone());
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
        let committed = log.index().tagged(name, &digest).is_some()
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
        let Some(digest) = pending.digest else {
            return;
        };
        if pending.attempts >= TAG_QUERY_ATTEMPTS || self.ordering.is_none() {
            return;
        }
        pending.attempts += 1;
        let statement = TagStatement {
            tag: Coordinates {
                ecosystem: &pending.ecosystem,
                name: &pending.name,
                version: tag,
            },
            digest,
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
                statement.tag.subject().into_owned(),
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
        if statement.tag.check_tag().is_err() {
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
            ecosystem: statement.tag.ecosystem.to_string(),
            name: statement.tag.name.to_string(),
            tag: statement.tag.version.to_string(),
            ticket: bytes.to_vec(),
        });
        Ok(())
    }

    /// The caller resolved the tag of a [`NodeOutput::ResolveTag`] (`ticket` is the one it
    /// carried) at this node's upstream: `resolved` is what the tag names there (an image's
    /// manifest digest, a package's version), or `None` when the upstream did not answer or
    /// does not have it. When its tag target in this member's log is the query's, this member
    /// vouches.
    pub fn tag_resolved(
        &mut self,
        log: &LogState,
        now: Now,
        ticket: &[u8],
        resolved: Option<&str>,
    ) {
        self.follow_log(log, now);
        let Some(check) = self.tag_checks.remove(ticket) else {
            return;
        };
        let Some(statement) = decode_statement(ticket) else {
            return;
        };
        let tag = statement.tag;
        let target = resolved.and_then(|version| {
            Coordinates { version, ..tag }.check().ok()?;
            log.index()
                .tag_target(tag.ecosystem, &tag.subject(), version)
        });
        if target != Some(check.digest) || statement.epoch != self.members.epoch() {
            return;
        }
        let signed = statement.sign(&self.key);
        self.broadcast(&MemberMessage::TagVouch {
            statement: ticket,
            signature: signed.signature,
        });
    }
}
