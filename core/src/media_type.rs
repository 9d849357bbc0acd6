//! The manifest media types a registry mirror must tell apart. Needs no allocator, so the
//! router can negotiate content on any target.

use core::fmt;

/// A manifest media type Pyrsia recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MediaType {
    /// Docker image manifest, schema 2.
    DockerManifest,
    /// Docker manifest list (multi-platform), schema 2.
    DockerManifestList,
    /// OCI image manifest.
    OciManifest,
    /// OCI image index (multi-platform).
    OciIndex,
    /// Docker schema 1 (signed or not): recognised so it can be refused clearly; it is
    /// deprecated and carries no content-addressed config.
    DockerSchema1,
}

impl MediaType {
    /// Every media type a mirror asks an upstream for, in preference order. Schema 1 is left
    /// out on purpose.
    pub const PULLABLE: [MediaType; 4] = [
        MediaType::OciIndex,
        MediaType::DockerManifestList,
        MediaType::OciManifest,
        MediaType::DockerManifest,
    ];

    /// Recognises a `Content-Type`/`mediaType` value; parameters after `;` and surrounding
    /// whitespace are ignored, the comparison is case-insensitive (RFC 9110 §8.3.1).
    pub fn parse(text: &str) -> Option<Self> {
        let essence = text.split(';').next().unwrap_or("").trim();
        [
            MediaType::DockerManifest,
            MediaType::DockerManifestList,
            MediaType::OciManifest,
            MediaType::OciIndex,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(essence))
        .or_else(|| {
            let schema1 = essence
                .eq_ignore_ascii_case("application/vnd.docker.distribution.manifest.v1+json")
                || essence.eq_ignore_ascii_case(
                    "application/vnd.docker.distribution.manifest.v1+prettyjws",
                );
            schema1.then_some(MediaType::DockerSchema1)
        })
    }

    /// The media type string.
    pub const fn as_str(self) -> &'static str {
        match self {
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::DockerSchema1 => "application/vnd.docker.distribution.manifest.v1+prettyjws",
        }
    }

    /// Whether this lists other manifests (one per platform) rather than layers.
    pub const fn is_index(self) -> bool {
        matches!(self, MediaType::DockerManifestList | MediaType::OciIndex)
    }

    /// A small bit for [`crate::registry::AcceptSet`].
    pub(crate) const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_parameters() {
        for m in MediaType::PULLABLE {
            assert_eq!(MediaType::parse(m.as_str()), Some(m));
        }
        assert_eq!(
            MediaType::parse(" application/vnd.OCI.image.index.v1+json; charset=utf-8"),
            Some(MediaType::OciIndex)
        );
        assert_eq!(
            MediaType::parse("application/vnd.docker.distribution.manifest.v1+json"),
            Some(MediaType::DockerSchema1)
        );
        assert_eq!(MediaType::parse("application/json"), None);
        assert_eq!(MediaType::parse(""), None);
    }
}
