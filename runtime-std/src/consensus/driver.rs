//! The member thread: the IO loop around `pyrsia_core::consensus::node::MemberNode`. It feeds
//! the node the network's messages, the mirror's requests, the operator's endorsements and
//! finished builds, with the clocks and the log's state, and carries out what the node asks:
//! persist the voting state (synced) before votes leave, broadcast over the member topic,
//! build on a thread of its own, store a decided batch, keep evidence. It decides nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use pyrsia_core::consensus::node::{
    ArtifactRequest, BuildResult, EvidenceKind, MemberNode, Misbehaviour, NodeConfig, NodeOutput,
    Now, PackageRequest,
};
use pyrsia_core::consensus::ordering::VotingState;
use pyrsia_core::digest::Digest;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::reference::{Host, Name, Tag};
use pyrsia_core::time::Duration;
use pyrsia_core::tlog::coordinates::fetch_build_type;
use pyrsia_core::tlog::entry::{ECOSYSTEM_DOCKER, Entry};
use pyrsia_core::tlog::rebuilt::rebuilt_ecosystem;

use super::{BuildSources, Input, MemberConfig, MemberLink};
use crate::clock::{MonotonicClock, unix_seconds};
use crate::log::{Applied, BuildSource, Log, PackageJob, PackageSources, VerifyJob, verify};
use crate::mirror::Mirror;
use crate::packages::FileSource;

/// How often the thread looks at the log when nothing else happens (catching up by
/// replication shows there).
const POLL: StdDuration = StdDuration::from_millis(200);
/// How often the thread looks at whether a height takes long (and says so).
const REPORT_EVERY: StdDuration = StdDuration::from_secs(10);
/// How often a flooder (`--test-byzantine flood`) sends a burst.
const FLOOD_EVERY: StdDuration = StdDuration::from_millis(5);
/// Tag lookups for other members running at once (each is a HEAD at the upstream).
const MAX_TAG_LOOKUPS: usize = 16;

/// The member thread's state. See the module documentation.
pub(crate) struct Driver {
    log: Arc<Log>,
    mirror: Arc<Mirror>,
    packages: Arc<PackageSources>,
    inputs: SyncSender<Input>,
    link: Arc<OnceLock<Arc<dyn MemberLink>>>,
    pending: Arc<AtomicUsize>,
    clock: MonotonicClock,
    node: MemberNode,
    flooding: bool,
    /// Tag lookups running.
    lookups: usize,
    node_misbehaviour: Option<Misbehaviour>,
    /// A voting state that could not be persisted (disk full): retried on every pass, and
    /// the votes that depend on it wait; nobody is blamed.
    unsaved: Option<(u64, VotingState)>,
    /// The node's misbehaviour count last logged (test members only).
    misbehaved: u64,
    /// When the node's state was last looked at, and its height then.
    reported_at: pyrsia_core::time::Instant,
    reported_height: u64,
}

