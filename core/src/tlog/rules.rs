//! The log's entry rules (docs/PROTOCOL.md §2), pure: what every entry must satisfy before
//! it is replicated ([`check_entry`]) and, on top of that, before members order it in a batch
//! ([`BatchRules::check`]). The log's storage is the runtime's; it answers the few questions
//! the rules ask through [`LogView`] and gets typed rejections back.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};

use crate::consensus::evidence::{EvidenceError, RequestBinding, check_dispute};
use crate::consensus::limits::request_allowed;
use crate::digest::Digest;
use crate::identity::KeyId;
use crate::members::{MemberSet, MembershipError};
use crate::tlog::Hash;
use crate::tlog::coordinates::fetch_build_type;
use crate::tlog::coordinates::{CoordinatesError, tag_target};
use crate::tlog::entry::{Coordinates, Entry, EntryError, MembershipOp};
use crate::tlog::rebuilt::{Claim, rebuilt_ecosystem};

/// What the rules need to know of the log an entry would extend.
pub trait LogView {
    /// The log's name (checkpoints and membership signatures are bound to it).
    fn origin(&self) -> &str;
    /// Entry 0's bytes.
    fn genesis(&self) -> &[u8];
    /// The index of the first `BuildRequest` of these coordinates, if any.
    fn request(&self, name: &str, version: &str) -> Option<u64>;
    /// The index of the `Commit` of these coordinates, if any.
    fn commit(&self, name: &str, version: &str) -> Option<u64>;
    /// The latest `Dispute` or `Unverifiable` of these coordinates, and whether it is final.
    fn dispute(&self, name: &str, version: &str) -> Option<(u64, bool)>;
    /// The size of the last final checkpoint.
    fn final_size(&self) -> u64;
    /// The root of the tree's first `size` entries (the entries before the one checked).
    fn root(&self, size: u64) -> Option<Hash>;
    /// How many open requests `requester` has.
    fn open_requests_from(&self, requester: &KeyId) -> usize;
    /// The index of the latest `TagObservation` of `name:tag`, if any.
    fn tag(&self, name: &str, tag: &str) -> Option<u64>;
    /// The index of the `Commit` under `name` whose tag target
    /// ([`crate::tlog::coordinates::tag_target`]) is `digest`, if any.
    fn tagged(&self, name: &str, digest: &Digest) -> Option<u64>;
}

/// Why an entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryRejection {
    /// It does not decode.
    Malformed(EntryError),
    /// A genesis anywhere but at index 0, or not this network's.
    UnexpectedGenesis,
    /// Entry 0 is not this network's genesis.
    NotGenesis,
    /// A commit with fewer than f+1 valid attestations of the current epoch.
    TooFewAttestations {
        /// Valid, distinct attesters of the epoch.
        attesters: usize,
        /// f+1.
        needed: usize,
    },
    /// Coordinates committed already (in the log or earlier in the batch).
    DuplicateCommit,
    /// A commit not bound to its request's index and selection checkpoint.
    NotBoundToRequest,
    /// A dispute of coordinates nobody requested at that index.
    NoSuchRequest,
    /// A dispute of a request committed or unverifiable already.
    Settled,
    /// A dispute's evidence does not hold.
    Evidence(EvidenceError),
    /// A membership change that does not apply.
    Membership(MembershipError),
    /// A build request by a key that is not a member.
    RequesterNotAMember,
    /// A requester over its share of a batch or of open requests.
    TooManyRequests,
    /// A tag observation of a digest that is not the tag target of a commit of the log (with
    /// the batch) under that name.
    UncommittedTag,
    /// A tag observation without f+1 valid signatures of the epoch's members, its observer's
    /// among them.
    TooFewTagAttesters {
        /// Valid, distinct signers of the epoch.
        attesters: usize,
        /// f+1.
        needed: usize,
    },
    /// A tag observation made before the tag's latest one was ordered (a replay, or a late
    /// view), after the log the ordering members hold, or a second one of its tag in a batch.
    StaleTag,
    /// A tag seen by one member alone (the format before attested tags): never ordered.
    UnattestedTag,
    /// Coordinates outside their ecosystem's grammar, or of an unknown ecosystem.
    BadCoordinates(CoordinatesError),
    /// A fetch commit of rebuild coordinates, a rebuild verdict of a package's, a rebuild
    /// statement out of its bounds or inconsistent with its verdict, or a request whose build
    /// type is not its ecosystem's.
    WrongKind,
    /// A rebuild request of a version whose fetch is not committed (nothing to compare with).
    NothingToRebuild,
}

