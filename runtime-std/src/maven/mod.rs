//! The Maven pull-through mirror (`--maven-upstream`): release artifacts (jars, poms, any
//! classifier and extension) are immutable, downloaded once, checked against the strongest
//! checksum file the repository publishes next to them
//! ([`pyrsia_core::package::maven_checksum`]), and stored under their sha256;
//! `maven-metadata.xml`, checksum files and signatures are documents, kept as last seen and
//! served from there when the upstream is down (metadata is mutable, like a tag). A
//! timestamped snapshot file is immutable like a release; a bare `-SNAPSHOT` file name moves,
//! so it is a document (held in memory, at most [`MAX_DOCUMENT_LEN`]).
//! The repository layout's grammar is `pyrsia_core::package::MavenPath`; this module does the IO.

mod from_log;
mod peers;

pub use from_log::{CommittedArtifacts, CommittedVersions};

use std::sync::{Arc, OnceLock};

use pyrsia_core::digest::Digest;
use pyrsia_core::package::maven_checksum::{CHECKSUMS_TRUSTED, ChecksumWriter, ExpectedChecksum};
use pyrsia_core::package::{Checksum, MavenPath};

use crate::mirror::Mirror;
use crate::packages::{
    Downloads, FileSource, PackageBlob, PackageError, download_checked, fetch_under, get,
    keep_document, kept_document, stored_under,
};
use crate::ttl_cache::{DOCUMENTS_HELD, TtlCache};

/// Maven Central, the default `--maven-upstream`.
pub const MAVEN_CENTRAL_URL: &str = "https://repo.maven.apache.org/maven2/";
/// The largest document (metadata, checksum, signature, snapshot file) read from the upstream.
pub const MAX_DOCUMENT_LEN: u64 = 64 << 20;
/// The largest checksum file read.
const MAX_CHECKSUM_LEN: u64 = 1024;

/// A document and whether it is the last one seen rather than a fresh one.
pub struct Document {
    /// Its bytes as the upstream sent them.
    pub bytes: Vec<u8>,
    /// True when the upstream could not be asked (down, or `--offline`).
    pub stale: bool,
    /// True when it was fetched from the upstream for this request (not answered from the
    /// TTL memory or the store): when its tags are worth reporting.
    pub fetched: bool,
}

impl Document {
    /// One kept from before (or made here) because the upstream cannot be asked.
    fn stale(bytes: Vec<u8>) -> Document {
        Document {
            bytes,
            stale: true,
            fetched: false,
        }
    }
}

/// The Maven mirror.
pub struct Maven {
    mirror: Arc<Mirror>,
    /// The upstream repository URL, ending in `/`.
    upstream: String,
    agent: ureq::Agent,
    downloads: Downloads,
    /// Documents fetched within the last `ttl`, by path.
    documents: TtlCache<Vec<u8>>,
    /// The outputs the log committed for a release: what peers are asked for.
    committed: OnceLock<CommittedRelease>,
    /// The log's committed releases and observed tags: metadata made from them when the
    /// upstream cannot be asked and none is kept.
    log: OnceLock<CommittedArtifacts>,
}

/// Looks up the outputs (the pom's and the main artifact's sha256) the log committed for the
/// release `groupId:artifactId` at `version`.
pub type CommittedRelease = Arc<dyn Fn(&str, &str) -> Option<Vec<Digest>> + Send + Sync>;

/// What a repository path names, for serving.
pub enum Served {
    /// A release artifact, checked and stored.
    Artifact(PackageBlob),
    /// A document (metadata, checksum, signature, snapshot file).
    Document(Document),
}

impl Maven {
    /// A mirror of the repository at `upstream`, storing into `mirror`'s store; a document
    /// fetched is answered from memory for `ttl`.
    pub fn new(mirror: Arc<Mirror>, upstream: &str, ttl: std::time::Duration) -> Maven {
        let agent = crate::upstream::agent(mirror.config().timeouts);
        Maven {
            mirror,
            upstream: format!("{}/", upstream.trim_end_matches('/')),
            agent,
            downloads: Downloads::default(),
            documents: TtlCache::new(ttl, DOCUMENTS_HELD),
            committed: OnceLock::new(),
            log: OnceLock::new(),
        }
    }

    /// Lets the files of committed releases come from peers: `committed` gives the outputs
    /// the log committed for a release (set once, by the node that holds the log).
    pub fn set_committed_releases(&self, committed: CommittedRelease) {
        let _ = self.committed.set(committed);
    }

