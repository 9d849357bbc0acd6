//! What the store records about its content in fjall, encoded with postcard.

use pyrsia_core::digest::Digest;
use pyrsia_core::media_type::MediaType;
use serde::{Deserialize, Serialize};

/// What a stored blob is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobKind {
    /// A layer or config blob.
    Blob,
    /// A manifest or index, with its media type (what to send as `Content-Type`).
    Manifest(StoredMediaType),
}

/// [`MediaType`] in a stable on-disk form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredMediaType {
    /// Docker schema 2 manifest.
    DockerManifest,
    /// Docker manifest list.
    DockerManifestList,
    /// OCI manifest.
    OciManifest,
    /// OCI index.
    OciIndex,
}

impl From<MediaType> for StoredMediaType {
    fn from(m: MediaType) -> Self {
        match m {
            MediaType::DockerManifest | MediaType::DockerSchema1 => StoredMediaType::DockerManifest,
            MediaType::DockerManifestList => StoredMediaType::DockerManifestList,
            MediaType::OciManifest => StoredMediaType::OciManifest,
            MediaType::OciIndex => StoredMediaType::OciIndex,
        }
    }
}

impl From<StoredMediaType> for MediaType {
    fn from(m: StoredMediaType) -> Self {
        match m {
            StoredMediaType::DockerManifest => MediaType::DockerManifest,
            StoredMediaType::DockerManifestList => MediaType::DockerManifestList,
            StoredMediaType::OciManifest => MediaType::OciManifest,
            StoredMediaType::OciIndex => MediaType::OciIndex,
        }
    }
}

/// The record of one stored blob, keyed by its digest bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Size in bytes.
    pub size: u64,
    /// Last time it was served or stored, in milliseconds since the Unix epoch (for LRU).
    pub last_access_ms: u64,
    /// Blob or manifest.
    pub kind: BlobKind,
}

/// A tag's resolution as seen from an upstream at one moment: tags are mutable, so this is an
/// observation, not a fact. Offline, a tag resolves to its latest observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagObservation {
    /// The manifest digest the tag pointed at.
    pub digest: Digest,
    /// When it was observed, in milliseconds since the Unix epoch.
    pub observed_ms: u64,
}

/// The key of a tag observation: `host/repository:tag`.
pub fn tag_key(host: &str, repository: &str, tag: &str) -> String {
    format!("{host}/{repository}:{tag}")
}
