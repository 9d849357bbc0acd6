//! What makes [`Coordinates`] valid for their ecosystem, the build type that fetches each
//! ecosystem, and the one name the log's index keys an artifact by ([`Coordinates::subject`]).
//!
//! A Docker image and a package can share nothing but their ecosystem field, so the index keys
//! packages by `{ecosystem}:{name}` (`pypi:requests`, `npm:@scope/pkg`) and images by their
//! canonical name as before. The keys cannot collide because [`Coordinates::check`] holds for
//! every entry the log accepts: an image name has a `/` and no `@`, while a package key has
//! either no `/` (`npm:left-pad`, `pypi:requests`, `maven:org.example:lib`) or an `@`
//! (`npm:@scope/pkg`); no ecosystem name has a `:`, so the key's first `:` ends it.

use core::fmt;

use super::entry::{
    Coordinates, DOCKER_FETCH_V1, ECOSYSTEM_DOCKER, ECOSYSTEM_MAVEN, ECOSYSTEM_NPM, ECOSYSTEM_PYPI,
    MAVEN_FETCH_V1, NPM_FETCH_V1, PYPI_FETCH_V1,
};
use super::rebuilt::{
    ECOSYSTEM_NPM_REBUILD, ECOSYSTEM_PYPI_REBUILD, NPM_REBUILD_V1, PYPI_REBUILD_V1,
};
use crate::digest::Digest;
use crate::package::{
    Gav, GavError, MAVEN_TAGS, MavenSegment, NpmName, NpmVersion, Pep440, ProjectName, is_dist_tag,
};

/// The longest name or version coordinates may carry, in bytes.
pub const COORDINATE_LEN_MAX: usize = 512;

/// Why coordinates were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CoordinatesError {
    /// An ecosystem this log does not know.
    UnknownEcosystem,
    /// A name that is not one of its ecosystem (for images: without a `/`, or with an `@`).
    BadName,
    /// A version that is not one of its ecosystem.
    BadVersion,
    /// A tag an ecosystem does not have (PyPI has none; Maven's are `release` and `latest`;
    /// an npm dist-tag never reads as a version).
    BadTag,
}

impl fmt::Display for CoordinatesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoordinatesError::UnknownEcosystem => "unknown ecosystem",
            CoordinatesError::BadName => "name is not valid in its ecosystem",
            CoordinatesError::BadVersion => "version is not valid in its ecosystem",
            CoordinatesError::BadTag => "tag is not one its ecosystem has",
        })
    }
}

impl core::error::Error for CoordinatesError {}

/// The build type members run for a request of `ecosystem`: for a package ecosystem the one
/// that fetches an artifact from its upstream and checks the registry's own digest; for a
/// rebuild ecosystem ([`crate::tlog::rebuilt`]) the one that rebuilds it from its source.
pub fn fetch_build_type(ecosystem: &str) -> Option<&'static str> {
    match ecosystem {
        ECOSYSTEM_DOCKER => Some(DOCKER_FETCH_V1),
        ECOSYSTEM_NPM => Some(NPM_FETCH_V1),
        ECOSYSTEM_PYPI => Some(PYPI_FETCH_V1),
        ECOSYSTEM_MAVEN => Some(MAVEN_FETCH_V1),
        ECOSYSTEM_PYPI_REBUILD => Some(PYPI_REBUILD_V1),
        ECOSYSTEM_NPM_REBUILD => Some(NPM_REBUILD_V1),
        _ => None,
    }
}