    /// The upstream repository URL.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// What `path` (relative to the repository root, already parsed as `parsed`) names.
    pub fn get(&self, path: &str, parsed: &MavenPath<'_>) -> Result<Served, PackageError> {
        match parsed {
            // A timestamped snapshot file (`1.0-20240102.030405-7.jar`) never changes either;
            // only the bare `-SNAPSHOT` name moves.
            MavenPath::Artifact {
                gav,
                snapshot,
                checksum: None,
                signature: false,
            } if !gav.is_snapshot() || snapshot.is_some() => self
                .artifact(path, FileSource::PeersThenUpstream)
                .map(Served::Artifact),
            MavenPath::Artifact {
                checksum: Some(algorithm),
                signature: false,
                ..
            } => self
                .document(path)
                .or_else(|e| self.made_checksum(path, *algorithm).ok_or(e))
                .map(Served::Document),
            // An artifact's metadata: as the upstream serves it, the last one kept, or one
            // made from the log when neither can be had.
            MavenPath::Metadata {
                directory,
                checksum,
            } => self
                .document(path)
                .or_else(|e| match e {
                    PackageError::Unavailable(_) | PackageError::NotFound(_)
                        if self.unreachable(&e) =>
                    {
                        self.metadata_from_log(directory, *checksum).ok_or(e)
                    }
                    e => Err(e),
                })
                .map(Served::Document),
            _ => self.document(path).map(Served::Document),
        }
    }

    /// The `maven-metadata.xml` in `directory` (`org/example/lib`): as [`Maven::get`]
    /// serves it (fresh within the TTL, else the last one kept, marked stale).
    pub fn metadata(&self, directory: &str) -> Result<Document, PackageError> {
        self.document(&format!("{directory}/maven-metadata.xml"))
    }

    /// Whether `error` means the upstream could not be asked (it is down, or the node is
    /// offline), not that it answered.
    fn unreachable(&self, error: &PackageError) -> bool {
        matches!(error, PackageError::Unavailable(_)) || self.mirror.config().offline
    }

    /// The checksum file at `path` made from the stored artifact it is the checksum of, when
    /// the upstream's cannot be had (down, offline, or never published in that algorithm):
    /// the stored bytes were checked against the repository's checksum or the log's commit.
    fn made_checksum(&self, path: &str, algorithm: Checksum) -> Option<Document> {
        let artifact = path.strip_suffix(algorithm.suffix())?;
        let file = stored_under(&self.mirror, &artifact_key(artifact))?;
        let hex = checksum_of(&file, algorithm).ok()?;
        Some(Document::stale(hex.into_bytes()))
    }

    /// A release artifact at `path` (a pom, jar or any other immutable file): from the store,
    /// or downloaded from `source`, checked and stored.
    pub fn artifact(&self, path: &str, source: FileSource) -> Result<PackageBlob, PackageError> {
        fetch_under(
            &self.mirror,
            &self.downloads,
            &artifact_key(path),
            path,
            || {
                if source == FileSource::PeersThenUpstream && self.stored_from_peers(path)? {
                    return Ok(());
                }
                self.download(path)
            },
        )
    }

    /// A release artifact as the upstream publishes it now: from the store or `source`, and
    /// checked against the upstream's current checksum file even when it was stored before
    /// (a release the repository changed after this node stored it is not attested). What
    /// `maven-fetch/v1` builds with; it needs the upstream, as the other builders need a
    /// fresh index.
    pub fn artifact_as_published(
        &self,
        path: &str,
        source: FileSource,
    ) -> Result<PackageBlob, PackageError> {
        let file = self.artifact(path, source)?;
        let expected = self.expected_checksum(path)?;
        let mut checker = expected.checker();
        feed(&file, |bytes| checker.update(bytes))?;
        if !checker.matches() {
            return Err(PackageError::BadUpstream(format!(
                "the stored {path} is not what the upstream's {} checksum file gives now: the repository changed a release",
                expected.algorithm().suffix()
            )));
        }
        Ok(file)
    }

