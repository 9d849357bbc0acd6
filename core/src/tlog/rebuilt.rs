//! Rebuild verdicts in the log (issue 16): what a rebuilder attests after rebuilding a package
//! version from its published source (`pypi-rebuild/v1`, `npm-rebuild/v1`), and the entry f+1 matching
//! attestations commit ([`super::entry::Entry::Rebuilt`]).
//!
//! A rebuild is its own request in the log, under the rebuild ecosystem of the package's
//! ecosystem (`pypi-rebuild` for `pypi`, `npm-rebuild` for `npm`: [`rebuild_ecosystem`]), so its request, commit,
//! dispute and unverifiable entries follow the same rules and index keys as a fetch's without
//! ever being mistaken for them; a rebuild request is ordered only once the version's fetch is
//! committed ([`crate::tlog::rules::BatchRules`]).
//!
//! Members attest a [`RebuildStatement`]; the build round groups attestations by its digest
//! and commits the group that reaches f+1. Any attested statement, a fetch's or a rebuild's,
//! is read through one view ([`Claim`]): what request it is bound to and what it signs.

use serde::{Deserialize, Serialize};

use super::entry::{
    Coordinates, ECOSYSTEM_NPM, ECOSYSTEM_PYPI, SignatureList, Statement, encoding_digest,
};
use super::hash::Hash;
use crate::digest::Digest;
use crate::identity::{PublicKey, Purpose, SecretKey, Signature};

/// The ecosystem of PyPI rebuild requests: coordinates `pypi-rebuild`, the project and
/// version exactly as its `pypi` fetch names them.
pub const ECOSYSTEM_PYPI_REBUILD: &str = "pypi-rebuild";
/// The build type that rebuilds a PyPI release's pure-Python wheel from its sdist in a
/// sandbox and compares it with the upstream's wheel.
pub const PYPI_REBUILD_V1: &str = "pypi-rebuild/v1";
/// The ecosystem of npm rebuild requests: coordinates `npm-rebuild`, the package and
/// version exactly as its `npm` fetch names them.
pub const ECOSYSTEM_NPM_REBUILD: &str = "npm-rebuild";
/// The build type that repacks an npm version's published contents with the `npm pack` of
/// the npm version that published it and compares the uncompressed tarballs.
pub const NPM_REBUILD_V1: &str = "npm-rebuild/v1";
/// The longest recipe a rebuild statement carries, in bytes.
pub const RECIPE_LEN_MAX: usize = 1024;
/// The longest artifact file name a rebuild statement carries, in bytes.
pub const ARTIFACT_LEN_MAX: usize = 512;
/// The longest failure reason a rebuild statement carries, in bytes.
pub const FAILURE_LEN_MAX: usize = 512;
/// The most bytes a rebuild statement's encoded diff may take.
pub const DIFF_LEN_MAX: usize = 64 * 1024;

/// The rebuild ecosystem of a package ecosystem, if its packages are rebuilt.
pub fn rebuild_ecosystem(ecosystem: &str) -> Option<&'static str> {
    match ecosystem {
        ECOSYSTEM_PYPI => Some(ECOSYSTEM_PYPI_REBUILD),
        ECOSYSTEM_NPM => Some(ECOSYSTEM_NPM_REBUILD),
        _ => None,
    }
}

/// The package ecosystem a rebuild ecosystem rebuilds, if `ecosystem` is one.
pub fn rebuilt_ecosystem(ecosystem: &str) -> Option<&'static str> {
    match ecosystem {
        ECOSYSTEM_PYPI_REBUILD => Some(ECOSYSTEM_PYPI),
        ECOSYSTEM_NPM_REBUILD => Some(ECOSYSTEM_NPM),
        _ => None,
    }
}

/// What a rebuild found: how the rebuild compares with the upstream's artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RebuildVerdict {
    /// The rebuild is the upstream's file, byte for byte.
    Reproduced,
    /// The same entries once stabilised (order, times, permissions, `RECORD` line order).
    ReproducedStabilized,
    /// Different entries: the diff names them.
    NotReproduced,
    /// The source did not build in the sandbox (the failure names why): nothing shows the
    /// upstream's artifact comes from its source.
    BuildFailed,
}

impl RebuildVerdict {
    /// Whether the verdict shows the artifact comes from its source.
    pub fn is_reproduced(self) -> bool {
        matches!(
            self,
            RebuildVerdict::Reproduced | RebuildVerdict::ReproducedStabilized
        )
    }