fn core_duration(d: StdDuration) -> Duration {
    Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Driver {
    pub(super) fn new(
        log: Arc<Log>,
        sources: BuildSources,
        key: SecretKey,
        config: &MemberConfig,
        link: Arc<OnceLock<Arc<dyn MemberLink>>>,
        inputs: SyncSender<Input>,
        pending: Arc<AtomicUsize>,
    ) -> Driver {
        // Distinct from every nonce sent before a restart.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let misbehaviour = config.byzantine;
        let node_config = NodeConfig {
            round_timeout: core_duration(config.round_timeout),
            build_timeout: core_duration(config.build_timeout),
            checkpoint_refresh_secs: config.checkpoint_refresh.as_secs(),
            max_builds: config.max_builds,
            misbehaviour,
        };
        let saved = log.voting_state();
        if let Some(state) = &saved {
            tracing::info!(
                height = state.height,
                round = state.round,
                "resuming with the voting state this member persisted before it stopped"
            );
        }
        Driver {
            log,
            mirror: sources.mirror,
            packages: sources.packages,
            inputs,
            link,
            pending,
            clock: MonotonicClock::start(),
            node: MemberNode::new(key, node_config, nonce, saved),
            flooding: misbehaviour == Some(Misbehaviour::Flood),
            lookups: 0,
            node_misbehaviour: misbehaviour,
            unsaved: None,
            misbehaved: 0,
            reported_at: pyrsia_core::time::Instant::ZERO,
            reported_height: 0,
        }
    }

    fn now(&self) -> Now {
        Now {
            mono: self.clock.now(),
            wall_secs: unix_seconds(),
        }
    }

    /// Runs until the node stops.
    pub(crate) fn run(&mut self, inputs: &Receiver<Input>) {
        loop {
            self.retry_unsaved();
            let now = self.now();
            let node = &mut self.node;
            self.log.with_state(|log| node.tick(log, now));
            self.carry_out();
            self.report();
            let mut wait = self.node.next_deadline().map_or(POLL, |at| {
                StdDuration::from_micros(at.saturating_since(self.clock.now()).as_micros())
                    .min(POLL)
            });
            if self.flooding {
                wait = wait.min(FLOOD_EVERY);
            }
            match inputs.recv_timeout(wait) {
                Ok(input) => self.on_input(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        let now = self.now();
        let node = &mut self.node;
        match input {
            Input::Message(bytes) => {
                let result = self
                    .log
                    .with_state(|log| node.handle_message(log, now, &bytes));
                if let Err(e) = result {
                    tracing::debug!(error = %e, "member message changed nothing");
                }
            }
            Input::Request(job) => {
                let Some(name) = job.canonical_name() else {
                    return;
                };
                let Some(source) = self.mirror.upstream_url(&job.host) else {
                    return;
                };
                let request = ArtifactRequest {
                    name: &name,
                    manifest: job.manifest,
                    tag: job.tag.as_deref(),
                    source: &source,
                };
                self.log.with_state(|log| node.request(log, now, &request));
            }
            Input::RequestPackage(job) => {
                let Some(source) = self.packages.upstream(job.ecosystem) else {
                    return;
                };
                let request = PackageRequest {
                    coordinates: job.coordinates(),
                    source,
                };
                self.log
                    .with_state(|log| node.request_package(log, now, &request));
            }
            Input::Endorse(op, key) => {
                tracing::info!(key = %key.key_id(), ?op, "endorsing a membership change");
                self.log.with_state(|log| node.endorse(log, now, op, key));
            }
            Input::Built(index, result) => {
                let result = result
                    .map(|verified| BuildResult {
                        outputs: verified.outputs,
                        piece_roots: verified.piece_roots,
                    })
                    .map_err(|why| tracing::warn!(index, %why, "build failed; not attesting"));
                if result.is_ok() {
                    tracing::info!(index, "built: attesting");
                }
                self.log
                    .with_state(|log| node.built(log, now, index, result));
            }
            Input::Rebuilt(index, result) => {
                let result = result
                    .map_err(|why| tracing::warn!(index, %why, "could not rebuild; not attesting"));
                if let Ok(result) = &result {
                    tracing::info!(index, verdict = result.verdict.as_str(), failure = %result.failure,
                        "rebuilt: attesting");
                }
                self.log
                    .with_state(|log| node.rebuilt(log, now, index, result));
            }
            Input::SawPackageTags(tags) => {
                self.log.with_state(|log| {
                    for (tag, version) in tags.each() {
                        node.saw_package_tag(log, now, tag, version);
                    }
                });
            }
            Input::TagResolved(ticket, resolved) => {
                self.lookups = self.lookups.saturating_sub(1);
                self.log
                    .with_state(|log| node.tag_resolved(log, now, &ticket, resolved.as_deref()));
            }
        }
        self.carry_out();
    }

    /// Carries out the node's outputs, in order.
    fn carry_out(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                NodeOutput::Persist { ticket, state } => self.persist(ticket, state),
                NodeOutput::Broadcast(sealed) => {
                    if let Some(link) = self.link.get() {
                        link.broadcast(sealed);
                    }
                }
                NodeOutput::Build { index, request } => self.build(index, &request),
                NodeOutput::ResolveTag {
                    ecosystem,
                    name,
                    tag,
                    ticket,
                } if ecosystem == ECOSYSTEM_DOCKER => self.resolve_tag(&name, &tag, ticket),
                NodeOutput::ResolveTag {
                    ecosystem,
                    name,
                    tag,
                    ticket,
                } => self.resolve_package_tag(ecosystem, name, tag, ticket),
                NodeOutput::Decided {
                    checkpoint,
                    entries,
                } => match self.log.apply_checkpoint(&checkpoint, &entries) {
                    Ok(Applied::Extended(size)) => tracing::info!(
                        size,
                        entries = entries.len(),
                        cosignatures = checkpoint.cosignatures.len(),
                        "final checkpoint: the members ordered a batch"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "cannot store the decided checkpoint"),
                },
                NodeOutput::Evidence { kind, key, bytes } => {
                    match kind {
                        EvidenceKind::ContradictingAttestation => tracing::warn!(
                            "EVIDENCE: a member attested outputs that contradict a commit; kept"
                        ),
                        EvidenceKind::Equivocation => tracing::warn!(
                            "EVIDENCE: a member sent two different votes for one round (equivocation); both kept"
                        ),
                    }
                    if let Err(e) = self.log.keep_evidence(&key, &bytes) {
                        tracing::error!(error = %e, "cannot keep evidence");
                    }
                }
            }
        }
        self.pending.store(self.node.pending(), Ordering::Relaxed);
        let misbehaved = self.node.misbehaved();
        if misbehaved > self.misbehaved
            && (self.misbehaved == 0 || misbehaved.is_multiple_of(1000) || !self.flooding)
        {
            let kind = match self.node_misbehaviour {
                Some(Misbehaviour::WrongDigest) => "attesting a wrong digest",
                Some(Misbehaviour::SplitVotes) => "proposing two batches",
                Some(Misbehaviour::Flood) => "flooding the other members at full rate",
                Some(Misbehaviour::ForgeTags) => "forging tag observations",
                None => "misbehaving",
            };
            tracing::warn!(times = misbehaved, "TEST BYZANTINE MEMBER: {kind}");
        }
        self.misbehaved = misbehaved;
    }

    /// Logs the node's state every [`REPORT_EVERY`] (at debug level while it makes progress,
    /// at info level when a height takes longer than that).
    fn report(&mut self) {
        let now = self.clock.now();
        if now.saturating_since(self.reported_at) < core_duration(REPORT_EVERY) {
            return;
        }
        self.reported_at = now;
        let status = self.node.status();
        let stuck = status.height == self.reported_height && status.started;
        self.reported_height = status.height;
        if stuck {
            tracing::info!(
                height = status.height,
                round = status.round,
                candidate = status.has_candidate,
                mempool = status.mempool,
                rounds = status.rounds,
                building = status.builds.0,
                queued_builds = status.builds.1,
                "consensus: a height is taking long"
            );
        }
    }

    /// Persists the voting state (synced); the votes waiting for it leave once it is on disk.
    fn persist(&mut self, ticket: u64, state: VotingState) {
        match self.log.save_voting_state(&state) {
            Ok(()) => {
                self.unsaved = None;
                let now = self.now();
                let node = &mut self.node;
                self.log
                    .with_state(|log| node.persisted(log, now, ticket, state));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot persist the voting state; votes wait until it can");
                self.unsaved = Some((ticket, state));
            }
        }
    }

    fn retry_unsaved(&mut self) {
        if let Some((ticket, state)) = self.unsaved.take() {
            self.persist(ticket, state);
            self.carry_out();
        }
    }

    /// Resolves `name:tag` at this node's upstream on a thread of its own, for another
    /// member's tag query; hosts this node does not fetch from, and lookups beyond
    /// [`MAX_TAG_LOOKUPS`] at once, resolve to nothing.
    /// Resolves another member's package tag query at this node's package upstream (the
    /// packument or metadata document: `PackageSources::upstream_tag`).
    fn resolve_package_tag(
        &mut self,
        ecosystem: String,
        name: String,
        tag: String,
        ticket: Vec<u8>,
    ) {
        let packages = self.packages.clone();
        self.spawn_lookup(ticket, move || {
            packages
                .upstream_tag(&ecosystem, &name, &tag)
                .map_err(|e| tracing::info!(%ecosystem, %name, %tag, error = %e, "cannot resolve a package tag another member asked about"))
                .ok()
        });
    }

    /// Resolves another member's image tag query at the registry of the image's host, when
    /// this node fetches from it.
    fn resolve_tag(&mut self, name: &str, tag: &str, ticket: Vec<u8>) {
        let lookup = (|| {
            let (host, path) = name.split_once('/')?;
            let host = Host::parse(host).ok()?;
            Name::parse(path).ok()?;
            Tag::parse(tag).ok()?;
            self.mirror
                .allows_upstream(&host)
                .then(|| (host, path.to_string(), tag.to_string()))
        })();
        let Some((host, path, tag)) = lookup else {
            tracing::debug!(%name, %tag, "tag query for a host or name this node does not fetch");
            let _ = self.inputs.try_send(Input::TagResolved(ticket, None));
            return;
        };
        let mirror = self.mirror.clone();
        self.spawn_lookup(ticket, move || {
            // Both parsed before the thread started.
            let (Ok(name), Ok(tag)) = (Name::parse(&path), Tag::parse(&tag)) else {
                return None;
            };
            mirror
                .tag_from_upstream(&host, name, tag)
                .map_err(|e| tracing::info!(%path, %tag, error = %e, "cannot resolve a tag another member asked about"))
                .ok()
                .map(|digest| digest.to_string())
        });
    }

    /// Runs `lookup` on a thread of its own, at most [`MAX_TAG_LOOKUPS`] at once (past that
    /// the query resolves to nothing), and passes what it found back with `ticket`.
    fn spawn_lookup(
        &mut self,
        ticket: Vec<u8>,
        lookup: impl FnOnce() -> Option<String> + Send + 'static,
    ) {
        if self.lookups >= MAX_TAG_LOOKUPS {
            let _ = self.inputs.try_send(Input::TagResolved(ticket, None));
            return;
        }
        self.lookups += 1;
        let inputs = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name("tag-lookup".into())
            .spawn(move || {
                let _ = inputs.send(Input::TagResolved(ticket, lookup()));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a tag lookup");
            self.lookups -= 1;
        }
    }

    /// Builds request `index` on a thread of its own: an image is fetched from this node's
    /// upstream for the image's registry host and every digest checked (`docker-fetch/v1`);
    /// a package version from this node's package upstream, every file checked against the
    /// registry's digest (`npm-fetch/v1`, `pypi-fetch/v1`).
    fn build(&mut self, index: u64, request: &[u8]) {
        if let Some(job) = package_job(request)
            && rebuilt_ecosystem(job.ecosystem).is_some()
        {
            self.rebuild(index, job);
            return;
        }
        if let Some(job) = package_job(request) {
            tracing::info!(index, ecosystem = job.ecosystem, name = %job.name, version = %job.version,
                "selected to build: fetching the package from the upstream");
            let packages = self.packages.clone();
            self.spawn_builder(index, move || packages.verify(&job, BuildSource::Upstream));
            return;
        }
        let job = match Entry::decode(request) {
            Ok(Entry::BuildRequest(request)) => (|| {
                let (host, name) = request.coordinates.name.split_once('/')?;
                Some(VerifyJob {
                    host: Host::parse(host).ok()?,
                    name: name.to_string(),
                    manifest: Digest::parse(request.coordinates.version).ok()?,
                    tag: None,
                })
            })(),
            _ => None,
        };
        let Some(job) = job else {
            tracing::warn!(index, "cannot build: the request is not a docker image");
            let _ = self
                .inputs
                .try_send(Input::Built(index, Err("not a docker image".into())));
            return;
        };
        if !self.mirror.allows_upstream(&job.host) {
            tracing::warn!(index, host = %job.host, "cannot build: this node does not fetch from that host (--allow-upstream)");
            let _ = self
                .inputs
                .try_send(Input::Built(index, Err("host not allowed".into())));
            return;
        }
        tracing::info!(index, name = %job.name, "selected to build: fetching from the upstream");
        let mirror = self.mirror.clone();
        self.spawn_builder(index, move || verify(&mirror, &job, BuildSource::Upstream));
    }

    /// Rebuilds request `index` (`pypi-rebuild/v1`, `npm-rebuild/v1`) on a thread of its
    /// own, the files from this node's upstream only, and hands the result back as
    /// [`Input::Rebuilt`]. A node that does not rebuild (`--rebuild`) attests nothing.
    fn rebuild(&mut self, index: u64, job: PackageJob) {
        let inputs = self.inputs.clone();
        if self.packages.rebuilder.is_none() {
            tracing::info!(
                index,
                "selected to rebuild, but this node does not rebuild (--rebuild)"
            );
            let _ = inputs.try_send(Input::Rebuilt(
                index,
                Err("this node does not rebuild".into()),
            ));
            return;
        }
        tracing::info!(index, ecosystem = job.ecosystem, name = %job.name, version = %job.version,
            "selected to rebuild from source");
        let packages = self.packages.clone();
        let spawned = std::thread::Builder::new()
            .name("rebuilder".into())
            .spawn(move || {
                let result = packages.rebuild(&job, FileSource::UpstreamOnly);
                let _ = inputs.send(Input::Rebuilt(index, result));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a rebuilder");
            let _ = self
                .inputs
                .try_send(Input::Rebuilt(index, Err(e.to_string())));
        }
    }

    /// Runs `build` on a thread of its own and hands its result back as [`Input::Built`].
    fn spawn_builder(
        &self,
        index: u64,
        build: impl FnOnce() -> Result<crate::log::Verified, String> + Send + 'static,
    ) {
        let inputs = self.inputs.clone();
        let spawned = std::thread::Builder::new()
            .name("builder".into())
            .spawn(move || {
                let _ = inputs.send(Input::Built(index, build()));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a builder");
            let _ = self
                .inputs
                .try_send(Input::Built(index, Err(e.to_string())));
        }
    }
}

/// The package version a request asks to build, if it is one (`npm` or `pypi` with its
/// fetch build type and valid coordinates).
fn package_job(request: &[u8]) -> Option<PackageJob> {
    let Ok(Entry::BuildRequest(request)) = Entry::decode(request) else {
        return None;
    };
    let coordinates = request.coordinates;
    (fetch_build_type(coordinates.ecosystem) == Some(request.build_type))
        .then(|| PackageJob::from_coordinates(&coordinates))
        .flatten()
}
