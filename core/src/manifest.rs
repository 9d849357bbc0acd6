//! Image manifests: recognise Docker schema 2 manifests and manifest lists, OCI manifests and
//! indexes, and list the descriptors they reference (config, layers, per-platform children).
//!
//! Parsing reads just enough to know what to fetch and verify; the manifest bytes themselves
//! are kept and served unchanged, since their digest is over the exact bytes.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::Deserialize;

use crate::digest::{Digest, DigestError};
use crate::media_type::MediaType;

/// The largest manifest accepted, in bytes (distribution's limit).
pub const MANIFEST_LEN_MAX: usize = 4 * 1024 * 1024;

/// A content descriptor: what a manifest points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// The target's media type, as written (layers use many types Pyrsia need not know).
    pub media_type: String,
    /// The target's digest.
    pub digest: Digest,
    /// The target's size in bytes.
    pub size: u64,
    /// For children of an index: the platform the child manifest is for.
    pub platform: Option<Platform>,
}

/// The platform of one child manifest of an index.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// CPU variant (`v7`, `v8`), when relevant.
    #[serde(default)]
    pub variant: Option<String>,
    /// Operating system version (Windows images).
    #[serde(default, rename = "os.version")]
    pub os_version: Option<String>,
}

/// A parsed manifest or index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    media_type: MediaType,
    config: Option<Descriptor>,
    layers: Vec<Descriptor>,
    manifests: Vec<Descriptor>,
}

/// Why manifest bytes were rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// Larger than [`MANIFEST_LEN_MAX`].
    TooLarge {
        /// Size found.
        len: usize,
    },
    /// Not JSON, or JSON of the wrong shape (a negative size, a string where a list goes).
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// `schemaVersion` is missing or not 2.
    UnsupportedSchemaVersion,
    /// Docker schema 1, deprecated and not content-addressable in the same way.
    Schema1,
    /// A `mediaType` that is not a manifest or index type.
    UnknownMediaType,
    /// The body's `mediaType` contradicts the `Content-Type` it came with.
    MediaTypeMismatch,
    /// A field the media type requires is absent (`config`, `layers`, `manifests`).
    MissingField(&'static str),
    /// Both `layers` and `manifests`: neither a manifest nor an index.
    Ambiguous,
    /// A descriptor's digest is malformed.
    InvalidDigest(DigestError),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooLarge { len } => {
                write!(f, "manifest of {len} bytes exceeds {MANIFEST_LEN_MAX}")
            }
            ManifestError::InvalidJson { line, column } => {
                write!(
                    f,
                    "manifest is not valid JSON of the expected shape (line {line}, column {column})"
                )
            }
            ManifestError::UnsupportedSchemaVersion => {
                f.write_str("manifest schemaVersion must be 2")
            }
            ManifestError::Schema1 => f.write_str("Docker schema 1 manifests are not supported"),
            ManifestError::UnknownMediaType => f.write_str("unknown manifest media type"),
            ManifestError::MediaTypeMismatch => {
                f.write_str("manifest mediaType contradicts its Content-Type")
            }
            ManifestError::MissingField(field) => {
                write!(f, "manifest lacks required field {field}")
            }
            ManifestError::Ambiguous => f.write_str("manifest has both layers and manifests"),
            ManifestError::InvalidDigest(e) => {
                write!(f, "manifest references an invalid digest: {e}")
            }
        }
    }
}

impl core::error::Error for ManifestError {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

impl RawDescriptor {
    fn validate(self) -> Result<Descriptor, ManifestError> {
        Ok(Descriptor {
            digest: Digest::parse(&self.digest).map_err(ManifestError::InvalidDigest)?,
            media_type: self.media_type,
            size: self.size,
            platform: self.platform,
        })
    }
}

fn validate_all(raw: Option<Vec<RawDescriptor>>) -> Result<Vec<Descriptor>, ManifestError> {
    raw.unwrap_or_default()
        .into_iter()
        .map(RawDescriptor::validate)
        .collect()
}

impl Manifest {
    /// Parses manifest bytes. `content_type` is the `Content-Type` they were served with, if
    /// any: it decides the kind when the body has no `mediaType` (allowed for OCI) and must
    /// agree with it when both are present.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        if bytes.len() > MANIFEST_LEN_MAX {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::InvalidJson {
                line: e.line(),
                column: e.column(),
            })?;
        let media_type = Self::kind(&raw, content_type)?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::UnsupportedSchemaVersion);
        }
        if raw.layers.is_some() && raw.manifests.is_some() {
            return Err(ManifestError::Ambiguous);
        }
        if media_type.is_index() {
            if raw.manifests.is_none() {
                return Err(ManifestError::MissingField("manifests"));
            }
        } else {
            if raw.config.is_none() {
                return Err(ManifestError::MissingField("config"));
            }
            if raw.layers.is_none() {
                return Err(ManifestError::MissingField("layers"));
            }
        }
        Ok(Manifest {
            media_type,
            config: raw.config.map(RawDescriptor::validate).transpose()?,
            layers: validate_all(raw.layers)?,
            manifests: validate_all(raw.manifests)?,
        })
    }

    fn kind(raw: &RawManifest, content_type: Option<&str>) -> Result<MediaType, ManifestError> {
        let header = content_type.and_then(MediaType::parse);
        let body = match raw.media_type.as_deref() {
            Some(text) => Some(MediaType::parse(text).ok_or(ManifestError::UnknownMediaType)?),
            None => None,
        };
        if body == Some(MediaType::DockerSchema1) || header == Some(MediaType::DockerSchema1) {
            return Err(ManifestError::Schema1);
        }
        match (body, header) {
            (Some(b), Some(h)) if b != h => Err(ManifestError::MediaTypeMismatch),
            (Some(m), _) | (None, Some(m)) => Ok(m),
            (None, None) if raw.manifests.is_some() => Ok(MediaType::OciIndex),
            (None, None) if raw.config.is_some() => Ok(MediaType::OciManifest),
            (None, None) if raw.schema_version == Some(1) => Err(ManifestError::Schema1),
            (None, None) => Err(ManifestError::UnknownMediaType),
        }
    }

    /// The manifest's media type (what to send as `Content-Type`).
    pub fn media_type(&self) -> MediaType {
        self.media_type
    }

    /// Whether this is an index / manifest list.
    pub fn is_index(&self) -> bool {
        self.media_type.is_index()
    }

    /// The image config blob (manifests only).
    pub fn config(&self) -> Option<&Descriptor> {
        self.config.as_ref()
    }

    /// The layer blobs, base first (manifests only).
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The child manifests with their platforms (indexes only).
    pub fn manifests(&self) -> &[Descriptor] {
        &self.manifests
    }

    /// Every descriptor referenced: config, then layers, then child manifests.
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
    }

    /// The child manifest of an index for a platform (`variant` `None` matches any).
    pub fn manifest_for(
        &self,
        os: &str,
        architecture: &str,
        variant: Option<&str>,
    ) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            d.platform.as_ref().is_some_and(|p| {
                p.os == os
                    && p.architecture == architecture
                    && (variant.is_none() || p.variant.as_deref() == variant)
            })
        })
    }
}

#[cfg(test)]
mod tests;
