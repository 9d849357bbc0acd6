//! Entries waiting to be ordered: what this member submits (requests for what its mirror
//! served, the tags they were pulled by, commits and verdicts of build rounds, membership
//! changes a quorum endorsed), what it takes from others into its mempool (within each
//! submitter's quota), and the batch it proposes from them.

use alloc::collections::BTreeMap;
use alloc::string::ToString;
use alloc::vec::Vec;

use crate::consensus::wire::{Batch, MemberMessage};
use crate::digest::Digest;
use crate::identity::{KeyId, PublicKey, Purpose, Signature};
use crate::tlog::coordinates::fetch_build_type;
use crate::tlog::entry::{
    BuildRequest, Coordinates, ECOSYSTEM_DOCKER, Entry, MembershipChange, MembershipOp,
    SignatureList, Signed,
};
use crate::tlog::rebuilt::rebuilt_ecosystem;
use crate::tlog::state::LogState;

use super::{CANDIDATE_EVERY, ENDORSEMENTS_PER_MEMBER, MemberNode, Now, Rejection};

/// An artifact this member's mirror served and asks the members to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRequest<'a> {
    /// The canonical name (e.g. `docker.io/library/alpine`).
    pub name: &'a str,
    /// The manifest's digest (the immutable version).
    pub manifest: Digest,
    /// The tag it was pulled by, if any.
    pub tag: Option<&'a str>,
    /// The upstream the builders fetch it from.
    pub source: &'a str,
}

/// A package version this member's mirror served a file of, to be verified by the members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRequest<'a> {
    /// Its coordinates (`npm`/`pypi`, name, version), valid in the ecosystem.
    pub coordinates: Coordinates<'a>,
    /// The upstream registry or index the builders fetch it from.
    pub source: &'a str,
}

/// Whether `entry` should still be ordered: valid on top of the final log, and not a request
/// or tag observation the log already has (duplicates are ignored, PROTOCOL §2.1).
pub(super) fn still_wanted(log: &LogState, entry: &[u8]) -> bool {
    if log.batch_head(&[entry], 0).is_err() {
        return false;
    }
    match Entry::decode(entry) {
        Ok(Entry::BuildRequest(request)) => log
            .index()
            .request(&request.coordinates.subject(), request.coordinates.version)
            .is_none(),
        Ok(Entry::TagObservation(observation)) => {
            let tag = &observation.statement.tag;
            log.index()
                .tag(&tag.subject(), tag.version)
                .map(|(_, digest)| digest)
                != Some(observation.statement.digest)
        }
        _ => true,
    }
}

