//! The background builder of a sole member: package versions go to the package builders
//! ([`super::package_verifier`]); for each image the mirror passed through (`docker-fetch/v1`), fetch every manifest and blob it consists of from the trusted upstream
//! (through the mirror, so the bytes land in the store), hash each one, and commit the
//! outputs to the log. Pulls are never delayed by it; a failed job is retried by the next
//! pull of the same image.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use pyrsia_core::digest::{Digest, Hasher};
use pyrsia_core::manifest::Manifest;
use pyrsia_core::pieces::{PieceHasher, piece_root};
use pyrsia_core::reference::{Host, Name, Reference, RepositoryPath};
use pyrsia_core::tlog::Hash;

use super::package_tags::PackageTags;
use super::package_verifier::{PackageJob, PackageSources};
use super::{DockerCommit, Log, Outcome, PackageCommit};
use crate::clock::unix_seconds;
use crate::mirror::Mirror;

/// The most manifests one image may consist of (an index and its children).
const MAX_MANIFESTS: usize = 256;

/// One image to verify and commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VerifyJob {
    /// The registry host.
    pub host: Host,
    /// The repository name as clients write it (`alpine`, `team/app`).
    pub name: String,
    /// The manifest or index digest served.
    pub manifest: Digest,
    /// The tag it was requested by, if any.
    pub tag: Option<String>,
}

impl VerifyJob {
    /// The canonical name in coordinates: `docker.io/library/alpine`.
    pub fn canonical_name(&self) -> Option<String> {
        let name = Name::parse(&self.name).ok()?;
        Some(format!(
            "{}/{}",
            self.host,
            RepositoryPath::new(&self.host, name)
        ))
    }
}

/// What the queue verifies: an image or a package version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Job {
    Image(Box<VerifyJob>),
    Package(PackageJob),
    Tags(PackageTags),
    /// A committed PyPI release to rebuild from source (`pypi-rebuild/v1`).
    Rebuild(PackageJob),
}

/// The queue of images and package versions waiting for verification, and its worker
/// threads: one verifies and commits, one rebuilds (a rebuild may take minutes and must not
/// hold up verification).
pub struct VerificationQueue {
    queues: Arc<Queues>,
    log: Arc<Log>,
}

/// The two workers' channels and what waits in them (a job is queued once).
struct Queues {
    verify: Mutex<Sender<Job>>,
    rebuild: Mutex<Sender<Job>>,
    pending: Mutex<HashSet<Job>>,
}

impl Queues {
    /// Queues `job` for its worker unless it waits already.
    fn enqueue(&self, job: Job) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.insert(job.clone()) {
            let sender = match job {
                Job::Rebuild(_) => &self.rebuild,
                _ => &self.verify,
            };
            let sender = sender.lock().unwrap_or_else(|p| p.into_inner());
            if sender.send(job).is_err() {
                tracing::error!("verification worker is gone");
            }
        }
    }

    fn done(&self, job: &Job) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job);
    }
}

impl VerificationQueue {
    /// Starts the worker. Only a sole member commits alone; in a larger network the
    /// consensus issue's builders take over, and requests are dropped here.
    pub fn start(
        mirror: Arc<Mirror>,
        packages: Arc<PackageSources>,
        log: Arc<Log>,
    ) -> VerificationQueue {
        let (verify, receiver) = mpsc::channel();
        let (rebuild_sender, rebuilds) = mpsc::channel();
        let queues = Arc::new(Queues {
            verify: Mutex::new(verify),
            rebuild: Mutex::new(rebuild_sender),
            pending: Mutex::new(HashSet::new()),
        });
        let (worker_queues, worker_log) = (queues.clone(), log.clone());
        let worker_packages = packages.clone();
        thread::Builder::new()
            .name("verify".into())
            .spawn(move || {
                worker(
                    &receiver,
                    &mirror,
                    &worker_packages,
                    &worker_log,
                    &worker_queues,
                );
            })
            .map_err(|e| tracing::error!(error = %e, "could not start the verification worker"))
            .ok();
        let (rebuild_queues, rebuild_log) = (queues.clone(), log.clone());
        thread::Builder::new()
            .name("rebuild".into())
            .spawn(move || {
                for queued in rebuilds {
                    if let Job::Rebuild(job) = &queued {
                        rebuild(&packages, &rebuild_log, job);
                    }
                    rebuild_queues.done(&queued);
                }
            })
            .map_err(|e| tracing::error!(error = %e, "could not start the rebuild worker"))
            .ok();
        VerificationQueue { queues, log }
    }