impl core::fmt::Display for EntryRejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EntryRejection::Malformed(e) => write!(f, "{e}"),
            EntryRejection::UnexpectedGenesis => f.write_str("unexpected genesis"),
            EntryRejection::NotGenesis => f.write_str("entry 0 is not this network's genesis"),
            EntryRejection::TooFewAttestations { attesters, needed } => write!(
                f,
                "commit has {attesters} valid attestations of the epoch, {needed} needed"
            ),
            EntryRejection::DuplicateCommit => {
                f.write_str("duplicate commit of committed coordinates")
            }
            EntryRejection::NotBoundToRequest => {
                f.write_str("commit is not bound to its request and selection checkpoint")
            }
            EntryRejection::NoSuchRequest => f.write_str("dispute of no such request"),
            EntryRejection::Settled => f.write_str("dispute of a settled request"),
            EntryRejection::Evidence(e) => write!(f, "{e}"),
            EntryRejection::Membership(e) => write!(f, "{e}"),
            EntryRejection::RequesterNotAMember => {
                f.write_str("requested by a key that is not a member")
            }
            EntryRejection::TooManyRequests => {
                f.write_str("the requester has too many requests open or in this batch")
            }
            EntryRejection::UncommittedTag => {
                f.write_str("tag observation of a digest not committed under its name")
            }
            EntryRejection::TooFewTagAttesters { attesters, needed } => write!(
                f,
                "tag observation has {attesters} valid signatures of the epoch with its observer's, {needed} needed"
            ),
            EntryRejection::StaleTag => f.write_str(
                "tag observation older than the tag's latest, newer than the log, or repeated in a batch",
            ),
            EntryRejection::UnattestedTag => {
                f.write_str("tag observation of one member alone (no longer ordered)")
            }
            EntryRejection::BadCoordinates(e) => write!(f, "coordinates: {e}"),
            EntryRejection::WrongKind => f.write_str(
                "entry kind, build type or statement does not fit its coordinates' ecosystem",
            ),
            EntryRejection::NothingToRebuild => {
                f.write_str("rebuild request of a version whose fetch is not committed")
            }
        }
    }
}

impl core::error::Error for EntryRejection {}

