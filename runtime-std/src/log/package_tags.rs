//! Package tags as the upstreams set them: an npm packument's dist-tags, a Maven artifact's
//! `maven-metadata.xml` `release` and `latest`. The mirror reports the tags of what it serves
//! ([`PackageTags`]); a member resolves another member's tag query at its own upstream
//! ([`PackageSources::upstream_tag`]). Which tags the log may record, and when, is core's
//! rule ([`Packument::dist_tags`], [`maven_metadata::tags`], `Coordinates::check_tag`, the
//! member node's tag observations); this module does the IO.
//!
//! [`Packument::dist_tags`]: pyrsia_core::package::npm_registry::Packument::dist_tags

use pyrsia_core::package::NpmName;
use pyrsia_core::package::maven_metadata;
use pyrsia_core::package::npm_registry::{Packument, PackumentFormat};
use pyrsia_core::tlog::entry::{Coordinates, ECOSYSTEM_MAVEN, ECOSYSTEM_NPM};

use super::PackageSources;

/// The tags one package's metadata document set when the mirror served it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PackageTags {
    /// [`ECOSYSTEM_NPM`] or [`ECOSYSTEM_MAVEN`].
    pub ecosystem: &'static str,
    /// The npm name or the Maven `groupId:artifactId`.
    pub name: String,
    /// (tag, version it names), as core's grammar for the ecosystem keeps them.
    pub tags: Vec<(String, String)>,
}

impl PackageTags {
    /// The dist-tags of `name`'s packument the log may record.
    pub fn npm(name: &NpmName<'_>, packument: &Packument) -> PackageTags {
        PackageTags {
            ecosystem: ECOSYSTEM_NPM,
            name: name.to_string(),
            tags: packument.dist_tags(),
        }
    }

    /// The `release` and `latest` of the Maven artifact `name` (`groupId:artifactId`) that
    /// `metadata` sets; `None` for a document core cannot read.
    pub fn maven(name: &str, metadata: &[u8]) -> Option<PackageTags> {
        let tags = maven_metadata::tags(metadata).ok()?;
        Some(PackageTags {
            ecosystem: ECOSYSTEM_MAVEN,
            name: name.to_string(),
            tags: tags
                .into_iter()
                .map(|(tag, version)| (tag.to_string(), version.to_string()))
                .collect(),
        })
    }

    /// Each tag's coordinates (the tag in `version`) and the version it names.
    pub fn each(&self) -> impl Iterator<Item = (Coordinates<'_>, &str)> + '_ {
        self.tags.iter().map(|(tag, version)| {
            let tag = Coordinates {
                ecosystem: self.ecosystem,
                name: &self.name,
                version: tag,
            };
            (tag, version.as_str())
        })
    }
}

impl PackageSources {
    /// The tags the upstream of `ecosystem` sets for `name` now: from a packument or
    /// metadata document fetched fresh (within `--index-ttl`, as the builders read them),
    /// never the one kept from before the upstream went down.
    pub fn upstream_tags(&self, ecosystem: &str, name: &str) -> Result<PackageTags, String> {
        match ecosystem {
            ECOSYSTEM_NPM => {
                let name = NpmName::parse(name).map_err(|e| e.to_string())?;
                let document = self
                    .npm
                    .packument(&name, PackumentFormat::Abbreviated)
                    .map_err(|e| e.to_string())?;
                if document.stale {
                    return Err("the upstream registry is unreachable".into());
                }
                Ok(PackageTags::npm(&name, &document.packument))
            }
            ECOSYSTEM_MAVEN => {
                let directory = maven_metadata::directory_of(name)
                    .ok_or_else(|| format!("{name:?}: not a Maven artifact"))?;
                let document = self.maven.metadata(&directory).map_err(|e| e.to_string())?;
                if document.stale {
                    return Err("the upstream repository is unreachable".into());
                }
                PackageTags::maven(name, &document.bytes)
                    .ok_or_else(|| format!("{directory}/maven-metadata.xml is not readable"))
            }
            other => Err(format!("{other:?} has no tags")),
        }
    }

    /// The version tag `tag` of `name` names at the upstream of `ecosystem` now: what a
    /// member answers another member's tag query with.
    pub fn upstream_tag(&self, ecosystem: &str, name: &str, tag: &str) -> Result<String, String> {
        let tags = self.upstream_tags(ecosystem, name)?;
        tags.tags
            .into_iter()
            .find_map(|(t, version)| (t == tag).then_some(version))
            .ok_or_else(|| format!("the upstream sets no tag {tag:?} for {name}"))
    }
}