    /// The verdict named as [`RebuildVerdict::as_str`] names it.
    pub fn parse(name: &str) -> Option<RebuildVerdict> {
        [
            RebuildVerdict::Reproduced,
            RebuildVerdict::ReproducedStabilized,
            RebuildVerdict::NotReproduced,
            RebuildVerdict::BuildFailed,
        ]
        .into_iter()
        .find(|v| v.as_str() == name)
    }

    /// Whether a node serving reproduced releases only (`--verified-only=reproduced`) serves
    /// `filename` of a release whose rebuild of `artifact` ended with this verdict: the
    /// artifact rebuilt, or the source it was rebuilt from (a PyPI sdist), of a reproduced
    /// release; nothing else (a compiled wheel was never rebuilt).
    pub fn serves(self, artifact: &str, filename: &str) -> bool {
        let source = filename.ends_with(".tar.gz") || filename.ends_with(".zip");
        self.is_reproduced() && (filename == artifact || source)
    }

    /// The verdict's name, as the CLI and the API print it.
    pub fn as_str(self) -> &'static str {
        match self {
            RebuildVerdict::Reproduced => "reproduced",
            RebuildVerdict::ReproducedStabilized => "reproduced-stabilized",
            RebuildVerdict::NotReproduced => "not-reproduced",
            RebuildVerdict::BuildFailed => "unverifiable",
        }
    }
}

/// What a rebuilder attests: for that request, under that epoch and selection (bound as a
/// fetch's [`Statement`] is), the upstream's artifact, the rebuild, the verdict and how the
/// rebuild was made. Honest rebuilders with the same recipe attest the same statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildStatement<'a> {
    /// Log index of the rebuild's `BuildRequest`.
    pub request_index: u64,
    /// The rebuild coordinates (ecosystem [`ECOSYSTEM_PYPI_REBUILD`]).
    #[serde(borrow)]
    pub coordinates: Coordinates<'a>,
    /// The build type used ([`PYPI_REBUILD_V1`]).
    pub build_type: &'a str,
    /// The member epoch the rebuilders belong to.
    pub epoch: u64,
    /// Size of the checkpoint the rebuilders were selected from.
    pub selection_size: u64,
    /// Root of that checkpoint.
    pub selection_root: Hash,
    /// The upstream artifact's file name (the wheel).
    pub artifact: &'a str,
    /// The upstream artifact's sha256 (one of the version's committed outputs).
    pub upstream: Digest,
    /// The rebuilt artifact's sha256, when the build produced one.
    pub rebuilt: Option<Digest>,
    /// The rebuilt artifact's stabilised digest ([`crate::package::rebuild::stabilized_digest`]).
    pub stabilized: Option<Digest>,
    /// The verdict.
    pub verdict: RebuildVerdict,
    /// How it was rebuilt: build backend and version, interpreter, environment.
    pub recipe: &'a str,
    /// For `NotReproduced`, the entries that differ ([`crate::package::rebuild::encode_diff`]).
    pub diff: &'a [u8],
    /// For `BuildFailed`, why (the same words on every honest rebuilder).
    pub failure: &'a str,
}

impl RebuildStatement<'_> {
    /// SHA-256 of the statement's postcard encoding: what rebuild attestations sign.
    pub fn digest(&self) -> [u8; 32] {
        encoding_digest(self)
    }

    /// Signs the statement as this member's rebuild attestation.
    pub fn sign(&self, key: &SecretKey) -> super::entry::Signed {
        super::entry::Signed {
            signer: key.public().key_id(),
            signature: key.sign(Purpose::RebuildAttestation, &self.digest()),
        }
    }

    /// Checks a rebuild attestation by `key` over this statement.
    pub fn verify(&self, key: &PublicKey, signature: &Signature) -> bool {
        key.verify(Purpose::RebuildAttestation, &self.digest(), signature)
            .is_ok()
    }

    /// Whether every field is within its bound and agrees with the verdict: a rebuilt
    /// digest unless the build failed, a diff only when not reproduced, a failure only when
    /// the build failed.
    pub fn is_well_formed(&self) -> bool {
        let failed = self.verdict == RebuildVerdict::BuildFailed;
        self.recipe.len() <= RECIPE_LEN_MAX
            && !self.artifact.is_empty()
            && self.artifact.len() <= ARTIFACT_LEN_MAX
            && self.failure.len() <= FAILURE_LEN_MAX
            && self.diff.len() <= DIFF_LEN_MAX
            && failed == self.rebuilt.is_none()
            && failed == self.stabilized.is_none()
            && failed != self.failure.is_empty()
            && (self.verdict == RebuildVerdict::NotReproduced) != self.diff.is_empty()
    }
}

