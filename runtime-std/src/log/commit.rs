//! Committing what a sole member verified itself (build types `docker-fetch/v1`,
//! `npm-fetch/v1`, `pypi-fetch/v1`): the request, the commit with this node's attestation
//! and, for an image's tag, the observation with this node's vouch. With
//! n = 1 and f = 0 one attestation is the f+1 the commit rule asks for and one signature the
//! quorum a checkpoint needs (q = 1 at n = 1); larger networks commit through consensus instead.

use pyrsia_core::digest::Digest;
use pyrsia_core::tlog::entry::{
    BuildRequest, Commit, Coordinates, DOCKER_FETCH_V1, DigestList, ECOSYSTEM_DOCKER, Entry,
    PieceRootList, SignatureList, Statement, TagObservation, TagStatement,
};

use pyrsia_core::consensus::node::statement_lists;
use pyrsia_core::consensus::{BuildOutput, BuildRound};
use pyrsia_core::identity::SecretKey;
use pyrsia_core::members::MemberSet;
use pyrsia_core::time::{Duration, Instant};
use pyrsia_core::tlog::coordinates::fetch_build_type;
use pyrsia_core::tlog::state::LogState;

use super::{Log, LogError};

/// The build round of a sole member, through the same commit rule as any network: the round
/// selects this member, takes its attestation (checked: member, signature, binding to the
/// request) and commits on f+1 = 1. Returns the attestations as the entry stores them.
fn sole_member_round(
    key: &SecretKey,
    members: &MemberSet,
    statement: &Statement<'_>,
) -> Result<Vec<u8>, LogError> {
    let bytes = postcard::to_allocvec(statement).unwrap_or_default();
    sole_member_attests(members, &bytes, statement.sign(key))
}

/// [`sole_member_round`] for any statement's bytes (a fetch's or a rebuild's, read as one
/// [`pyrsia_core::tlog::rebuilt::Claim`]) and this member's signature over it.
pub(super) fn sole_member_attests(
    members: &MemberSet,
    bytes: &[u8],
    signed: pyrsia_core::tlog::entry::Signed,
) -> Result<Vec<u8>, LogError> {
    let claim = pyrsia_core::tlog::rebuilt::Claim::decode(bytes)
        .ok_or_else(|| LogError::Refused("own statement does not decode".into()))?;
    let mut round = BuildRound::start(
        claim.request_index,
        &claim.coordinates,
        members,
        claim.selection_size,
        claim.selection_root,
        Instant::ZERO,
        Duration::from_secs(60),
    );
    round
        .handle_statement(signed.signer, bytes, signed.signature)
        .map_err(|e| LogError::Refused(format!("own attestation: {e:?}")))?;
    while let Some(output) = round.poll_output() {
        if let BuildOutput::Commit { attestations, .. } = output {
            return Ok(attestations.iter().flat_map(|a| a.to_bytes()).collect());
        }
    }
    Err(LogError::Refused("the build round did not commit".into()))
}

/// A verified image: its manifest, every digest it consists of, and the tag it was pulled by.
#[derive(Clone, Debug)]
pub struct DockerCommit<'a> {
    /// Canonical name, `registry/repository` (e.g. `docker.io/library/alpine`).
    pub name: &'a str,
    /// The top-level manifest or index digest (the immutable version).
    pub manifest: Digest,
    /// Every manifest, index, config and layer digest, the top-level one included.
    pub outputs: Vec<Digest>,
    /// The piece root of every blob larger than one piece.
    pub piece_roots: Vec<(Digest, pyrsia_core::tlog::Hash)>,
    /// The tag that resolved to `manifest`, when pulled by tag.
    pub tag: Option<&'a str>,
    /// Where it was fetched from (the upstream URL).
    pub source: &'a str,
}

/// What a commit request changed in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new `Commit` at this index.
    Committed(u64),
    /// The coordinates were committed before, at this index: nothing new (PROTOCOL case 13).
    AlreadyCommitted(u64),
}

/// A verified package version (`npm`/`pypi`): its coordinates and the sha256 of every file
/// the builder fetched and checked against the registry's own digest.
#[derive(Clone, Debug)]
pub struct PackageCommit<'a> {
    /// Ecosystem, name and version, valid in the ecosystem.
    pub coordinates: Coordinates<'a>,
    /// The sha256 of every file of the version.
    pub outputs: Vec<Digest>,
    /// The piece root of every file larger than one piece.
    pub piece_roots: Vec<(Digest, pyrsia_core::tlog::Hash)>,
    /// Where it was fetched from (the upstream registry or index URL).
    pub source: &'a str,
}

impl Log {
    /// Records a verified image. A second commit of the same coordinates is refused; a tag
    /// that moved gets a new `TagObservation` either way.
    pub fn commit_docker(
        &self,
        image: &DockerCommit<'_>,
        now_secs: u64,
    ) -> Result<Outcome, LogError> {
        let mut state = self.lock();
        if !self.is_sole_member_locked(&state) {
            return Err(LogError::NotSoleMember);
        }
        let version = image.manifest.to_string();
        let coordinates = Coordinates {
            ecosystem: ECOSYSTEM_DOCKER,
            name: image.name,
            version: &version,
        };
        let existing = state.index().commit(image.name, &version);
        let size = state.tree().size();
        let mut new = Vec::new();
        if existing.is_none() {
            let mut outputs = image.outputs.clone();
            outputs.push(image.manifest);
            new = self.request_and_commit(
                &state,
                coordinates,
                DOCKER_FETCH_V1,
                image.source,
                &outputs,
                &image.piece_roots,
            )?;
        }
        if let Some(tag) = image.tag {
            let moved = state
                .index()
                .tag(image.name, tag)
                .is_none_or(|(_, digest)| digest != image.manifest);
            if moved {
                let tag = Coordinates {
                    version: tag,
                    ..coordinates
                };
                new.push(self.sole_member_tag_observation(&state, tag, image.manifest, now_secs));
            }
        }
        if !new.is_empty() {
            self.append_locked(&mut state, new, now_secs)?;
        }
        Ok(match existing {
            Some(index) => Outcome::AlreadyCommitted(index),
            None => Outcome::Committed(size + 1),
        })
    }

