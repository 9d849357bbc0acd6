//! Log entries (PROTOCOL.md §1): what the network records, encoded as
//! `[ENTRY_FORMAT][postcard(Entry)]`. The leaf hash covers exactly those bytes.
//!
//! Entries borrow from the bytes they are decoded from, and every list is a run of fixed-size
//! records inside one byte string, so a light client decodes any entry without an allocator
//! and without a maximum on how many digests a commit lists.

use core::fmt;

use serde::{Deserialize, Serialize};

use super::hash::Hash;
use crate::digest::{Digest, Hasher, SHA256_LEN};
use crate::identity::{KeyId, PublicKey, Purpose, SecretKey, Signature};

/// The entry encoding's version, the first byte of every entry.
pub const ENTRY_FORMAT: u8 = 1;
/// The largest entry accepted anywhere (decoding, storing, replicating).
pub const MAX_ENTRY_LEN: usize = 1 << 20;
/// The build type of an image fetched from its upstream with every digest checked.
pub const DOCKER_FETCH_V1: &str = "docker-fetch/v1";
/// The ecosystem name of OCI/Docker images in coordinates.
pub const ECOSYSTEM_DOCKER: &str = "docker";
/// The ecosystem name of npm packages: coordinates `npm`, `@scope/name`, semver version.
pub const ECOSYSTEM_NPM: &str = "npm";
/// The ecosystem name of PyPI projects: coordinates `pypi`, normalised project name, PEP 440
/// version as the release's file names spell it (lower case).
pub const ECOSYSTEM_PYPI: &str = "pypi";
/// The build type of an npm version whose tarball was fetched from the upstream registry and
/// checked against the packument's `dist.integrity`; the output is the tarball's sha256.
pub const NPM_FETCH_V1: &str = "npm-fetch/v1";
/// The build type of a PyPI release whose files were fetched from the upstream index and
/// checked against the sha256 the project page gives; the outputs are those digests.
pub const PYPI_FETCH_V1: &str = "pypi-fetch/v1";
/// The ecosystem name of Maven releases: coordinates `maven`, `groupId:artifactId`, a release
/// version (never a `-SNAPSHOT`: snapshots move).
pub const ECOSYSTEM_MAVEN: &str = "maven";
/// The build type of a Maven release whose pom and main artifact (the one the pom's packaging
/// names) were fetched from the upstream repository and checked against its checksum files;
/// the outputs are their sha256.
pub const MAVEN_FETCH_V1: &str = "maven-fetch/v1";

