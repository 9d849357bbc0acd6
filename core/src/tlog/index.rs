//! Lookups over a log's entries, kept up to date entry by entry ([`LogIndex::add`]): which
//! entry committed an artifact, the latest observation of a tag, every committed digest, the
//! requests still open (with their bytes, which build rounds need) and who opened them.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::digest::Digest;
use crate::identity::KeyId;
use crate::tlog::Hash;
use crate::tlog::coordinates::tag_target;
use crate::tlog::entry::Entry;
use crate::tlog::rebuilt::{Claim, RebuildVerdict};

/// Lookups by name, version and digest. Keys are the coordinates' subject (an image's name,
/// a package's `{ecosystem}:{name}`: [`crate::tlog::coordinates::subject`]) and `version`;
/// every method's `name` is such a subject.
#[derive(Clone, Default, Debug)]
pub struct LogIndex {
    commits: BTreeMap<(String, String), (u64, Digest)>,
    tags: BTreeMap<(String, String), (u64, Digest)>,
    /// Each commit by its tag target ([`tag_target`]): its index and version.
    targets: BTreeMap<(String, Digest), (u64, String)>,
    committed: BTreeMap<Digest, u64>,
    piece_roots: BTreeMap<Digest, Hash>,
    by_name: BTreeMap<String, Vec<u64>>,
    memberships: BTreeMap<u64, u64>,
    requests: BTreeMap<(String, String), u64>,
    /// Open requests by log index: who asked, and the entry's bytes.
    open_requests: BTreeMap<u64, (KeyId, Vec<u8>)>,
    /// How many open requests each requester has.
    open_by_requester: BTreeMap<KeyId, usize>,
    disputes: BTreeMap<(String, String), (u64, bool)>,
    /// Each committed rebuild verdict by its rebuild subject and version.
    verdicts: BTreeMap<(String, String), (u64, RebuildVerdict)>,
}

impl LogIndex {
    /// Records entry `index` (`bytes`, decoded as `entry`). Call it for every entry, in order.
    pub fn add(&mut self, index: u64, bytes: &[u8], entry: &Entry<'_>) {
        let name = match entry {
            Entry::BuildRequest(r) => {
                let subject = r.coordinates.subject();
                let coordinates = key(&subject, r.coordinates.version);
                let settled = self.commits.contains_key(&coordinates);
                if !self.requests.contains_key(&coordinates) && !settled {
                    self.requests.insert(coordinates, index);
                    self.open_requests
                        .insert(index, (r.requester, bytes.to_vec()));
                    *self.open_by_requester.entry(r.requester).or_default() += 1;
                }
                subject
            }
            Entry::Commit(c) => {
                let coordinates = &c.statement.coordinates;
                let subject = coordinates.subject();
                self.settle(&subject, coordinates.version);
                self.commits
                    .entry(key(&subject, coordinates.version))
                    .or_insert((index, Digest::sha256(c.statement.outputs.0)));
                let outputs = Some(c.statement.outputs.0);
                if let Some(target) =
                    tag_target(coordinates.ecosystem, coordinates.version, outputs)
                {
                    self.targets
                        .entry((subject.to_string(), target))
                        .or_insert((index, coordinates.version.to_string()));
                }
                for output in c.statement.outputs.iter() {
                    self.committed.entry(output).or_insert(index);
                }
                for (digest, root) in c.statement.piece_roots.iter() {
                    self.piece_roots.entry(digest).or_insert(root);
                }
                subject
            }
            Entry::Rebuilt(r) => {
                let coordinates = &r.statement.coordinates;
                let subject = coordinates.subject();
                self.settle(&subject, coordinates.version);
                let outcome = Claim::of_rebuild(&r.statement).outcome;
                self.verdicts
                    .entry(key(&subject, coordinates.version))
                    .or_insert((index, r.statement.verdict));
                self.commits
                    .entry(key(&subject, coordinates.version))
                    .or_insert((index, outcome));
                subject
            }
            Entry::TagObservation(t) => {
                let tag = &t.statement.tag;
                let subject = tag.subject();
                self.tags
                    .insert(key(&subject, tag.version), (index, t.statement.digest));
                subject
            }
            // One member's word: history, not what a tag resolves to.
            Entry::UnattestedTag(t) => t.tag.subject(),
            Entry::Dispute(d) => {
                let subject = d.coordinates.subject();
                self.disputes
                    .entry(key(&subject, d.coordinates.version))
                    .or_insert((index, false));
                subject
            }
            Entry::Unverifiable(d) => {
                let subject = d.coordinates.subject();
                self.settle(&subject, d.coordinates.version);
                self.disputes
                    .insert(key(&subject, d.coordinates.version), (index, true));
                subject
            }
            Entry::AddMember(c) | Entry::RemoveMember(c) => {
                self.memberships.entry(c.epoch).or_insert(index);
                return;
            }
            _ => return,
        };
        self.by_name
            .entry(name.into_owned())
            .or_default()
            .push(index);
    }