    /// Records that package tag `tag` (the tag in `version`: an npm dist-tag, Maven's
    /// `release` or `latest`) names the committed `version` now: `Ok(Some(index))` for a new
    /// `TagObservation`, `Ok(None)` when the tag is outside its ecosystem's grammar, the
    /// version is not committed, or the log's latest observation of the tag names it already.
    pub fn observe_package_tag(
        &self,
        tag: Coordinates<'_>,
        version: &str,
        now_secs: u64,
    ) -> Result<Option<u64>, LogError> {
        if tag.ecosystem == ECOSYSTEM_DOCKER || tag.check_tag().is_err() {
            return Ok(None);
        }
        let mut state = self.lock();
        if !self.is_sole_member_locked(&state) {
            return Err(LogError::NotSoleMember);
        }
        let subject = tag.subject();
        let index = state.index();
        let Some(target) = index.tag_target(tag.ecosystem, &subject, version) else {
            return Ok(None);
        };
        if index
            .tag(&subject, tag.version)
            .is_some_and(|(_, latest)| latest == target)
        {
            return Ok(None);
        }
        let entry = self.sole_member_tag_observation(&state, tag, target, now_secs);
        let at = state.tree().size();
        self.append_locked(&mut state, vec![entry], now_secs)?;
        Ok(Some(at))
    }

    /// A `TagObservation` of `tag` naming `target`, encoded: the sole member's own resolution
    /// is the f+1 = 1 vouches the rule asks for.
    fn sole_member_tag_observation(
        &self,
        state: &LogState,
        tag: Coordinates<'_>,
        target: Digest,
        now_secs: u64,
    ) -> Vec<u8> {
        let statement = TagStatement {
            tag,
            digest: target,
            epoch: state.members().epoch(),
            checkpoint_size: state.final_size(),
            observer: self.key.public().key_id(),
            observed_at: now_secs,
        };
        let vouch = statement.sign(&self.key).to_bytes();
        Entry::TagObservation(TagObservation {
            statement,
            attestations: SignatureList(&vouch),
        })
        .encode()
    }

    /// Records a verified package version (build type [`fetch_build_type`] of its
    /// ecosystem). A second commit of the same coordinates changes nothing.
    pub fn commit_package(
        &self,
        package: &PackageCommit<'_>,
        now_secs: u64,
    ) -> Result<Outcome, LogError> {
        let coordinates = package.coordinates;
        coordinates
            .check()
            .map_err(|e| LogError::Refused(format!("coordinates: {e}")))?;
        let build_type = fetch_build_type(coordinates.ecosystem)
            .ok_or_else(|| LogError::Refused("no fetch build type for the ecosystem".into()))?;
        let mut state = self.lock();
        if !self.is_sole_member_locked(&state) {
            return Err(LogError::NotSoleMember);
        }
        if let Some(index) = state
            .index()
            .commit(&coordinates.subject(), coordinates.version)
        {
            return Ok(Outcome::AlreadyCommitted(index));
        }
        let size = state.tree().size();
        let new = self.request_and_commit(
            &state,
            coordinates,
            build_type,
            package.source,
            &package.outputs,
            &package.piece_roots,
        )?;
        self.append_locked(&mut state, new, now_secs)?;
        Ok(Outcome::Committed(size + 1))
    }

    /// The `BuildRequest` of `coordinates` at the next index and its `Commit` with this sole
    /// member's attestation of `outputs`, encoded.
    fn request_and_commit(
        &self,
        state: &LogState,
        coordinates: Coordinates<'_>,
        build_type: &str,
        source: &str,
        outputs: &[Digest],
        piece_roots: &[(Digest, pyrsia_core::tlog::Hash)],
    ) -> Result<Vec<Vec<u8>>, LogError> {
        let request_index = state.tree().size();
        let request = Entry::BuildRequest(BuildRequest {
            coordinates,
            build_type,
            source,
            requester: self.key.public().key_id(),
        })
        .encode();
        let (outputs, piece_roots) = statement_lists(outputs, piece_roots);
        let (selection_size, selection_root) = state
            .latest()
            .map_or((0, [0; 32]), |c| (c.checkpoint.size, c.checkpoint.root));
        let statement = Statement {
            request_index,
            coordinates,
            build_type,
            outputs: DigestList(&outputs),
            epoch: state.members().epoch(),
            selection_size,
            selection_root,
            piece_roots: PieceRootList(&piece_roots),
        };
        let attestations = sole_member_round(&self.key, state.members(), &statement)?;
        let commit = Entry::Commit(Commit {
            statement,
            attestations: SignatureList(&attestations),
        })
        .encode();
        Ok(vec![request, commit])
    }
}