/// One record of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Entry<'a> {
    /// Entry 0: the founding members, the fault bound and the log's name.
    #[serde(borrow)]
    Genesis(Genesis<'a>),
    /// Someone asked the members to verify an artifact.
    #[serde(borrow)]
    BuildRequest(BuildRequest<'a>),
    /// f+1 members produced the same outputs for a request.
    #[serde(borrow)]
    Commit(Commit<'a>),
    /// The builders disagreed; the attestations are kept as evidence.
    #[serde(borrow)]
    Dispute(Dispute<'a>),
    /// Even after widening to every member no output reached f+1: never served as verified.
    #[serde(borrow)]
    Unverifiable(Dispute<'a>),
    /// A tag seen by one member alone (logs written before tag observations were
    /// attested): history that replicates, never ordered again and never used to resolve a tag.
    #[serde(borrow)]
    UnattestedTag(UnattestedTag<'a>),
    /// A key joins the member set (signed by a quorum of members of the previous epoch).
    #[serde(borrow)]
    AddMember(MembershipChange<'a>),
    /// A key leaves the member set (signed by a quorum of members of the previous epoch).
    #[serde(borrow)]
    RemoveMember(MembershipChange<'a>),
    /// A mutable tag pointed at a digest when f+1 members each resolved it at their upstream.
    #[serde(borrow)]
    TagObservation(TagObservation<'a>),
    /// A rebuild verdict f+1 rebuilders attested alike (issue 16).
    #[serde(borrow)]
    Rebuilt(super::rebuilt::RebuildCommit<'a>),
}

/// Entry 0 of every log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis<'a> {
    /// The log's name: the first line of every checkpoint.
    pub origin: &'a str,
    /// f: how many byzantine members the network tolerates (n ≥ 3f+1).
    pub faults: u32,
    /// The epoch-0 members' public keys.
    #[serde(borrow)]
    pub members: KeyList<'a>,
    /// Unix seconds when the genesis was made (informational).
    pub created: u64,
}

/// What an artifact is, independent of where its bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Coordinates<'a> {
    /// Package ecosystem, e.g. [`ECOSYSTEM_DOCKER`].
    pub ecosystem: &'a str,
    /// Canonical name, for images `registry/repository` (e.g. `docker.io/library/alpine`).
    pub name: &'a str,
    /// Immutable version: for images the manifest digest (`sha256:…`).
    pub version: &'a str,
}

/// A request to verify an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest<'a> {
    /// What to verify.
    #[serde(borrow)]
    pub coordinates: Coordinates<'a>,
    /// How: a build type such as [`DOCKER_FETCH_V1`].
    pub build_type: &'a str,
    /// Where the builders get it: the trusted upstream or source reference.
    pub source: &'a str,
    /// The member that asked.
    pub requester: KeyId,
}

/// The outputs f+1 members agreed on, with their attestations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit<'a> {
    /// The attested statement; every attestation signs its canonical encoding.
    #[serde(borrow)]
    pub statement: Statement<'a>,
    /// The attestations (f+1 or more, distinct members of `statement.epoch`).
    #[serde(borrow)]
    pub attestations: SignatureList<'a>,
}

/// What a builder attests: these outputs for that request, under that epoch and selection.
/// Binding the request's log index, the epoch and the selection checkpoint means an
/// attestation cannot be replayed for another request or epoch (PROTOCOL case 12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement<'a> {
    /// Log index of the `BuildRequest`.
    pub request_index: u64,
    /// The artifact.
    #[serde(borrow)]
    pub coordinates: Coordinates<'a>,
    /// The build type used.
    pub build_type: &'a str,
    /// Every output digest (manifests, indexes, blobs), sorted and distinct.
    #[serde(borrow)]
    pub outputs: DigestList<'a>,
    /// The member epoch the builders belong to.
    pub epoch: u64,
    /// Size of the checkpoint the builders were selected from.
    pub selection_size: u64,
    /// Root of that checkpoint.
    pub selection_root: Hash,
    /// The piece root of every output larger than one piece ([`crate::pieces`]).
    #[serde(borrow)]
    pub piece_roots: PieceRootList<'a>,
}

/// Disagreement on a request, with the attestations as opaque evidence (their postcard
/// encoding; consensus decodes it with an allocator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute<'a> {
    /// Log index of the `BuildRequest`.
    pub request_index: u64,
    /// The artifact.
    #[serde(borrow)]
    pub coordinates: Coordinates<'a>,
    /// Every attestation seen, encoded.
    pub evidence: &'a [u8],
}

/// A tag seen pointing at a digest by one member, as logs before attested tags recorded it
/// ([`Entry::UnattestedTag`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnattestedTag<'a> {
    /// Ecosystem, name and the tag (in `version`).
    #[serde(borrow)]
    pub tag: Coordinates<'a>,
    /// What the tag resolved to.
    pub digest: Digest,
    /// The log size the observer had verified when it looked (orders observations).
    pub checkpoint_size: u64,
    /// Who looked.
    pub observer: KeyId,
    /// Unix seconds when it looked.
    pub observed_at: u64,
}

/// What a member signs when it vouches for a tag: it resolved `tag` at its own upstream and
/// got `digest`. The observer (the member that asks the others) proposes the statement; each
/// member that resolves the tag to the same digest signs it unchanged (PROTOCOL.md §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagStatement<'a> {
    /// Ecosystem, name and the tag (in `version`).
    #[serde(borrow)]
    pub tag: Coordinates<'a>,
    /// What the tag resolved to.
    pub digest: Digest,
    /// The member epoch of the signers.
    pub epoch: u64,
    /// The observer's final log size when it asked: an observation is ordered only after every
    /// earlier observation of its tag (a replayed old statement cannot move a tag back).
    pub checkpoint_size: u64,
    /// The member that asked, one of the signers.
    pub observer: KeyId,
    /// Unix seconds when the observer looked (informational).
    pub observed_at: u64,
}

/// A tag seen pointing at a digest, vouched for by f+1 members of the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagObservation<'a> {
    /// What the members saw.
    #[serde(borrow)]
    pub statement: TagStatement<'a>,
    /// Their signatures over [`TagStatement::digest`] (purpose `TagObservation`).
    #[serde(borrow)]
    pub attestations: SignatureList<'a>,
}