    /// Asks for `job` to be verified unless it is committed already (and its tag, if any,
    /// last observed at the same digest) or already waiting.
    pub fn request(&self, job: VerifyJob) {
        if !self.log.is_sole_member() {
            return;
        }
        let Some(name) = job.canonical_name() else {
            return;
        };
        let committed = already_committed(&self.log, &name, &job);
        let tag_current = job.tag.as_deref().is_none_or(|tag| {
            self.log
                .find_tag(&name, tag)
                .is_some_and(|(_, d)| d == job.manifest)
        });
        if committed && tag_current {
            return;
        }
        self.enqueue(Job::Image(Box::new(job)));
    }

    /// Asks for the package version `job` to be verified unless it is committed already or
    /// already waiting.
    pub fn request_package(&self, job: PackageJob) {
        if !self.log.is_sole_member() {
            return;
        }
        let coordinates = job.coordinates();
        if self
            .log
            .find_commit(&coordinates.subject(), coordinates.version)
            .is_some()
        {
            return;
        }
        self.enqueue(Job::Package(job));
    }

    /// Asks for the committed release `job` to be rebuilt from source unless it was
    /// requested before (a release not committed yet is rebuilt right after its commit).
    pub fn request_rebuild(&self, job: PackageJob) {
        if !self.log.is_sole_member() {
            return;
        }
        let coordinates = job.coordinates();
        let committed = self
            .log
            .find_commit(&coordinates.subject(), coordinates.version)
            .is_some();
        if committed && !self.log.rebuild_requested(&coordinates) {
            self.enqueue(Job::Rebuild(job));
        }
    }

    /// Records the tags a package's metadata set when the mirror served it, each naming a
    /// version the log committed (a tag naming a version not committed yet is recorded when
    /// that version's commit reads the upstream's tags).
    pub fn observe_package_tags(&self, tags: PackageTags) {
        if !self.log.is_sole_member() || tags.tags.is_empty() {
            return;
        }
        self.enqueue(Job::Tags(tags));
    }

    fn enqueue(&self, job: Job) {
        self.queues.enqueue(job);
    }