/// The replication rules of the entry at `index`: it decodes; its coordinates, if any, are
/// valid in their ecosystem ([`crate::tlog::entry::Coordinates::check`]); entry 0 is this log's genesis
/// and no other entry is a genesis; a commit carries f+1 valid attestations of the epoch and
/// commits coordinates not committed yet; a dispute or unverifiable verdict carries the
/// evidence [`check_dispute`] asks for, about an open request; a tag observation carries f+1
/// valid signatures of the epoch's members, its observer's among them; a membership change
/// carries a quorum of the previous epoch and moves `members` to the next epoch. `members`
/// changes only when the entry is valid.
pub fn check_entry(
    view: &impl LogView,
    members: &mut MemberSet,
    index: u64,
    bytes: &[u8],
) -> Result<(), EntryRejection> {
    let entry = Entry::decode(bytes).map_err(EntryRejection::Malformed)?;
    if let Some(coordinates) = entry.coordinates() {
        let tag = matches!(entry, Entry::TagObservation(_) | Entry::UnattestedTag(_));
        if tag {
            coordinates.check_tag()
        } else {
            coordinates.check()
        }
        .map_err(EntryRejection::BadCoordinates)?;
    }
    match entry {
        Entry::Genesis(_) if index == 0 && bytes == view.genesis() => Ok(()),
        Entry::Genesis(_) => Err(EntryRejection::UnexpectedGenesis),
        _ if index == 0 => Err(EntryRejection::NotGenesis),
        Entry::Commit(commit)
            if rebuilt_ecosystem(commit.statement.coordinates.ecosystem).is_some() =>
        {
            Err(EntryRejection::WrongKind)
        }
        Entry::Rebuilt(rebuilt) => {
            let statement = &rebuilt.statement;
            let coordinates = &statement.coordinates;
            if rebuilt_ecosystem(coordinates.ecosystem).is_none()
                || fetch_build_type(coordinates.ecosystem) != Some(statement.build_type)
                || !statement.is_well_formed()
            {
                return Err(EntryRejection::WrongKind);
            }
            let attesters = members.rebuild_attesters(&rebuilt);
            let needed = members.commit_threshold();
            if statement.epoch != members.epoch() || attesters < needed {
                return Err(EntryRejection::TooFewAttestations { attesters, needed });
            }
            if view
                .commit(&coordinates.subject(), coordinates.version)
                .is_some()
            {
                return Err(EntryRejection::DuplicateCommit);
            }
            Ok(())
        }
        Entry::Commit(commit) => {
            let attesters = members.attesters(&commit);
            let needed = members.commit_threshold();
            if commit.statement.epoch != members.epoch() || attesters < needed {
                return Err(EntryRejection::TooFewAttestations { attesters, needed });
            }
            let coordinates = &commit.statement.coordinates;
            if view
                .commit(&coordinates.subject(), coordinates.version)
                .is_some()
            {
                return Err(EntryRejection::DuplicateCommit);
            }
            Ok(())
        }
        Entry::Dispute(dispute) | Entry::Unverifiable(dispute) => {
            let unverifiable = matches!(entry, Entry::Unverifiable(_));
            let subject = dispute.coordinates.subject();
            let (name, version) = (subject.as_ref(), dispute.coordinates.version);
            if view.request(name, version) != Some(dispute.request_index) {
                return Err(EntryRejection::NoSuchRequest);
            }
            if view.commit(name, version).is_some()
                || view
                    .dispute(name, version)
                    .is_some_and(|(_, settled)| settled)
            {
                return Err(EntryRejection::Settled);
            }
            let selection_size = dispute.request_index + 1;
            let selection_root = view
                .root(selection_size)
                .ok_or(EntryRejection::NoSuchRequest)?;
            let request = RequestBinding {
                request_index: dispute.request_index,
                coordinates: dispute.coordinates,
                selection_size,
                selection_root,
            };
            check_dispute(members, &request, dispute.evidence, unverifiable)
                .map_err(EntryRejection::Evidence)
        }
        Entry::TagObservation(tag) => {
            let (attesters, observer_signed) = members.tag_attesters(&tag);
            let needed = members.commit_threshold();
            if tag.statement.epoch != members.epoch() || attesters < needed || !observer_signed {
                return Err(EntryRejection::TooFewTagAttesters { attesters, needed });
            }
            Ok(())
        }
        Entry::AddMember(change) | Entry::RemoveMember(change) => {
            let op = if matches!(entry, Entry::AddMember(_)) {
                MembershipOp::Add
            } else {
                MembershipOp::Remove
            };
            members
                .apply_in_place(view.origin(), op, &change)
                .map_err(EntryRejection::Membership)
        }
        _ => Ok(()),
    }
}

/// The rules members apply to a batch before ordering it, on top of [`check_entry`]: a commit
/// is bound to its request's log index and selection checkpoint (the tree that ends with the
/// request) and is the batch's only commit of its coordinates; a build request comes from a
/// member within its share ([`request_allowed`]); a tag observation points the tag at the
/// tag target of a commit under that name (in the log or earlier in the batch: an image's
/// manifest digest, a package version's outputs list digest), so a tag can only ever
/// resolve to what f+1 builders attested, and it is fresh: its observer had seen the
/// tag's latest observation (`checkpoint_size` beyond it, within the final log), and it is
/// the batch's only observation of its tag. A tag seen by one member alone is never ordered.
/// One per batch, fed its entries in order.
#[derive(Default)]
pub struct BatchRules {
    committed: BTreeSet<(String, String)>,
    /// The tag targets of the batch's commits.
    targets: BTreeSet<(String, Digest)>,
    requested: BTreeMap<KeyId, usize>,
    tags: BTreeSet<(String, String)>,
}