/// A membership change and the previous epoch's signatures over
/// [`MembershipChange::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange<'a> {
    /// The epoch this change starts.
    pub epoch: u64,
    /// The key added or removed.
    pub key: PublicKey,
    /// A quorum of signatures of the previous epoch's members.
    #[serde(borrow)]
    pub signatures: SignatureList<'a>,
}

/// Whether a membership change adds or removes its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MembershipOp {
    /// [`Entry::AddMember`].
    Add,
    /// [`Entry::RemoveMember`].
    Remove,
}

/// Why entry bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EntryError {
    /// Longer than [`MAX_ENTRY_LEN`].
    TooLong,
    /// The format byte is not [`ENTRY_FORMAT`].
    UnknownFormat,
    /// Not a postcard `Entry`, trailing bytes, or not its canonical encoding.
    Malformed,
    /// A list's byte length is not a multiple of its record size.
    BadList,
    /// The output buffer is too small.
    BufferFull,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryError::TooLong => "log entry is too long",
            EntryError::UnknownFormat => "log entry has an unknown format version",
            EntryError::Malformed => "log entry is not a canonical postcard entry",
            EntryError::BadList => "log entry list has a partial record",
            EntryError::BufferFull => "buffer too small for the log entry",
        })
    }
}

impl core::error::Error for EntryError {}

impl<'a> Entry<'a> {
    /// The coordinates the entry is about: the artifact of a request, commit or verdict, the
    /// tag of a tag observation; none for a genesis or a membership change.
    pub fn coordinates(&self) -> Option<Coordinates<'a>> {
        match self {
            Entry::BuildRequest(r) => Some(r.coordinates),
            Entry::Commit(c) => Some(c.statement.coordinates),
            Entry::Dispute(d) | Entry::Unverifiable(d) => Some(d.coordinates),
            Entry::UnattestedTag(t) => Some(t.tag),
            Entry::TagObservation(t) => Some(t.statement.tag),
            Entry::Rebuilt(r) => Some(r.statement.coordinates),
            Entry::Genesis(_) | Entry::AddMember(_) | Entry::RemoveMember(_) => None,
        }
    }

    /// Decodes entry bytes: format byte, one canonical postcard `Entry`, nothing after it,
    /// every list whole.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, EntryError> {
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLong);
        }
        let (&format, body) = bytes.split_first().ok_or(EntryError::Malformed)?;
        if format != ENTRY_FORMAT {
            return Err(EntryError::UnknownFormat);
        }
        let (entry, rest): (Entry<'a>, _) =
            postcard::take_from_bytes(body).map_err(|_| EntryError::Malformed)?;
        if !rest.is_empty() || !crate::wire::envelope::is_canonical(&entry, body) {
            return Err(EntryError::Malformed);
        }
        entry.check_lists()?;
        Ok(entry)
    }

    /// Encodes into `buf`, returning the bytes written.
    pub fn encode_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], EntryError> {
        let (first, body) = buf.split_first_mut().ok_or(EntryError::BufferFull)?;
        *first = ENTRY_FORMAT;
        let len = postcard::to_slice(self, body)
            .map_err(|_| EntryError::BufferFull)?
            .len();
        Ok(&buf[..=len])
    }

    /// Encodes into a new vector.
    #[cfg(feature = "alloc")]
    pub fn encode(&self) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec![ENTRY_FORMAT];
        // Serializing into a Vec cannot fail for these types.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    fn check_lists(&self) -> Result<(), EntryError> {
        let ok = match self {
            Entry::Genesis(g) => g.members.is_whole(),
            Entry::Commit(c) => {
                c.statement.outputs.is_whole()
                    && c.statement.piece_roots.is_whole()
                    && c.attestations.is_whole()
            }
            Entry::AddMember(m) | Entry::RemoveMember(m) => m.signatures.is_whole(),
            Entry::TagObservation(t) => t.attestations.is_whole(),
            Entry::Rebuilt(r) => r.attestations.is_whole(),
            _ => true,
        };
        if ok { Ok(()) } else { Err(EntryError::BadList) }
    }

    /// A short name of the entry's kind, for listings.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Genesis(_) => "genesis",
            Entry::BuildRequest(_) => "build-request",
            Entry::Commit(_) => "commit",
            Entry::Dispute(_) => "dispute",
            Entry::Unverifiable(_) => "unverifiable",
            Entry::UnattestedTag(_) => "unattested-tag",
            Entry::AddMember(_) => "add-member",
            Entry::RemoveMember(_) => "remove-member",
            Entry::TagObservation(_) => "tag-observation",
            Entry::Rebuilt(_) => "rebuilt",
        }
    }
}