    /// The strongest checksum the upstream publishes for `path`.
    fn expected_checksum(&self, path: &str) -> Result<ExpectedChecksum, PackageError> {
        let metrics = self.mirror.metrics();
        for algorithm in CHECKSUMS_TRUSTED {
            let url = format!("{}{path}{}", self.upstream, algorithm.suffix());
            match get(&self.agent, metrics, &url, None, &url) {
                Ok(fetched) => {
                    let text = fetched.read_all(&url, MAX_CHECKSUM_LEN)?;
                    return ExpectedChecksum::parse(algorithm, &text)
                        .map_err(|e| PackageError::BadUpstream(format!("{url}: {e}")));
                }
                Err(PackageError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PackageError::BadUpstream(format!(
            "the upstream publishes no sha512, sha256 or sha1 checksum for {path}; this node serves verified artifacts only"
        )))
    }

    fn download(&self, path: &str) -> Result<(), PackageError> {
        let expected = self.expected_checksum(path)?;
        download_checked(
            &self.mirror,
            &self.agent,
            &format!("{}{path}", self.upstream),
            expected.checker(),
            &artifact_key(path),
            "Maven artifact",
            &format!("its {} checksum file", expected.algorithm().suffix()),
        )
    }

    /// A document: fetched (or within the last `ttl`), else the last one kept when the
    /// upstream is down or the node is offline.
    fn document(&self, path: &str) -> Result<Document, PackageError> {
        let key = document_key(path);
        let kept = || kept_document(self.mirror.store(), &key, MAX_DOCUMENT_LEN);
        if self.mirror.config().offline {
            return kept()
                .map(Document::stale)
                .ok_or_else(|| PackageError::NotFound(format!("{path} (offline, not cached)")));
        }
        if let Some(bytes) = self.documents.fresh(path) {
            return Ok(Document {
                bytes: (*bytes).clone(),
                stale: false,
                fetched: false,
            });
        }
        let url = format!("{}{path}", self.upstream);
        let fetched = self
            .mirror
            .download_slot()
            .map_err(|_| PackageError::Busy)
            .and_then(|_slot| {
                get(&self.agent, self.mirror.metrics(), &url, None, path)?
                    .read_all(&url, MAX_DOCUMENT_LEN)
            });
        match fetched {
            Ok(bytes) => {
                self.mirror.metrics().upstream_up.set(1);
                self.documents
                    .insert(path.to_string(), Arc::new(bytes.clone()));
                if let Err(e) = keep_document(self.mirror.store(), &key, &bytes) {
                    tracing::warn!(%path, error = %e, "could not keep the Maven document");
                }
                Ok(Document {
                    bytes,
                    stale: false,
                    fetched: true,
                })
            }
            Err(PackageError::Unavailable(why)) => {
                self.mirror.metrics().upstream_up.set(0);
                match kept() {
                    Some(bytes) => {
                        tracing::info!(%path, %why, "upstream repository down; serving the last document seen");
                        Ok(Document::stale(bytes))
                    }
                    None => Err(PackageError::Unavailable(why)),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// The checksum file of type `algorithm` for a stored artifact, made from its bytes (what a
/// `--verified-only` node serves: the upstream's file was not part of what the log checked).
/// Md5 is [`PackageError::NotFound`]: this node does not make one, and Maven then asks for
/// the `.sha1`.
pub fn checksum_of(file: &PackageBlob, algorithm: Checksum) -> Result<String, PackageError> {
    let mut writer = ChecksumWriter::new(algorithm).ok_or_else(|| {
        PackageError::NotFound(format!(
            "{} checksum (not made by this node)",
            algorithm.suffix()
        ))
    })?;
    feed(file, |bytes| writer.update(bytes))?;
    Ok(writer.finish().to_string())
}

/// Reads a stored file from its start through `update`, and leaves it at its start again.
fn feed(file: &PackageBlob, mut update: impl FnMut(&[u8])) -> Result<(), PackageError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut handle = &file.blob.file;
    let mut buffer = vec![0u8; 64 << 10];
    let read_error =
        |e: std::io::Error| PackageError::Store(format!("reading {}: {e}", file.digest));
    handle.seek(SeekFrom::Start(0)).map_err(read_error)?;
    loop {
        let n = handle.read(&mut buffer).map_err(read_error)?;
        if n == 0 {
            break;
        }
        update(&buffer[..n]);
    }
    handle.seek(SeekFrom::Start(0)).map_err(read_error)?;
    Ok(())
}

/// Where the sha256 of the release artifact at `path` is recorded.
fn artifact_key(path: &str) -> String {
    format!("maven-artifact/{path}")
}

/// Where the last document seen at `path` is recorded.
fn document_key(path: &str) -> String {
    format!("maven/{path}")
}