    /// How many images, package versions and rebuilds wait.
    pub fn pending(&self) -> usize {
        self.queues
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Whether there is nothing to commit for `job`: its coordinates are committed, or, pulled
/// by digest, it is an output of a commit already (a child manifest of a committed index).
fn already_committed(log: &Log, name: &str, job: &VerifyJob) -> bool {
    log.find_commit(name, &job.manifest.to_string()).is_some()
        || (job.tag.is_none() && log.is_committed(&job.manifest))
}

fn worker(
    receiver: &Receiver<Job>,
    mirror: &Mirror,
    packages: &PackageSources,
    log: &Log,
    queues: &Queues,
) {
    for queued in receiver {
        match &queued {
            Job::Image(job) => verify_image(mirror, log, job),
            Job::Package(job) => {
                if verify_package(packages, log, job) && packages.rebuilder.is_some() {
                    queues.enqueue(Job::Rebuild(job.clone()));
                }
            }
            Job::Tags(tags) => observe_tags(log, tags, None),
            // Rebuilds have a worker of their own (`Queues::enqueue` routes them there).
            Job::Rebuild(_) => {}
        }
        queues.done(&queued);
    }
}

/// Verifies and commits a package version (a sole member's `npm-fetch/v1` or
/// `pypi-fetch/v1` build). Returns whether it committed it now.
fn verify_package(packages: &PackageSources, log: &Log, job: &PackageJob) -> bool {
    let verified = match packages.verify(job, BuildSource::Mirror) {
        Ok(verified) => verified,
        Err(why) => {
            tracing::warn!(ecosystem = job.ecosystem, name = %job.name, version = %job.version, %why,
                "package verification failed; the next download retries it");
            return false;
        }
    };
    let Some(source) = packages.upstream(job.ecosystem) else {
        return false;
    };
    let package = PackageCommit {
        coordinates: job.coordinates(),
        outputs: verified.outputs,
        piece_roots: verified.piece_roots,
        source,
    };
    match log.commit_package(&package, unix_seconds()) {
        Ok(Outcome::Committed(index)) => {
            tracing::info!(
                ecosystem = job.ecosystem, name = %job.name, version = %job.version, index,
                "committed to the transparency log"
            );
            // The tags the upstream points at this version now (npm, Maven).
            if let Ok(tags) = packages.upstream_tags(job.ecosystem, &job.name) {
                observe_tags(log, &tags, Some(&job.version));
            }
            true
        }
        Ok(Outcome::AlreadyCommitted(_)) => false,
        Err(e) => {
            tracing::error!(name = %job.name, error = %e, "could not commit to the transparency log");
            false
        }
    }
}

/// Rebuilds a committed release from source and commits the verdict (a sole member's
/// `pypi-rebuild/v1` or `npm-rebuild/v1`), when this node rebuilds and the release has
/// something to rebuild.
fn rebuild(packages: &PackageSources, log: &Log, job: &PackageJob) {
    let coordinates = job.coordinates();
    if packages.rebuilder.is_none()
        || job.rebuild().is_none()
        || log.rebuild_requested(&coordinates)
        || !packages.rebuildable(job)
    {
        return;
    }
    tracing::info!(ecosystem = job.ecosystem, name = %job.name, version = %job.version,
        "rebuilding from source");
    let result = match packages.rebuild(job, crate::packages::FileSource::PeersThenUpstream) {
        Ok(result) => result,
        Err(why) => {
            tracing::warn!(name = %job.name, version = %job.version, %why,
                "could not rebuild (nothing attested); the next download retries it");
            return;
        }
    };
    let Some(source) = packages.upstream(job.ecosystem) else {
        return;
    };
    match log.commit_rebuild(&coordinates, source, &result, unix_seconds()) {
        Ok(Outcome::Committed(index)) => tracing::info!(
            ecosystem = job.ecosystem, name = %job.name, version = %job.version, index,
            verdict = result.verdict.as_str(), failure = %result.failure,
            "rebuild verdict committed to the transparency log"
        ),
        Ok(Outcome::AlreadyCommitted(_)) => {}
        Err(e) => {
            tracing::error!(name = %job.name, error = %e, "could not commit the rebuild verdict")
        }
    }
}

/// Records each of `tags` that names a committed version (`only`: just those naming that
/// version) as a sole member's tag observation.
fn observe_tags(log: &Log, tags: &PackageTags, only: Option<&str>) {
    for (tag, version) in tags.each() {
        if only.is_some_and(|only| only != version) {
            continue;
        }
        match log.observe_package_tag(tag, version, unix_seconds()) {
            Ok(Some(index)) => tracing::info!(
                ecosystem = tag.ecosystem, name = %tag.name, tag = %tag.version, %version, index,
                "tag observed in the transparency log"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(name = %tag.name, error = %e, "could not observe a tag"),
        }
    }
}

/// Verifies and commits an image (a sole member's `docker-fetch/v1` build).
fn verify_image(mirror: &Mirror, log: &Log, job: &VerifyJob) {
    // An index queued before its child manifests commits them as its outputs.
    let settled = job.tag.is_none()
        && job
            .canonical_name()
            .is_some_and(|name| already_committed(log, &name, job));
    let result = if settled {
        Ok(None)
    } else {
        verify(mirror, job, BuildSource::Mirror).map(Some)
    };
    match result {
        Ok(None) => {}
        Ok(Some(verified)) => commit(mirror, log, job, verified),
        Err(why) => tracing::warn!(
            name = %job.name, manifest = %job.manifest, %why,
            "verification failed; the next pull retries it"
        ),
    }
}

fn commit(mirror: &Mirror, log: &Log, job: &VerifyJob, verified: Verified) {
    let Some(name) = job.canonical_name() else {
        return;
    };
    let Some(source) = mirror.upstream_url(&job.host) else {
        return;
    };
    let image = DockerCommit {
        name: &name,
        manifest: job.manifest,
        outputs: verified.outputs,
        piece_roots: verified.piece_roots,
        tag: job.tag.as_deref(),
        source: &source,
    };
    match log.commit_docker(&image, unix_seconds()) {
        Ok(Outcome::Committed(index)) => {
            tracing::info!(%name, manifest = %job.manifest, index, "committed to the transparency log");
        }
        Ok(Outcome::AlreadyCommitted(_)) => {}
        Err(e) => tracing::error!(%name, error = %e, "could not commit to the transparency log"),
    }
}

/// What verifying an image produced: every digest, and the piece roots of large blobs.
#[derive(Clone, Debug)]
pub(crate) struct Verified {
    /// Every manifest, index, config and layer digest, sorted and distinct.
    pub(crate) outputs: Vec<Digest>,
    /// The piece root of every blob larger than one piece.
    pub(crate) piece_roots: Vec<(Digest, Hash)>,
}

/// Where a builder takes an image's bytes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BuildSource {
    /// Through the mirror (its store, peers, the upstream): a sole member, whose pulls already
    /// fetched the image.
    Mirror,
    /// The upstream itself (blobs this node stores excepted): a builder of a multi-member
    /// network, which never takes its attested bytes from another node.
    Upstream,
}

/// Fetches and hashes every manifest and blob of the image: what a sole member commits and
/// what a `docker-fetch/v1` builder attests.
pub(crate) fn verify(
    mirror: &Mirror,
    job: &VerifyJob,
    source: BuildSource,
) -> Result<Verified, String> {
    let name = Name::parse(&job.name).map_err(|e| e.to_string())?;
    let mut outputs = Vec::new();
    let mut piece_roots = Vec::new();
    let mut manifests = vec![job.manifest];
    let mut seen = 0;
    while let Some(digest) = manifests.pop() {
        seen += 1;
        if seen > MAX_MANIFESTS {
            return Err(format!("more than {MAX_MANIFESTS} manifests"));
        }
        let reply = match source {
            BuildSource::Mirror => mirror.manifest(&job.host, name, Reference::Digest(digest)),
            BuildSource::Upstream => mirror.manifest_from_upstream(&job.host, name, digest),
        }
        .map_err(|e| format!("manifest {digest}: {}", e.message()))?;
        if Digest::sha256(&reply.bytes) != digest {
            return Err(format!("manifest {digest} does not match its digest"));
        }
        let manifest = Manifest::parse(&reply.bytes, Some(reply.media_type.as_str()))
            .map_err(|e| format!("manifest {digest}: {e}"))?;
        outputs.push(digest);
        if manifest.is_index() {
            manifests.extend(manifest.manifests().iter().map(|d| d.digest));
            continue;
        }
        for descriptor in manifest.config().into_iter().chain(manifest.layers()) {
            if let Some(root) = fetch_and_hash(mirror, job, name, descriptor.digest, source)? {
                piece_roots.push((descriptor.digest, root));
            }
            outputs.push(descriptor.digest);
        }
    }
    outputs.sort();
    outputs.dedup();
    Ok(Verified {
        outputs,
        piece_roots,
    })
}

/// Streams one blob through the mirror (the store when present, else the upstream), checks
/// its bytes against the digest, and returns its piece root when it has more than one piece.
fn fetch_and_hash(
    mirror: &Mirror,
    job: &VerifyJob,
    name: Name<'_>,
    digest: Digest,
    source: BuildSource,
) -> Result<Option<Hash>, String> {
    let reply = match source {
        BuildSource::Mirror => mirror.blob(&job.host, name, digest, None),
        BuildSource::Upstream => mirror.blob_from_upstream(&job.host, name, digest),
    }
    .map_err(|e| format!("blob {digest}: {}", e.message()))?;
    let (actual, root) =
        hash_with_pieces(reply.reader).map_err(|e| format!("blob {digest}: {e}"))?;
    if actual != digest {
        return Err(format!("blob {digest}: the bytes hash to {actual}"));
    }
    Ok(root)
}

/// Reads `reader` to its end: the sha256 of its bytes and, when they span more than one
/// piece, their piece root (what a commit lists for a large output).
pub(crate) fn hash_with_pieces(mut reader: impl Read) -> io::Result<(Digest, Option<Hash>)> {
    let mut hasher = Hasher::new();
    let mut pieces = PieceHasher::new();
    let mut leaves = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                pieces.update(&buf[..n], |leaf| leaves.push(leaf));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    leaves.extend(pieces.finish(hasher.len()));
    let root = (leaves.len() > 1).then(|| piece_root(&leaves));
    Ok((hasher.finish(), root))
}