/// A rebuild verdict f+1 rebuilders attested alike, with their attestations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildCommit<'a> {
    /// The attested statement; every attestation signs its canonical encoding.
    #[serde(borrow)]
    pub statement: RebuildStatement<'a>,
    /// The attestations (f+1 or more, distinct members of `statement.epoch`).
    #[serde(borrow)]
    pub attestations: SignatureList<'a>,
}

/// Any attested statement as the build round and the evidence rules read it: the request
/// it is bound to, what its signatures sign, and what a commit of it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Log index of the request.
    pub request_index: u64,
    /// The request's coordinates.
    pub coordinates: Coordinates<'a>,
    /// The member epoch of the signer.
    pub epoch: u64,
    /// Size of the selection checkpoint.
    pub selection_size: u64,
    /// Root of the selection checkpoint.
    pub selection_root: Hash,
    /// What a signature signs (the statement's digest).
    pub digest: [u8; 32],
    /// Under which purpose.
    pub purpose: Purpose,
    /// What the index records for a commit of it ([`crate::tlog::index::LogIndex::commit_outputs`]):
    /// a fetch's outputs list digest, a rebuild's statement digest.
    pub outcome: Digest,
}

impl<'a> Claim<'a> {
    /// Reads statement bytes: a [`RebuildStatement`] when its coordinates are of a rebuild
    /// ecosystem, else a fetch [`Statement`]. `None` when they decode as neither, have bytes
    /// after the statement, or a rebuild statement is not well formed.
    pub fn decode(bytes: &'a [u8]) -> Option<Claim<'a>> {
        let (_, coordinates): (u64, Coordinates<'_>) =
            postcard::take_from_bytes::<(u64, Coordinates<'_>)>(bytes)
                .ok()?
                .0;
        if rebuilt_ecosystem(coordinates.ecosystem).is_some() {
            let (statement, rest) =
                postcard::take_from_bytes::<RebuildStatement<'a>>(bytes).ok()?;
            (rest.is_empty() && statement.is_well_formed()).then(|| Claim::of_rebuild(&statement))
        } else {
            let (statement, rest) = postcard::take_from_bytes::<Statement<'a>>(bytes).ok()?;
            (rest.is_empty() && statement.outputs.is_whole() && statement.piece_roots.is_whole())
                .then(|| Claim::of_fetch(&statement))
        }
    }

    /// The claim of a fetch statement.
    pub fn of_fetch(statement: &Statement<'a>) -> Claim<'a> {
        Claim {
            request_index: statement.request_index,
            coordinates: statement.coordinates,
            epoch: statement.epoch,
            selection_size: statement.selection_size,
            selection_root: statement.selection_root,
            digest: statement.digest(),
            purpose: Purpose::Attestation,
            outcome: Digest::sha256(statement.outputs.0),
        }
    }

    /// The claim of a rebuild statement.
    pub fn of_rebuild(statement: &RebuildStatement<'a>) -> Claim<'a> {
        let digest = statement.digest();
        Claim {
            request_index: statement.request_index,
            coordinates: statement.coordinates,
            epoch: statement.epoch,
            selection_size: statement.selection_size,
            selection_root: statement.selection_root,
            digest,
            purpose: Purpose::RebuildAttestation,
            outcome: Digest::from_sha256_bytes(digest),
        }
    }

    /// Checks a signature by `key` over the statement.
    pub fn verify(&self, key: &PublicKey, signature: &Signature) -> bool {
        key.verify(self.purpose, &self.digest, signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::RebuildVerdict;

    #[test]
    fn reproduced_only_serves_the_rebuilt_artifact_and_its_source() {
        let wheel = "demo-1.0-py3-none-any.whl";
        for verdict in [
            RebuildVerdict::Reproduced,
            RebuildVerdict::ReproducedStabilized,
        ] {
            assert!(verdict.serves(wheel, wheel));
            assert!(verdict.serves(wheel, "demo-1.0.tar.gz"));
            assert!(!verdict.serves(wheel, "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"));
            assert_eq!(RebuildVerdict::parse(verdict.as_str()), Some(verdict));
        }
        for verdict in [RebuildVerdict::NotReproduced, RebuildVerdict::BuildFailed] {
            assert!(!verdict.serves(wheel, wheel));
            assert_eq!(RebuildVerdict::parse(verdict.as_str()), Some(verdict));
        }
        assert_eq!(RebuildVerdict::parse("maybe"), None);
    }
}