impl TagStatement<'_> {
    /// SHA-256 of the statement's postcard encoding: what members sign.
    pub fn digest(&self) -> [u8; 32] {
        encoding_digest(self)
    }

    /// Signs the statement: this member resolved the tag to the digest.
    pub fn sign(&self, key: &SecretKey) -> Signed {
        Signed {
            signer: key.public().key_id(),
            signature: key.sign(Purpose::TagObservation, &self.digest()),
        }
    }

    /// Checks a signature by `key` over this statement.
    pub fn verify(&self, key: &PublicKey, signature: &Signature) -> bool {
        key.verify(Purpose::TagObservation, &self.digest(), signature)
            .is_ok()
    }

    /// The statement's postcard bytes, as members send it to each other.
    #[cfg(feature = "alloc")]
    pub fn to_bytes(&self) -> alloc::vec::Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

impl Statement<'_> {
    /// SHA-256 of the statement's postcard encoding: what attestations sign. Hashing while
    /// encoding keeps any number of outputs out of memory.
    pub fn digest(&self) -> [u8; 32] {
        encoding_digest(self)
    }

    /// Signs the statement as an attestation.
    pub fn sign(&self, key: &SecretKey) -> Signed {
        Signed {
            signer: key.public().key_id(),
            signature: key.sign(Purpose::Attestation, &self.digest()),
        }
    }

    /// Checks an attestation signature by `key` over this statement.
    pub fn verify(&self, key: &PublicKey, signature: &Signature) -> bool {
        key.verify(Purpose::Attestation, &self.digest(), signature)
            .is_ok()
    }
}

impl MembershipChange<'_> {
    /// What the previous epoch's members sign for this change of `origin`'s member set.
    pub fn message(&self, origin: &str, op: MembershipOp) -> [u8; 32] {
        encoding_digest(&(origin, op, self.epoch, self.key))
    }

    /// Signs this change as a member of the previous epoch.
    pub fn sign(&self, origin: &str, op: MembershipOp, key: &SecretKey) -> Signed {
        Signed {
            signer: key.public().key_id(),
            signature: key.sign(Purpose::Membership, &self.message(origin, op)),
        }
    }
}

