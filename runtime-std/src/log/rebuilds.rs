//! Rebuild verdicts in this node's log (issue 16): a sole member's own commit of what its
//! rebuild found ([`Log::commit_rebuild`]: the rebuild request and the `Rebuilt` entry with its
//! attestation, through the same build round as any network), and the lookups the mirror's
//! `--verified-only=reproduced`, the API and the CLI read verdicts by.

use pyrsia_core::consensus::node::RebuildResult;
use pyrsia_core::package::rebuild::{Diff, decode_diff};
use pyrsia_core::tlog::coordinates::fetch_build_type;
use pyrsia_core::tlog::entry::{BuildRequest, Coordinates, Entry, SignatureList};
use pyrsia_core::tlog::rebuilt::{
    RebuildCommit, RebuildVerdict, rebuild_ecosystem, rebuilt_ecosystem,
};

use super::commit::{Outcome, sole_member_attests};
use super::{Log, LogError};

/// A committed rebuild verdict, as the log holds it: the release and what its rebuilders
/// attested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildRecord {
    /// The `Rebuilt` entry's index.
    pub index: u64,
    /// The package's ecosystem (`pypi`, `npm`).
    pub ecosystem: &'static str,
    /// The package name.
    pub name: String,
    /// The version.
    pub version: String,
    /// What the rebuilders attested (artifact, digests, verdict, recipe, diff, failure).
    pub result: RebuildResult,
    /// How many rebuilders attested it.
    pub attestations: usize,
}

impl RebuildRecord {
    /// What differs (for `NotReproduced`), decoded from the attested diff.
    pub fn diff(&self) -> Diff {
        decode_diff(&self.result.diff).unwrap_or_default()
    }

    fn from_entry(index: u64, rebuilt: &RebuildCommit<'_>) -> Option<RebuildRecord> {
        let statement = &rebuilt.statement;
        Some(RebuildRecord {
            index,
            ecosystem: rebuilt_ecosystem(statement.coordinates.ecosystem)?,
            name: statement.coordinates.name.to_string(),
            version: statement.coordinates.version.to_string(),
            result: RebuildResult {
                artifact: statement.artifact.to_string(),
                upstream: statement.upstream,
                rebuilt: statement.rebuilt,
                stabilized: statement.stabilized,
                verdict: statement.verdict,
                recipe: statement.recipe.to_string(),
                diff: statement.diff.to_vec(),
                failure: statement.failure.to_string(),
            },
            attestations: rebuilt.attestations.len(),
        })
    }
}

/// The rebuild coordinates of a package version, if its ecosystem is rebuilt.
fn rebuild_coordinates<'a>(package: &Coordinates<'a>) -> Option<Coordinates<'a>> {
    Some(Coordinates {
        ecosystem: rebuild_ecosystem(package.ecosystem)?,
        ..*package
    })
}

impl Log {
    /// The committed rebuild verdict of a package version (`package` in its own ecosystem,
    /// e.g. `pypi`), if there is one.
    pub fn rebuild_of(&self, package: &Coordinates<'_>) -> Option<RebuildRecord> {
        let rebuild = rebuild_coordinates(package)?;
        let index = self.find_commit(&rebuild.subject(), rebuild.version)?;
        self.rebuild_at(index)
    }

    /// The rebuild verdict at entry `index`, if that is a `Rebuilt` entry.
    pub fn rebuild_at(&self, index: u64) -> Option<RebuildRecord> {
        let bytes = self.entry(index)?;
        match Entry::decode(&bytes) {
            Ok(Entry::Rebuilt(rebuilt)) => RebuildRecord::from_entry(index, &rebuilt),
            _ => None,
        }
    }

    /// Whether a rebuild of the package version was requested (settled or not).
    pub fn rebuild_requested(&self, package: &Coordinates<'_>) -> bool {
        rebuild_coordinates(package).is_some_and(|rebuild| {
            self.lock()
                .index()
                .request(&rebuild.subject(), rebuild.version)
                .is_some()
        })
    }

    /// The committed rebuild verdicts (only those that are `verdict`, when given), newest
    /// first, at most `limit`: only those entries are read.
    pub fn rebuilds(&self, verdict: Option<RebuildVerdict>, limit: usize) -> Vec<RebuildRecord> {
        let mut indices: Vec<u64> = self
            .lock()
            .index()
            .rebuild_verdicts()
            .filter(|(_, _, _, v)| verdict.is_none_or(|wanted| wanted == *v))
            .map(|(_, _, index, _)| index)
            .collect();
        indices.sort_unstable_by(|a, b| b.cmp(a));
        indices
            .into_iter()
            .take(limit)
            .filter_map(|index| self.rebuild_at(index))
            .collect()
    }

    /// Records what this sole member's rebuild of `package` (a committed version) found: the
    /// rebuild request and its `Rebuilt` entry with this member's attestation, through the
    /// build round's commit rule. A second commit changes nothing.
    pub fn commit_rebuild(
        &self,
        package: &Coordinates<'_>,
        source: &str,
        result: &RebuildResult,
        now_secs: u64,
    ) -> Result<Outcome, LogError> {
        let rebuild = rebuild_coordinates(package)
            .ok_or_else(|| LogError::Refused("the ecosystem is not rebuilt".into()))?;
        let build_type = fetch_build_type(rebuild.ecosystem)
            .ok_or_else(|| LogError::Refused("no rebuild build type".into()))?;
        let mut state = self.lock();
        if !self.is_sole_member_locked(&state) {
            return Err(LogError::NotSoleMember);
        }
        let index = state.index();
        if let Some(done) = index.commit(&rebuild.subject(), rebuild.version) {
            return Ok(Outcome::AlreadyCommitted(done));
        }
        if index.commit(&package.subject(), package.version).is_none() {
            return Err(LogError::Refused(
                "the version's fetch is not committed".into(),
            ));
        }
        let request_index = state.tree().size();
        let request = BuildRequest {
            coordinates: rebuild,
            build_type,
            source,
            requester: self.key.public().key_id(),
        };
        let selection = state
            .latest()
            .map_or((0, [0; 32]), |c| (c.checkpoint.size, c.checkpoint.root));
        let statement =
            result.statement(request_index, &request, state.members().epoch(), selection);
        if !statement.is_well_formed() {
            return Err(LogError::Refused(
                "the rebuild result is not well formed".into(),
            ));
        }
        let bytes = postcard::to_allocvec(&statement).unwrap_or_default();
        let attestations = sole_member_attests(state.members(), &bytes, statement.sign(&self.key))?;
        let rebuilt = Entry::Rebuilt(RebuildCommit {
            statement,
            attestations: SignatureList(&attestations),
        })
        .encode();
        let new = vec![Entry::BuildRequest(request).encode(), rebuilt];
        self.append_locked(&mut state, new, now_secs)?;
        Ok(Outcome::Committed(request_index + 1))
    }
}
