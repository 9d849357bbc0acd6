//! An artifact's `maven-metadata.xml` made from the log, for a node that has none from the
//! upstream (it is down, or the node is `--offline`) and never kept one: the releases the log
//! committed and the `release` and `latest` it observed among them
//! ([`from_log`](pyrsia_core::package::maven_metadata::from_log), core's rule), served stale.
//! Version ranges then resolve among what the network committed, whose files come from
//! peers by the sha256s the commits list.

use std::sync::Arc;

use pyrsia_core::package::Checksum;
use pyrsia_core::package::maven_checksum::ChecksumWriter;
use pyrsia_core::package::maven_metadata::{artifact_of, from_log};

use super::{Document, Maven};
use crate::packages::ObservedTags;

/// Looks up the versions of a Maven artifact (`groupId:artifactId`) the log committed.
pub type CommittedVersions = Arc<dyn Fn(&str) -> Vec<String> + Send + Sync>;

/// What the log holds about Maven artifacts, for metadata made from it.
pub struct CommittedArtifacts {
    /// The committed versions of an artifact.
    pub versions: CommittedVersions,
    /// The tags of an artifact the log observed.
    pub tags: ObservedTags,
}

impl Maven {
    /// Lets the node make an artifact's metadata from the log when it has none from the
    /// upstream (set once, by the node that holds the log).
    pub fn set_committed_artifacts(&self, committed: CommittedArtifacts) {
        let _ = self.log.set(committed);
    }

    /// The metadata in `directory` (`org/example/lib`), or its checksum of `algorithm`,
    /// made from the log: `None` unless the directory is an artifact's and the log
    /// committed a release of it.
    pub(super) fn metadata_from_log(
        &self,
        directory: &str,
        checksum: Option<Checksum>,
    ) -> Option<Document> {
        let committed = self.log.get()?;
        let name = artifact_of(directory)?;
        let (group, artifact) = name.split_once(':')?;
        let versions = (committed.versions)(&name);
        if versions.is_empty() {
            return None;
        }
        let made = from_log(group, artifact, &versions, &(committed.tags)(&name));
        if made.is_empty() {
            return None;
        }
        tracing::info!(%name, versions = versions.len(), "serving Maven metadata made from the log");
        let bytes = match checksum {
            None => made.into_bytes(),
            Some(algorithm) => {
                let mut writer = ChecksumWriter::new(algorithm)?;
                writer.update(made.as_bytes());
                writer.finish().as_bytes().to_vec()
            }
        };
        Some(Document::stale(bytes))
    }
}