impl Coordinates<'_> {
    /// Checks the coordinates against their ecosystem's grammar: an image name has a `/`
    /// and no `@` (its version is a digest or, in a tag observation, a tag); an npm name and
    /// semver version; a PyPI project name in normalised form and a PEP 440 version, in
    /// lower case as file names spell it; a Maven `groupId:artifactId` and a release version
    /// (not a `-SNAPSHOT`). A rebuild ecosystem's coordinates are those of the ecosystem it
    /// rebuilds ([`crate::tlog::rebuilt`]).
    pub fn check(&self) -> Result<(), CoordinatesError> {
        if self.name.len() > COORDINATE_LEN_MAX || self.version.len() > COORDINATE_LEN_MAX {
            return Err(CoordinatesError::BadName);
        }
        match self.ecosystem {
            ECOSYSTEM_DOCKER => {
                if !self.name.contains('/') || self.name.contains('@') {
                    return Err(CoordinatesError::BadName);
                }
            }
            ECOSYSTEM_NPM | ECOSYSTEM_NPM_REBUILD => {
                NpmName::parse(self.name).map_err(|_| CoordinatesError::BadName)?;
                NpmVersion::parse(self.version).map_err(|_| CoordinatesError::BadVersion)?;
            }
            ECOSYSTEM_PYPI | ECOSYSTEM_PYPI_REBUILD => {
                let project =
                    ProjectName::parse(self.name).map_err(|_| CoordinatesError::BadName)?;
                if !project.is_normalized() {
                    return Err(CoordinatesError::BadName);
                }
                Pep440::parse(self.version).map_err(|_| CoordinatesError::BadVersion)?;
                if self.version.bytes().any(|c| c.is_ascii_uppercase()) {
                    return Err(CoordinatesError::BadVersion);
                }
            }
            ECOSYSTEM_MAVEN => match Gav::release(self.name, self.version) {
                Ok(_) => {}
                Err(GavError::Segment(MavenSegment::Version)) => {
                    return Err(CoordinatesError::BadVersion);
                }
                Err(_) => return Err(CoordinatesError::BadName),
            },
            _ => return Err(CoordinatesError::UnknownEcosystem),
        }
        Ok(())
    }
}

impl Coordinates<'_> {
    /// Checks the coordinates of a tag observation (the tag in `version`): the name as
    /// [`Coordinates::check`] wants it, and a tag of the ecosystem: any for images (the
    /// registry's tag grammar is the mirror's), an npm dist-tag ([`is_dist_tag`]), Maven's
    /// `release` or `latest` ([`MAVEN_TAGS`]); PyPI has no tags.
    pub fn check_tag(&self) -> Result<(), CoordinatesError> {
        let name_only = |version| Coordinates { version, ..*self }.check();
        if self.version.is_empty() || self.version.len() > COORDINATE_LEN_MAX {
            return Err(CoordinatesError::BadTag);
        }
        match self.ecosystem {
            ECOSYSTEM_DOCKER => self.check(),
            ECOSYSTEM_NPM if is_dist_tag(self.version) => name_only("0.0.0"),
            ECOSYSTEM_MAVEN if MAVEN_TAGS.contains(&self.version) => name_only("1"),
            ECOSYSTEM_NPM
            | ECOSYSTEM_MAVEN
            | ECOSYSTEM_PYPI
            | ECOSYSTEM_PYPI_REBUILD
            | ECOSYSTEM_NPM_REBUILD => Err(CoordinatesError::BadTag),
            _ => Err(CoordinatesError::UnknownEcosystem),
        }
    }
}

/// The digest a tag observation records when the tag names `version` of `ecosystem`: an
/// image's manifest digest (its version in the log), else the SHA-256 of the outputs list
/// of the version's `Commit` (`outputs`, the list's bytes; `None` while it is not committed).
/// A package tag thus names one commit, whatever files the version has.
pub fn tag_target(ecosystem: &str, version: &str, outputs: Option<&[u8]>) -> Option<Digest> {
    if ecosystem == ECOSYSTEM_DOCKER {
        Digest::parse(version).ok()
    } else {
        outputs.map(Digest::sha256)
    }
}

#[cfg(feature = "alloc")]
impl<'a> Coordinates<'a> {
    /// The name the log's index keys these coordinates by (see the module documentation).
    pub fn subject(&self) -> alloc::borrow::Cow<'a, str> {
        subject(self.ecosystem, self.name)
    }
}

