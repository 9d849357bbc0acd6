//! Image references as users type them (`alpine`, `alpine:3.20`, `ghcr.io/o/app@sha256:…`) and
//! Docker Hub normalisation (`alpine` → `docker.io/library/alpine`).

use core::fmt;

use super::{Host, HostError, NAME_LEN_MAX, Name, NameError, Tag, TagError};
use crate::digest::{Digest, DigestError};

/// A parsed image reference: registry host, repository name, optional tag and digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Registry host; `docker.io` when the reference names none.
    pub host: Host,
    /// Repository name as written (without any `library/` prefix added).
    pub name: Name<'a>,
    /// The tag, when one was given.
    pub tag: Option<Tag<'a>>,
    /// The digest, when one was given (`name@sha256:…` or `name:tag@sha256:…`).
    pub digest: Option<Digest>,
}

/// Why an image reference was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ImageRefError {
    /// The registry host part is malformed.
    Host(HostError),
    /// The repository name is malformed.
    Name(NameError),
    /// The tag is malformed.
    Tag(TagError),
    /// The digest is malformed.
    Digest(DigestError),
}

impl fmt::Display for ImageRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRefError::Host(e) => e.fmt(f),
            ImageRefError::Name(e) => e.fmt(f),
            ImageRefError::Tag(e) => e.fmt(f),
            ImageRefError::Digest(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ImageRefError {}

impl<'a> ImageRef<'a> {
    /// Parses a reference the way docker and containerd do: a first component containing `.`
    /// or `:`, or equal to `localhost`, is the registry host; otherwise the host is Docker Hub.
    pub fn parse(text: &'a str) -> Result<Self, ImageRefError> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(Digest::parse(digest).map_err(ImageRefError::Digest)?),
            ),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (rest, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let colon = last_slash + i;
                let tag = Tag::parse(&rest[colon + 1..]).map_err(ImageRefError::Tag)?;
                (&rest[..colon], Some(tag))
            }
            None => (rest, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((first, path)) if is_host_component(first) => {
                (Host::parse(first).map_err(ImageRefError::Host)?, path)
            }
            _ => (Host::docker_hub(), rest),
        };
        let name = Name::parse(path).map_err(ImageRefError::Name)?;
        let image = ImageRef {
            host,
            name,
            tag,
            digest,
        };
        // The spec's limit covers the registry host and the name together, as normalised.
        let path_len = image.repository_path().len();
        let full_len = image.host.as_str().len() + 1 + path_len;
        if full_len > NAME_LEN_MAX {
            return Err(ImageRefError::Name(NameError::TooLong { len: full_len }));
        }
        Ok(image)
    }

    /// The repository path to request from the registry (`library/alpine` for `alpine` on
    /// Docker Hub).
    pub fn repository_path(&self) -> RepositoryPath<'a> {
        RepositoryPath::new(&self.host, self.name)
    }
}

fn is_host_component(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

impl fmt::Display for ImageRef<'_> {
    /// The fully qualified form: `docker.io/library/alpine:3.20@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository_path())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Where Docker Hub keeps its official, single-component images.
const LIBRARY_PREFIX: &str = "library/";

/// A repository's path on its registry, with Docker Hub's implicit `library/` made explicit.
/// Formats without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RepositoryPath<'a> {
    name: Name<'a>,
    library: bool,
}

impl<'a> RepositoryPath<'a> {
    /// The path of `name` on `host`: one-component names on Docker Hub gain `library/`.
    pub fn new(host: &Host, name: Name<'a>) -> Self {
        RepositoryPath {
            name,
            library: host.is_docker_hub() && name.component_count() == 1,
        }
    }

    /// The name as the client wrote it.
    pub const fn name(&self) -> Name<'a> {
        self.name
    }

    /// Whether `library/` is prepended.
    pub const fn has_library_prefix(&self) -> bool {
        self.library
    }

    /// Length of the path in bytes, prefix included.
    pub fn len(&self) -> usize {
        self.name.as_str().len()
            + if self.library {
                LIBRARY_PREFIX.len()
            } else {
                0
            }
    }

    /// Always false: a repository path has at least one component.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for RepositoryPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.library {
            f.write_str(LIBRARY_PREFIX)?;
        }
        f.write_str(self.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_docker_hub() {
        for (input, expected) in [
            ("alpine", "docker.io/library/alpine"),
            ("alpine:3.20", "docker.io/library/alpine:3.20"),
            ("library/alpine", "docker.io/library/alpine"),
            ("docker.io/alpine", "docker.io/library/alpine"),
            ("index.docker.io/alpine:1", "docker.io/library/alpine:1"),
            ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
            ("ghcr.io/o/app", "ghcr.io/o/app"),
            ("ghcr.io/app", "ghcr.io/app"),
            ("localhost:5000/app:v1", "localhost:5000/app:v1"),
            ("localhost/app", "localhost/app"),
        ] {
            assert_eq!(
                ImageRef::parse(input).unwrap().to_string(),
                expected,
                "{input}"
            );
        }
        let with_digest = format!("alpine:3@{D}");
        let r = ImageRef::parse(&with_digest).unwrap();
        assert_eq!(r.tag.unwrap().as_str(), "3");
        assert_eq!(r.digest.unwrap().to_string(), D);
        assert_eq!(r.repository_path().to_string(), "library/alpine");
    }

    #[test]
    fn rejects_bad_references() {
        assert!(matches!(
            ImageRef::parse("Alpine"),
            Err(ImageRefError::Name(_))
        ));
        assert!(matches!(
            ImageRef::parse("alpine:"),
            Err(ImageRefError::Tag(_))
        ));
        assert!(matches!(
            ImageRef::parse("alpine@sha256:1"),
            Err(ImageRefError::Digest(_))
        ));
        assert!(matches!(
            ImageRef::parse("a..b:1/x"),
            Err(ImageRefError::Host(_))
        ));
        assert!(matches!(ImageRef::parse(""), Err(ImageRefError::Name(_))));
        // `..` looks like a host (it has a dot), as docker reads it, and is no valid one.
        assert!(matches!(
            ImageRef::parse("../x"),
            Err(ImageRefError::Host(_))
        ));
        assert!(matches!(
            ImageRef::parse("x/../y"),
            Err(ImageRefError::Name(_))
        ));
        // Found by the reference fuzz target: a name at the limit grows past it when
        // normalised; the limit is on the normalised form, which therefore always parses.
        let long = "a".repeat(240);
        assert!(matches!(
            ImageRef::parse(&long),
            Err(ImageRefError::Name(NameError::TooLong { len: 258 }))
        ));
        let fits = "a".repeat(255 - "docker.io/library/".len());
        let image = ImageRef::parse(&fits).unwrap();
        let normal = image.to_string();
        assert_eq!(ImageRef::parse(&normal).unwrap().to_string(), normal);
    }
}