impl MemberNode {
    /// The mirror served an image: submit a `BuildRequest` (and the tag it was pulled by)
    /// unless it is committed or requested already.
    pub fn request(&mut self, log: &LogState, now: Now, artifact: &ArtifactRequest<'_>) {
        self.follow_log(log, now);
        let name = artifact.name;
        let version = artifact.manifest.to_string();
        let me = self.id();
        let index = log.index();
        if let Some(tag) = artifact.tag {
            // Vouched for by f+1 members now, ordered once the digest is committed (members
            // refuse a tag that points at anything f+1 builders did not attest).
            let tag = Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name,
                version: tag,
            };
            self.saw_tag(log, now, tag, &version);
        }
        if index.commit(name, &version).is_some()
            || (artifact.tag.is_none() && index.committing(&artifact.manifest).is_some())
        {
            return;
        }
        let coordinates = Coordinates {
            ecosystem: ECOSYSTEM_DOCKER,
            name,
            version: &version,
        };
        self.submit_request(log, now, coordinates, artifact.source, me);
    }

    /// The mirror served a package's metadata (an npm packument, a Maven
    /// `maven-metadata.xml`) in which tag `tag.version` names `version`: observe the tag in the
    /// log once the version is committed and f+1 members resolve it alike. A tag or version
    /// outside the ecosystem's grammar is ignored.
    pub fn saw_package_tag(
        &mut self,
        log: &LogState,
        now: Now,
        tag: Coordinates<'_>,
        version: &str,
    ) {
        self.follow_log(log, now);
        let named = Coordinates { version, ..tag };
        if tag.ecosystem == ECOSYSTEM_DOCKER || tag.check_tag().is_err() || named.check().is_err() {
            return;
        }
        self.saw_tag(log, now, tag, version);
    }

    /// The mirror served a file of a package version: submit a `BuildRequest` of the
    /// version (build type [`fetch_build_type`] of its ecosystem) unless it is committed or
    /// requested already. Coordinates outside their ecosystem's grammar are ignored. Rebuild
    /// coordinates (`pypi-rebuild`) are requested once the version's fetch is committed.
    pub fn request_package(&mut self, log: &LogState, now: Now, package: &PackageRequest<'_>) {
        self.follow_log(log, now);
        let coordinates = package.coordinates;
        if coordinates.check().is_err() || fetch_build_type(coordinates.ecosystem).is_none() {
            return;
        }
        if rebuilt_ecosystem(coordinates.ecosystem).is_some() {
            self.want_rebuild(log, now, coordinates, package.source);
            return;
        }
        if log
            .index()
            .commit(&coordinates.subject(), coordinates.version)
            .is_some()
        {
            return;
        }
        let me = self.id();
        self.submit_request(log, now, coordinates, package.source, me);
    }

    /// Remembers the request as this member's pending one and submits it unless the log
    /// has it already.
    pub(super) fn submit_request(
        &mut self,
        log: &LogState,
        now: Now,
        coordinates: Coordinates<'_>,
        source: &str,
        me: KeyId,
    ) {
        let subject = coordinates.subject();
        self.pending.insert((
            subject.clone().into_owned(),
            coordinates.version.to_string(),
        ));
        if log.index().request(&subject, coordinates.version).is_some() {
            return;
        }
        let Some(build_type) = fetch_build_type(coordinates.ecosystem) else {
            return;
        };
        let entry = Entry::BuildRequest(BuildRequest {
            coordinates,
            build_type,
            source,
            requester: me,
        })
        .encode();
        self.submit(log, now, entry);
    }

    /// Submits an entry of this member: into the mempool and to every member.
    pub(super) fn submit(&mut self, log: &LogState, now: Now, entry: Vec<u8>) {
        if self.mempool.add(self.id(), entry.clone()) {
            self.broadcast(&MemberMessage::Submit { entry: &entry });
            self.mempool_grew(log, now);
        }
    }

    /// An entry joined the mempool: the candidate batch is chosen again (at most every
    /// [`CANDIDATE_EVERY`]: each choice checks every waiting entry, signatures included, so
    /// a burst of submissions costs one choice, not one per entry), and the height starts.
    pub(super) fn mempool_grew(&mut self, log: &LogState, now: Now) {
        let due = !self.has_candidate
            || self
                .candidate_at
                .is_none_or(|at| now.mono.saturating_since(at) >= CANDIDATE_EVERY);
        if due {
            self.refresh_candidate(log, now);
        } else {
            self.candidate_stale = true;
        }
        self.start(log, now);
    }

    /// What this member proposes when it is the proposer: the mempool's entries that are
    /// valid together, in the mempool's fair order, under a checkpoint timed now (after the
    /// last final one).
    pub(super) fn refresh_candidate(&mut self, log: &LogState, now: Now) {
        self.candidate_at = Some(now.mono);
        self.candidate_stale = false;
        let heartbeat = self.heartbeat_due(log, now);
        let Some(ordering) = &mut self.ordering else {
            return;
        };
        let candidates: Vec<&[u8]> = self.mempool.fair_order();
        let last = log.consensus_height();
        let timestamp = now.wall_secs.max(last + 1);
        let (chosen, head) = log.choose_batch(&candidates, timestamp);
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
        self.has_candidate = true;
    }

    /// This operator endorses a membership change: sign it for the next epoch and send it.
    pub fn endorse(&mut self, log: &LogState, now: Now, op: MembershipOp, key: PublicKey) {
        self.follow_log(log, now);
        let epoch = self.members.epoch() + 1;
        let change = MembershipChange {
            epoch,
            key,
            signatures: SignatureList(&[]),
        };
        let signed = change.sign(&self.origin, op, &self.key);
        self.broadcast(&MemberMessage::Endorse {
            op,
            epoch,
            key: key.to_bytes(),
            signature: signed.signature,
        });
        let _ = self.on_endorsement(
            log,
            now,
            signed.signer,
            op,
            epoch,
            key.to_bytes(),
            signed.signature,
        );
    }

    /// A member's signature of a membership change for the next epoch: once a quorum of the
    /// epoch signed the same change, it is submitted.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_endorsement(
        &mut self,
        log: &LogState,
        now: Now,
        sender: KeyId,
        op: MembershipOp,
        epoch: u64,
        key: [u8; 32],
        signature: Signature,
    ) -> Result<(), Rejection> {
        let (Some(signer), Ok(subject)) = (self.members.find(&sender), PublicKey::from_bytes(&key))
        else {
            return Err(Rejection::BadEndorsement);
        };
        if epoch != self.members.epoch() + 1 {
            return Err(Rejection::BadEndorsement);
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
            return Err(Rejection::BadEndorsement);
        }
        let add = op == MembershipOp::Add;
        if !self.endorsements.contains_key(&(add, epoch, key))
            && !self
                .endorsement_budget
                .take(sender, ENDORSEMENTS_PER_MEMBER)
        {
            return Err(Rejection::OverBudget);
        }
        let signers: &mut BTreeMap<KeyId, Signature> =
            self.endorsements.entry((add, epoch, key)).or_default();
        signers.insert(sender, signature);
        if signers.len() < self.members.quorum() {
            return Ok(());
        }
        let signatures = Signed::list_bytes(signers.iter());
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
        self.submit(log, now, entry);
        Ok(())
    }
}