    fn settle(&mut self, name: &str, version: &str) {
        if let Some(index) = self.requests.get(&key(name, version))
            && let Some((requester, _)) = self.open_requests.remove(index)
            && let Some(open) = self.open_by_requester.get_mut(&requester)
        {
            *open = open.saturating_sub(1);
        }
    }

    /// How many open requests `requester` has.
    pub fn open_from(&self, requester: &KeyId) -> usize {
        self.open_by_requester.get(requester).copied().unwrap_or(0)
    }

    /// The first `BuildRequest` of `name` at `version`.
    pub fn request(&self, name: &str, version: &str) -> Option<u64> {
        self.requests.get(&key(name, version)).copied()
    }

    /// The `Dispute` (or, when final, `Unverifiable`) of `name` at `version`: its index and
    /// whether it is final.
    pub fn dispute(&self, name: &str, version: &str) -> Option<(u64, bool)> {
        self.disputes.get(&key(name, version)).copied()
    }

    /// The requests with neither a `Commit` nor an `Unverifiable` yet, oldest first: index
    /// and entry bytes.
    pub fn open_requests(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.open_requests
            .iter()
            .map(|(index, (_, bytes))| (*index, bytes.as_slice()))
    }

    /// The open request at `index`: its entry bytes.
    pub fn open_request(&self, index: u64) -> Option<&[u8]> {
        self.open_requests
            .get(&index)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// The `Commit` of `name` at immutable `version`.
    pub fn commit(&self, name: &str, version: &str) -> Option<u64> {
        self.commits
            .get(&key(name, version))
            .map(|(index, _)| *index)
    }

    /// The `Commit` (or, for rebuild coordinates, `Rebuilt`) of `name` at `version` and what
    /// it committed, [`Claim::outcome`]: a fetch's outputs list SHA-256, a rebuild's statement
    /// digest (to tell whether an attestation contradicts it).
    pub fn commit_outputs(&self, name: &str, version: &str) -> Option<(u64, Digest)> {
        self.commits.get(&key(name, version)).copied()
    }

    /// The latest `TagObservation` of `name:tag` and the digest it recorded.
    pub fn tag(&self, name: &str, tag: &str) -> Option<(u64, Digest)> {
        self.tags.get(&key(name, tag)).copied()
    }

    /// The `Commit` under `name` whose tag target is `digest` ([`tag_target`]: an image's
    /// manifest digest, a package version's outputs list digest): its index and version.
    pub fn tagged(&self, name: &str, digest: &Digest) -> Option<(u64, &str)> {
        self.targets
            .get(&(name.to_string(), *digest))
            .map(|(index, version)| (*index, version.as_str()))
    }

    /// The digest a tag observation records for `version` of `name` (in `ecosystem`): an
    /// image's manifest digest, whether committed or not; a package version's outputs list
    /// digest once it is committed ([`tag_target`]).
    pub fn tag_target(&self, ecosystem: &str, name: &str, version: &str) -> Option<Digest> {
        if ecosystem == crate::tlog::entry::ECOSYSTEM_DOCKER {
            return tag_target(ecosystem, version, None);
        }
        self.commit_outputs(name, version).map(|(_, digest)| digest)
    }

    /// The tags of `name` observed, with the digest of each one's latest observation.
    pub fn tags_of<'s>(&'s self, name: &'s str) -> impl Iterator<Item = (&'s str, Digest)> + 's {
        self.tags
            .range((name.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == name)
            .map(|((_, tag), (_, digest))| (tag.as_str(), *digest))
    }

    /// Every tag observed, with the digest of its latest observation.
    pub fn tags(&self) -> impl Iterator<Item = (&str, &str, Digest)> + '_ {
        self.tags
            .iter()
            .map(|((name, tag), (_, digest))| (name.as_str(), tag.as_str(), *digest))
    }

    /// The committed versions of `name`.
    pub fn committed_versions<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.commits
            .range((name.to_string(), String::new())..)
            .take_while(move |((n, _), _)| n == name)
            .map(|((_, version), _)| version.as_str())
    }

    /// Every committed rebuild verdict: rebuild subject (`pypi-rebuild:demo`), version, the
    /// `Rebuilt` entry's index and its verdict.
    pub fn rebuild_verdicts(&self) -> impl Iterator<Item = (&str, &str, u64, RebuildVerdict)> + '_ {
        self.verdicts
            .iter()
            .map(|((name, version), (index, verdict))| {
                (name.as_str(), version.as_str(), *index, *verdict)
            })
    }

    /// The first commit that lists `digest` among its outputs.
    pub fn committing(&self, digest: &Digest) -> Option<u64> {
        self.committed.get(digest).copied()
    }

    /// The committed piece root of a blob.
    pub fn piece_root(&self, digest: &Digest) -> Option<Hash> {
        self.piece_roots.get(digest).copied()
    }

    /// The membership change that starts `epoch`.
    pub fn membership(&self, epoch: u64) -> Option<u64> {
        self.memberships.get(&epoch).copied()
    }

    /// Every entry about `name`, in log order.
    pub fn history(&self, name: &str) -> &[u64] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }
}

fn key(name: &str, version: &str) -> (String, String) {
    (name.to_string(), version.to_string())
}