/// SHA-256 of a value's postcard encoding, computed while encoding.
pub(crate) fn encoding_digest<T: Serialize>(value: &T) -> [u8; 32] {
    struct HashFlavor(Hasher);
    impl postcard::ser_flavors::Flavor for HashFlavor {
        type Output = Hasher;
        fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
            self.0.update(&[byte]);
            Ok(())
        }
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.update(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<Hasher> {
            Ok(self.0)
        }
    }
    match postcard::serialize_with_flavor(value, HashFlavor(Hasher::new())) {
        Ok(hasher) => *hasher.finish().as_bytes(),
        // The flavor never fails; an impossible error must still not verify anything.
        Err(_) => [0; 32],
    }
}

/// One signature and its signer: a 96-byte record of [`SignatureList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed {
    /// The signer's key id.
    pub signer: KeyId,
    /// The signature.
    pub signature: Signature,
}

impl Signed {
    /// The record's bytes: key id then signature.
    pub fn to_bytes(&self) -> [u8; 96] {
        let mut out = [0u8; 96];
        out[..32].copy_from_slice(&self.signer.0);
        out[32..].copy_from_slice(&self.signature.to_bytes());
        out
    }

    /// The bytes of a [`SignatureList`] of `signatures` (signer and signature), in order:
    /// what a commit, a tag observation or a membership change carries.
    #[cfg(feature = "alloc")]
    pub fn list_bytes<'s>(
        signatures: impl IntoIterator<Item = (&'s KeyId, &'s Signature)>,
    ) -> alloc::vec::Vec<u8> {
        signatures
            .into_iter()
            .flat_map(|(signer, signature)| {
                Signed {
                    signer: *signer,
                    signature: *signature,
                }
                .to_bytes()
            })
            .collect()
    }
}

macro_rules! record_list {
    ($(#[$doc:meta])* $name:ident, $item:ty, $len:expr, $parse:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name<'a>(#[serde(borrow)] pub &'a [u8]);

        impl<'a> $name<'a> {
            /// The size of one record in bytes.
            pub const RECORD_LEN: usize = $len;

            /// Whether the bytes hold whole records only (checked by [`Entry::decode`]).
            pub fn is_whole(&self) -> bool {
                self.0.len() % Self::RECORD_LEN == 0
            }

            /// The number of whole records.
            pub fn len(&self) -> usize {
                self.0.len() / Self::RECORD_LEN
            }

            /// Whether the list is empty.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The records in order; records that do not parse are skipped.
            pub fn iter(&self) -> impl Iterator<Item = $item> + 'a {
                self.0.chunks_exact(Self::RECORD_LEN).filter_map($parse)
            }
        }
    };
}

record_list!(
    /// SHA-256 digests, 32 bytes each.
    DigestList,
    Digest,
    SHA256_LEN,
    |c: &[u8]| c.try_into().ok().map(Digest::from_sha256_bytes)
);

record_list!(
    /// Ed25519 public keys, 32 bytes each; keys that are not curve points are skipped.
    KeyList,
    PublicKey,
    32,
    |c: &[u8]| c.try_into().ok().and_then(|b| PublicKey::from_bytes(b).ok())
);

record_list!(
    /// Signer key id and signature records, 96 bytes each.
    SignatureList,
    Signed,
    96,
    |c: &[u8]| {
        let signer = KeyId(c[..32].try_into().ok()?);
        let signature = Signature::from_bytes(c[32..].try_into().ok()?);
        Some(Signed { signer, signature })
    }
);

record_list!(
    /// Blob digests and their piece roots, 64 bytes each.
    PieceRootList,
    (Digest, Hash),
    64,
    |c: &[u8]| {
        let digest = Digest::from_sha256_bytes(c[..32].try_into().ok()?);
        let root: Hash = c[32..].try_into().ok()?;
        Some((digest, root))
    }
);

impl PieceRootList<'_> {
    /// The piece root committed for `digest`.
    pub fn root_of(&self, digest: &Digest) -> Option<Hash> {
        self.iter().find(|(d, _)| d == digest).map(|(_, r)| r)
    }
}

impl DigestList<'_> {
    /// Whether `digest` is one of the outputs.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.iter().any(|d| d == *digest)
    }
}
