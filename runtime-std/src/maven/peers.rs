//! Files of committed Maven releases from peers. A Maven file has no index that gives its
//! digest, so peers are asked only for what the log committed for its release: the pom and
//! the main artifact. Which committed output is which file is core's rule: the pom is the
//! output that reads as this release's pom ([`release_files`]), the main artifact the one
//! other output when the pom's packaging names the requested extension
//! ([`committed_output`]; never a classifier). Every byte from a peer is checked against the
//! committed sha256 as it is stored; a peer whose bytes fail is struck.

use pyrsia_core::digest::Digest;
use pyrsia_core::package::maven_pom::{
    POM_LEN_MAX, RELEASE_OUTPUTS_MAX, committed_output, release_files,
};
use pyrsia_core::package::{Gav, MavenPath};

use super::{Maven, artifact_key};
use crate::packages::{PackageBlob, PackageError, read_small, record_file, stored_from_peers};

impl Maven {
    /// Whether the peers delivered the file at `path` and it is stored and recorded: only a
    /// release's pom or main artifact, and only when the log committed the release.
    pub(super) fn stored_from_peers(&self, path: &str) -> Result<bool, PackageError> {
        let Ok(MavenPath::Artifact {
            gav,
            snapshot: None,
            checksum: None,
            signature: false,
        }) = MavenPath::parse(path)
        else {
            return Ok(false);
        };
        let name = format!("{}:{}", gav.group, gav.artifact);
        let Ok(release) = Gav::release(&name, gav.version) else {
            return Ok(false);
        };
        let Some(outputs) = self.committed.get().and_then(|c| c(&name, gav.version)) else {
            return Ok(false);
        };
        if outputs.len() > RELEASE_OUTPUTS_MAX {
            return Ok(false);
        }
        let Some((pom, pom_bytes)) = self.committed_pom(&release, &outputs)? else {
            return Ok(false);
        };
        let Some(digest) = committed_output(&release, &pom_bytes, pom, &outputs, &gav) else {
            return Ok(false);
        };
        if !self.held_or_from_peers(digest)? {
            return Ok(false);
        }
        record_file(self.mirror.store(), &artifact_key(path), digest)?;
        tracing::info!(%digest, %path, "Maven artifact fetched from peers and verified against the log's commit");
        Ok(true)
    }

    /// The committed output that is `release`'s pom, with its bytes: the one this node holds,
    /// or the first output from peers that reads as the release's pom.
    fn committed_pom(
        &self,
        release: &Gav<'_>,
        outputs: &[Digest],
    ) -> Result<Option<(Digest, Vec<u8>)>, PackageError> {
        for digest in outputs {
            if !self.held_or_from_peers(*digest)? {
                continue;
            }
            let Some(blob) = self.mirror.store().open_blob(digest) else {
                continue;
            };
            let file = PackageBlob {
                digest: *digest,
                blob,
            };
            if let Some(bytes) = read_small(&file, POM_LEN_MAX)?
                && release_files(release, &bytes).is_ok()
            {
                let pom_path = release.path().to_string();
                record_file(self.mirror.store(), &artifact_key(&pom_path), *digest)?;
                return Ok(Some((*digest, bytes)));
            }
        }
        Ok(None)
    }

    /// Whether the file `digest` is stored: already, or now from peers.
    fn held_or_from_peers(&self, digest: Digest) -> Result<bool, PackageError> {
        if self.mirror.store().record(&digest).is_some() {
            return Ok(true);
        }
        stored_from_peers(&self.mirror, digest, "Maven artifact")
    }
}