/// The index key of `name` in `ecosystem`: the name itself for images, `{ecosystem}:{name}`
/// for packages. Call it to look a package up by name in the log's index.
#[cfg(feature = "alloc")]
pub fn subject<'a>(ecosystem: &str, name: &'a str) -> alloc::borrow::Cow<'a, str> {
    if ecosystem == ECOSYSTEM_DOCKER {
        alloc::borrow::Cow::Borrowed(name)
    } else {
        alloc::borrow::Cow::Owned(alloc::format!("{ecosystem}:{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of<'a>(ecosystem: &'a str, name: &'a str, version: &'a str) -> Coordinates<'a> {
        Coordinates {
            ecosystem,
            name,
            version,
        }
    }

    #[test]
    fn valid_coordinates_of_each_ecosystem_pass() {
        for c in [
            of("docker", "docker.io/library/alpine", "sha256:00"),
            of("docker", "127.0.0.1:5000/team/app", "latest"),
            of("npm", "left-pad", "1.3.0"),
            of("npm", "@scope/pkg", "2.0.0-rc.1"),
            of("pypi", "requests", "2.31.0"),
            of("pypi", "zope-interface", "1!2.0rc1.post3"),
            of("maven", "org.example:lib", "1.0"),
            of("maven", "io.netty:netty-all", "4.1.100.Final"),
        ] {
            assert_eq!(c.check(), Ok(()), "{c:?}");
        }
    }

    #[test]
    fn coordinates_outside_their_grammar_are_refused() {
        for (c, why) in [
            (
                of("cargo", "serde", "1.0.0"),
                CoordinatesError::UnknownEcosystem,
            ),
            (of("maven", "org.example", "1.0"), CoordinatesError::BadName),
            (
                of("maven", "org.example:lib:jar", "1.0"),
                CoordinatesError::BadName,
            ),
            (
                of("maven", "org.example:lib", "1.0-SNAPSHOT"),
                CoordinatesError::BadVersion,
            ),
            (
                of("maven", "org.example:lib", "1/0"),
                CoordinatesError::BadVersion,
            ),
            (
                of("docker", "npm:left-pad", "sha256:00"),
                CoordinatesError::BadName,
            ),
            (
                of("docker", "npm:@scope/pkg", "sha256:00"),
                CoordinatesError::BadName,
            ),
            (of("npm", "Left Pad", "1.0.0"), CoordinatesError::BadName),
            (of("npm", "left-pad", "v1.0"), CoordinatesError::BadVersion),
            (
                of("pypi", "Zope.Interface", "1.0"),
                CoordinatesError::BadName,
            ),
            (
                of("pypi", "requests", "1.0RC1"),
                CoordinatesError::BadVersion,
            ),
            (
                of("pypi", "requests", "1.0 or so"),
                CoordinatesError::BadVersion,
            ),
        ] {
            assert_eq!(c.check(), Err(why), "{c:?}");
        }
    }

    #[test]
    fn package_subjects_never_equal_an_image_name_or_each_other() {
        assert_eq!(
            subject("docker", "docker.io/library/x"),
            "docker.io/library/x"
        );
        assert_eq!(subject("npm", "requests"), "npm:requests");
        assert_eq!(subject("pypi", "requests"), "pypi:requests");
        assert_eq!(of("npm", "@s/p", "1.0.0").subject(), "npm:@s/p");
        // A valid image name has a '/' and no '@'; every package subject lacks one of them.
        assert_eq!(of("maven", "g:a", "1").subject(), "maven:g:a");
        for s in ["npm:requests", "pypi:requests", "npm:@s/p", "maven:g:a"] {
            assert!(of("docker", s, "sha256:00").check().is_err());
        }
    }

    #[test]
    fn tags_follow_their_ecosystems_tag_grammar() {
        for c in [
            of("docker", "docker.io/library/alpine", "3.19"),
            of("npm", "left-pad", "latest"),
            of("npm", "@scope/pkg", "next"),
            of("maven", "org.example:lib", "release"),
            of("maven", "org.example:lib", "latest"),
        ] {
            assert_eq!(c.check_tag(), Ok(()), "{c:?}");
        }
        for (c, error) in [
            (of("npm", "left-pad", "1.0.0"), CoordinatesError::BadTag),
            (of("npm", "left-pad", ""), CoordinatesError::BadTag),
            (of("npm", "Left Pad", "latest"), CoordinatesError::BadName),
            (of("pypi", "requests", "latest"), CoordinatesError::BadTag),
            (
                of("maven", "org.example:lib", "1.0"),
                CoordinatesError::BadTag,
            ),
            (of("maven", "lib", "release"), CoordinatesError::BadName),
            (
                of("cargo", "serde", "latest"),
                CoordinatesError::UnknownEcosystem,
            ),
        ] {
            assert_eq!(c.check_tag(), Err(error), "{c:?}");
        }
    }

    #[test]
    fn a_package_tag_target_is_its_commits_outputs_digest_and_an_image_tags_its_manifest() {
        let manifest = Digest::sha256(b"manifest");
        assert_eq!(
            tag_target("docker", &manifest.to_string(), None),
            Some(manifest)
        );
        assert_eq!(tag_target("npm", "1.0.0", None), None);
        assert_eq!(
            tag_target("npm", "1.0.0", Some(b"outputs")),
            Some(Digest::sha256(b"outputs"))
        );
    }
}