impl BatchRules {
    /// Checks the batch's next entry, at log `index`; remembers it only when it is valid.
    pub fn check(
        &mut self,
        view: &impl LogView,
        members: &mut MemberSet,
        index: u64,
        bytes: &[u8],
    ) -> Result<(), EntryRejection> {
        // Only a membership change moves `members` (when valid), and no rule below applies
        // to one.
        check_entry(view, members, index, bytes)?;
        match Entry::decode(bytes).map_err(EntryRejection::Malformed)? {
            Entry::Rebuilt(rebuilt) => {
                let statement = &rebuilt.statement;
                let claim = Claim::of_rebuild(statement);
                let key = self.bound_to_request(view, &claim)?;
                self.committed.insert(key);
            }
            Entry::Commit(commit) => {
                let statement = &commit.statement;
                let subject = statement.coordinates.subject();
                let name = subject.as_ref();
                let version = statement.coordinates.version;
                let key = self.bound_to_request(view, &Claim::of_fetch(statement))?;
                let ecosystem = statement.coordinates.ecosystem;
                if let Some(target) = tag_target(ecosystem, version, Some(statement.outputs.0)) {
                    self.targets.insert((name.to_string(), target));
                }
                self.committed.insert(key);
            }
            Entry::BuildRequest(request) => {
                let requester = request.requester;
                if members.find(&requester).is_none() {
                    return Err(EntryRejection::RequesterNotAMember);
                }
                let coordinates = request.coordinates;
                if fetch_build_type(coordinates.ecosystem) != Some(request.build_type) {
                    return Err(EntryRejection::WrongKind);
                }
                if let Some(ecosystem) = rebuilt_ecosystem(coordinates.ecosystem) {
                    let fetched = Coordinates {
                        ecosystem,
                        ..coordinates
                    };
                    let key = (
                        fetched.subject().into_owned(),
                        coordinates.version.to_string(),
                    );
                    if view.commit(&key.0, &key.1).is_none() && !self.committed.contains(&key) {
                        return Err(EntryRejection::NothingToRebuild);
                    }
                }
                let in_batch = self.requested.get(&requester).copied().unwrap_or(0);
                if !request_allowed(in_batch, view.open_requests_from(&requester)) {
                    return Err(EntryRejection::TooManyRequests);
                }
                *self.requested.entry(requester).or_default() += 1;
            }
            Entry::TagObservation(observation) => {
                let statement = &observation.statement;
                let subject = statement.tag.subject();
                let (name, tag) = (subject.as_ref(), statement.tag.version);
                let committed = view.tagged(name, &statement.digest).is_some()
                    || self.targets.contains(&(name.to_string(), statement.digest));
                if !committed {
                    return Err(EntryRejection::UncommittedTag);
                }
                let after_latest = view
                    .tag(name, tag)
                    .is_none_or(|latest| statement.checkpoint_size > latest);
                let key = (name.to_string(), tag.to_string());
                if !after_latest
                    || statement.checkpoint_size > view.final_size()
                    || self.tags.contains(&key)
                {
                    return Err(EntryRejection::StaleTag);
                }
                self.tags.insert(key);
            }
            Entry::UnattestedTag(_) => return Err(EntryRejection::UnattestedTag),
            _ => {}
        }
        Ok(())
    }

    /// A commit's or rebuild verdict's binding: the batch's only one of its coordinates,
    /// bound to the coordinates' request index and to the final tree that ends with it.
    /// Returns the coordinates' index key.
    fn bound_to_request(
        &self,
        view: &impl LogView,
        claim: &Claim<'_>,
    ) -> Result<(String, String), EntryRejection> {
        let subject = claim.coordinates.subject();
        let key = (subject.to_string(), claim.coordinates.version.to_string());
        if self.committed.contains(&key) {
            return Err(EntryRejection::DuplicateCommit);
        }
        let selection = (claim.request_index < view.final_size())
            .then(|| view.root(claim.request_index + 1))
            .flatten();
        if view.request(&key.0, &key.1) != Some(claim.request_index)
            || selection != Some(claim.selection_root)
            || claim.selection_size != claim.request_index + 1
        {
            return Err(EntryRejection::NotBoundToRequest);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::identity::SecretKey;
    use crate::tlog::entry::{
        BuildRequest, Coordinates, DOCKER_FETCH_V1, Dispute, ECOSYSTEM_DOCKER, Genesis, KeyList,
        SignatureList, TagObservation, TagStatement, UnattestedTag,
    };

    /// A log of a genesis and one open request (index 1) by member 1; with `committed`, its
    /// coordinates are committed and `docker.io/library/a:latest` was observed at index 3.
    struct Fake {
        genesis: Vec<u8>,
        open: usize,
        committed: bool,
    }

    impl LogView for Fake {
        fn origin(&self) -> &str {
            "pyrsia.test/rules"
        }
        fn genesis(&self) -> &[u8] {
            &self.genesis
        }
        fn request(&self, name: &str, _: &str) -> Option<u64> {
            (name == "docker.io/library/a").then_some(1)
        }
        fn commit(&self, name: &str, version: &str) -> Option<u64> {
            (self.committed && name == "docker.io/library/a" && version == digest_a().to_string())
                .then_some(2)
        }
        fn dispute(&self, _: &str, _: &str) -> Option<(u64, bool)> {
            None
        }
        fn final_size(&self) -> u64 {
            if self.committed { 8 } else { 2 }
        }
        fn root(&self, _: u64) -> Option<Hash> {
            Some([7; 32])
        }
        fn open_requests_from(&self, _: &KeyId) -> usize {
            self.open
        }
        fn tag(&self, name: &str, tag: &str) -> Option<u64> {
            (self.committed && name == "docker.io/library/a" && tag == "latest").then_some(3)
        }
        fn tagged(&self, name: &str, digest: &Digest) -> Option<u64> {
            self.commit(name, &digest.to_string())
        }
    }

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_seed([seed; 32])
    }

    fn setup(open: usize) -> (Fake, MemberSet) {
        let keys: Vec<u8> = (1..=4).flat_map(|s| key(s).public().to_bytes()).collect();
        let genesis = Genesis {
            origin: "pyrsia.test/rules",
            faults: 1,
            members: KeyList(&keys),
            created: 0,
        };
        let members = MemberSet::from_genesis(&genesis).unwrap();
        let fake = Fake {
            genesis: Entry::Genesis(genesis).encode(),
            open,
            committed: false,
        };
        (fake, members)
    }

    fn request(name: &str, requester: KeyId) -> Vec<u8> {
        Entry::BuildRequest(BuildRequest {
            coordinates: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name,
                version: "sha256:aa",
            },
            build_type: DOCKER_FETCH_V1,
            source: "https://registry.invalid",
            requester,
        })
        .encode()
    }

    fn digest_a() -> crate::digest::Digest {
        crate::digest::Digest::sha256(b"a")
    }

    /// An observation of `docker.io/library/a:latest` at `digest`, made at log size
    /// `checkpoint_size` by member `signers[0]`, signed by `signers`.
    fn observation(digest: crate::digest::Digest, checkpoint_size: u64, signers: &[u8]) -> Vec<u8> {
        let statement = TagStatement {
            tag: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name: "docker.io/library/a",
                version: "latest",
            },
            digest,
            epoch: 0,
            checkpoint_size,
            observer: key(signers[0]).public().key_id(),
            observed_at: 0,
        };
        let signatures: Vec<u8> = signers
            .iter()
            .flat_map(|s| statement.sign(&key(*s)).to_bytes())
            .collect();
        Entry::TagObservation(TagObservation {
            statement,
            attestations: SignatureList(&signatures),
        })
        .encode()
    }

    #[test]
    fn entries_with_coordinates_outside_their_ecosystem_are_refused() {
        let (log, mut members) = setup(0);
        let requester = key(1).public().key_id();
        assert_eq!(
            check_entry(
                &log,
                &mut members,
                8,
                &request("docker.io/library/a", requester)
            ),
            Ok(())
        );
        // A Docker name that would read as a package's index key, and an unknown ecosystem.
        for (ecosystem, name, version, why) in [
            (
                "docker",
                "npm:left-pad",
                "sha256:aa",
                CoordinatesError::BadName,
            ),
            (
                "cargo",
                "serde",
                "1.0.0",
                CoordinatesError::UnknownEcosystem,
            ),
            ("maven", "g:a", "1-SNAPSHOT", CoordinatesError::BadVersion),
            ("npm", "left-pad", "latest", CoordinatesError::BadVersion),
            ("pypi", "Demo_Pkg", "1.0", CoordinatesError::BadName),
        ] {
            let entry = Entry::BuildRequest(BuildRequest {
                coordinates: Coordinates {
                    ecosystem,
                    name,
                    version,
                },
                build_type: DOCKER_FETCH_V1,
                source: "https://registry.invalid",
                requester,
            })
            .encode();
            assert_eq!(
                check_entry(&log, &mut members, 8, &entry),
                Err(EntryRejection::BadCoordinates(why)),
                "{ecosystem} {name} {version}"
            );
        }
    }

    #[test]
    fn tags_need_f_plus_one_vouches_a_committed_digest_and_a_fresh_view() {
        let (mut log, mut members) = setup(0);
        log.committed = true;
        let good = observation(digest_a(), 5, &[1, 2]);
        assert_eq!(
            BatchRules::default().check(&log, &mut members, 8, &good),
            Ok(())
        );
        // One member's word, a signer repeated, a stranger's vouch, or the observer missing.
        for signers in [&[1][..], &[1, 1], &[1, 9]] {
            assert_eq!(
                check_entry(&log, &mut members, 8, &observation(digest_a(), 5, signers)),
                Err(EntryRejection::TooFewTagAttesters {
                    attesters: 1,
                    needed: 2
                })
            );
        }
        let without_observer = observation(digest_a(), 5, &[9, 2, 3]);
        assert!(matches!(
            check_entry(&log, &mut members, 8, &without_observer),
            Err(EntryRejection::TooFewTagAttesters { .. })
        ));
        // Not committed under the name.
        let elsewhere = observation(crate::digest::Digest::sha256(b"b"), 5, &[1, 2]);
        assert_eq!(
            BatchRules::default().check(&log, &mut members, 8, &elsewhere),
            Err(EntryRejection::UncommittedTag)
        );
        // Made before the latest observation (index 3) or after the final log (size 8).
        for size in [3, 9] {
            assert_eq!(
                BatchRules::default().check(
                    &log,
                    &mut members,
                    8,
                    &observation(digest_a(), size, &[1, 2])
                ),
                Err(EntryRejection::StaleTag)
            );
        }
        // One observation of a tag per batch.
        let mut rules = BatchRules::default();
        assert_eq!(rules.check(&log, &mut members, 8, &good), Ok(()));
        let again = observation(digest_a(), 6, &[2, 3]);
        assert_eq!(
            rules.check(&log, &mut members, 9, &again),
            Err(EntryRejection::StaleTag)
        );
        // The old single-member form replicates but is never ordered.
        let unattested = Entry::UnattestedTag(UnattestedTag {
            tag: Coordinates {
                ecosystem: ECOSYSTEM_DOCKER,
                name: "docker.io/library/a",
                version: "latest",
            },
            digest: digest_a(),
            checkpoint_size: 5,
            observer: key(1).public().key_id(),
            observed_at: 0,
        })
        .encode();
        assert_eq!(check_entry(&log, &mut members, 8, &unattested), Ok(()));
        assert_eq!(
            BatchRules::default().check(&log, &mut members, 8, &unattested),
            Err(EntryRejection::UnattestedTag)
        );
    }

    #[test]
    fn requests_come_from_members_within_their_share() {
        let (log, mut members) = setup(0);
        let member = key(1).public().key_id();
        let mut rules = BatchRules::default();
        let stranger = request("docker.io/x/y", key(9).public().key_id());
        assert_eq!(
            rules.check(&log, &mut members, 2, &stranger),
            Err(EntryRejection::RequesterNotAMember)
        );
        let allowed = crate::consensus::limits::REQUESTS_PER_MEMBER_PER_BATCH;
        for i in 0..allowed {
            let entry = request(&alloc::format!("docker.io/x/y{i}"), member);
            assert_eq!(
                rules.check(&log, &mut members, 2 + i as u64, &entry),
                Ok(())
            );
        }
        let one_more = request("docker.io/x/last", member);
        assert_eq!(
            rules.check(&log, &mut members, 99, &one_more),
            Err(EntryRejection::TooManyRequests)
        );
        // A requester with its open requests at the limit gets no more in any batch.
        let (full, mut members) = setup(crate::consensus::limits::OPEN_REQUESTS_PER_MEMBER);
        assert_eq!(
            BatchRules::default().check(&full, &mut members, 2, &request("docker.io/x/z", member)),
            Err(EntryRejection::TooManyRequests)
        );
    }

    #[test]
    fn genesis_only_at_zero_and_forged_verdicts_are_refused() {
        let (log, mut members) = setup(0);
        let genesis = log.genesis.clone();
        assert_eq!(check_entry(&log, &mut members, 0, &genesis), Ok(()));
        assert_eq!(
            check_entry(&log, &mut members, 3, &genesis),
            Err(EntryRejection::UnexpectedGenesis)
        );
        let verdict = |name| {
            Entry::Unverifiable(Dispute {
                request_index: 1,
                coordinates: Coordinates {
                    ecosystem: ECOSYSTEM_DOCKER,
                    name,
                    version: "sha256:aa",
                },
                evidence: &[0],
            })
            .encode()
        };
        // No evidence at all: an empty list of statement groups.
        assert_eq!(
            check_entry(&log, &mut members, 2, &verdict("docker.io/library/a")),
            Err(EntryRejection::Evidence(EvidenceError::TooFewAttesters))
        );
        assert_eq!(
            check_entry(&log, &mut members, 2, &verdict("docker.io/library/b")),
            Err(EntryRejection::NoSuchRequest)
        );
        assert_eq!(
            check_entry(&log, &mut members, 2, b"\xff"),
            Err(EntryRejection::Malformed(EntryError::UnknownFormat))
        );
    }
}
