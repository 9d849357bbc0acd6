//! What one node serves: the mirror, its copy of the transparency log, the queue of images
//! waiting to be verified, and whether only committed artifacts are served.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_core::reference::Host;
use pyrsia_core::tlog::coordinates::subject;
use pyrsia_core::tlog::entry::{ECOSYSTEM_MAVEN, ECOSYSTEM_NPM};
use pyrsia_std::clock::unix_seconds;
use pyrsia_std::consensus::{BuildSources, Member};
use pyrsia_std::log::{
    Log, PackageJob, PackageSources, PackageTags, VerificationQueue, VerifyJob, follow, key,
};
use pyrsia_std::maven::{CommittedArtifacts, Maven};
use pyrsia_std::mirror::Mirror;
use pyrsia_std::network::{NetworkStatus, NetworkView};
use pyrsia_std::npm::{CommittedPackages, Npm};
use pyrsia_std::pypi::Pypi;

use crate::NodeOptions;

/// How often a node started with `--log-from` reads its parent's checkpoint.
pub const LOG_FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// The services behind the HTTP frontend.
pub struct Node {
    /// The registry mirror.
    pub mirror: Arc<Mirror>,
    /// The PyPI mirror (`/pypi/`), sharing the mirror's store.
    pub pypi: Arc<Pypi>,
    /// The npm mirror (`/npm/`), sharing the mirror's store.
    pub npm: Arc<Npm>,
    /// The Maven mirror (`/maven2/`), sharing the mirror's store.
    pub maven: Arc<Maven>,
    /// The package mirrors, as the package builders use them.
    pub packages: Arc<PackageSources>,
    /// The transparency log.
    pub log: Arc<Log>,
    verification: VerificationQueue,
    /// The member thread, in a network of several members (voting once this node is one).
    pub member: Option<Arc<Member>>,
    /// Serve only committed artifacts (`--verified-only`).
    pub verified_only: bool,
    /// Of rebuilt ecosystems, serve only reproduced releases (`--reproduced-only`).
    pub reproduced_only: bool,
    /// The data dir (where the node key lives).
    pub data_dir: std::path::PathBuf,
    /// Builds a member runs at once (`--max-builds`).
    pub max_builds: usize,
    network: OnceLock<Arc<dyn NetworkView>>,
}

/// The log's state for `/status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LogStatus {
    /// The log's name.
    pub origin: String,
    /// Final entries.
    pub size: u64,
    /// This node's key id (hex, short).
    pub key_id: String,
    /// Whether this node is the only member (a standalone network).
    pub sole_member: bool,
    /// Images waiting for verification.
    pub pending_verifications: usize,
    /// Members of the current epoch.
    #[serde(default)]
    pub members: usize,
    /// Whether this node is one of them.
    #[serde(default)]
    pub member: bool,
    /// Pieces of evidence of misbehaviour the log keeps (attestations contradicting commits,
    /// conflicting checkpoints).
    #[serde(default)]
    pub evidence: usize,
    /// Whether only committed artifacts are served.
    pub verified_only: bool,
    /// Whether, of rebuilt ecosystems, only reproduced releases are served.
    #[serde(default)]
    pub reproduced_only: bool,
    /// Whether this node rebuilds PyPI releases from source.
    #[serde(default)]
    pub rebuilds: bool,
    /// Builds this node runs at once as a member (`--max-builds`).
    #[serde(default)]
    pub max_builds: usize,
}

impl Node {
    /// Opens the store and the log (creating the node key and, without `--genesis`, a
    /// standalone genesis on first start) and starts the verification worker.
    pub fn open(options: &NodeOptions) -> Result<Node, String> {
        let config = options.mirror_config()?;
        let data_dir = config.data_dir.clone();
        let mirror = Arc::new(
            Mirror::open(config)
                .map_err(|e| format!("cannot open the store in {}: {e}", data_dir.display()))?,
        );
        let node_key = key::load_or_create(&data_dir)
            .map_err(|e| format!("cannot load the node key in {}: {e}", data_dir.display()))?;
        let member_key = pyrsia_core::identity::SecretKey::from_seed(node_key.to_seed());
        // The operator's CLI reads it from the data dir for admin requests.
        pyrsia_std::operator::load_or_create(&data_dir).map_err(|e| {
            format!(
                "cannot create the operator token in {}: {e}",
                data_dir.display()
            )
        })?;
        let genesis = match &options.genesis {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read --genesis {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let log = Arc::new(
            Log::open(&data_dir, node_key, genesis, unix_seconds())
                .map_err(|e| format!("cannot open the transparency log: {e}"))?,
        );
        let refresher = log.clone();
        let refresh_after = options.checkpoint_refresh.max(1);
        std::thread::Builder::new()
            .name("checkpoint-refresh".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(refresh_after.min(60)));
                    if let Err(e) = refresher.refresh(unix_seconds(), refresh_after) {
                        tracing::error!(error = %e, "could not re-sign the latest checkpoint");
                    }
                }
            })
            .map_err(|e| format!("cannot start the checkpoint refresher: {e}"))?;
        spawn_database_recovery(log.clone(), mirror.clone())?;
        if let Some(parent) = &options.log_from {
            if options.genesis.is_none() {
                return Err(
                    "--log-from needs --genesis: the parent's network must be named, not trusted"
                        .into(),
                );
            }
            follow::follow_http(log.clone(), parent.clone(), LOG_FOLLOW_INTERVAL)
                .map_err(|e| format!("cannot start following {parent}: {e}"))?;
        }
        let roots = log.clone();
        mirror.set_piece_roots(Arc::new(move |digest| roots.piece_root(digest)));
        let tags = log.clone();
        mirror.set_tag_resolver(Arc::new(move |name, tag| {
            tags.find_tag(name, tag).map(|(_, digest)| digest)
        }));
        for (flag, url) in [
            ("--pypi-upstream", &options.pypi_upstream),
            ("--npm-upstream", &options.npm_upstream),
            ("--maven-upstream", &options.maven_upstream),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{flag} {url}: the URL must start with http:// or https://"
                ));
            }
        }
        let ttl = Duration::from_secs(options.index_ttl);
        let packages = Arc::new(PackageSources {
            pypi: Arc::new(Pypi::new(mirror.clone(), &options.pypi_upstream, ttl)),
            npm: Arc::new(Npm::new(mirror.clone(), &options.npm_upstream, ttl)),
            maven: Arc::new(Maven::new(mirror.clone(), &options.maven_upstream, ttl)),
            rebuilder: rebuilder(options, &data_dir)?,
        });
        let committed = log.clone();
        packages
            .npm
            .set_committed_tarballs(Arc::new(move |name, version| {
                let subject = subject(ECOSYSTEM_NPM, name);
                match committed.commit_outputs(&subject, version)?.as_slice() {
                    [tarball] => Some(*tarball),
                    _ => None,
                }
            }));
        let (versions_log, tags_log) = (log.clone(), log.clone());
        packages.npm.set_committed_packages(CommittedPackages {
            versions: Arc::new(move |name| {
                let subject = subject(ECOSYSTEM_NPM, name);
                versions_log
                    .committed_versions(&subject)
                    .into_iter()
                    .filter_map(|version| {
                        match versions_log.commit_outputs(&subject, &version)?.as_slice() {
                            [tarball] => Some((version, *tarball)),
                            _ => None,
                        }
                    })
                    .collect()
            }),
            tags: Arc::new(move |name| tags_log.package_tags(&subject(ECOSYSTEM_NPM, name))),
        });
        let (versions_log, tags_log) = (log.clone(), log.clone());
        packages.maven.set_committed_artifacts(CommittedArtifacts {
            versions: Arc::new(move |name| {
                versions_log.committed_versions(&subject(ECOSYSTEM_MAVEN, name))
            }),
            tags: Arc::new(move |name| tags_log.package_tags(&subject(ECOSYSTEM_MAVEN, name))),
        });
        let committed = log.clone();
        packages
            .maven
            .set_committed_releases(Arc::new(move |name, version| {
                committed.commit_outputs(&subject(ECOSYSTEM_MAVEN, name), version)
            }));
        let verification = VerificationQueue::start(mirror.clone(), packages.clone(), log.clone());
        // Every node of a multi-member network runs the member thread: a node that is not a
        // member (yet) only follows, and starts voting once the log adds its key.
        let member = if !log.is_sole_member() && options.log_from.is_none() {
            let sources = BuildSources {
                mirror: mirror.clone(),
                packages: packages.clone(),
            };
            let member = Member::start(log.clone(), sources, member_key, options.member_config())
                .map_err(|e| format!("cannot start the member thread: {e}"))?;
            tracing::info!(
                members = log.members().len(),
                member = log.is_member(),
                "multi-member network: members build and vote"
            );
            Some(Arc::new(member))
        } else {
            None
        };
        Ok(Node {
            pypi: packages.pypi.clone(),
            npm: packages.npm.clone(),
            maven: packages.maven.clone(),
            packages,
            mirror,
            log,
            verification,
            member,
            verified_only: options.verified_only || options.reproduced_only,
            reproduced_only: options.reproduced_only,
            data_dir,
            max_builds: options.max_builds.max(1),
            network: OnceLock::new(),
        })
    }

    /// Whether `digest` may be served: always, unless `--verified-only` and not committed.
    pub fn may_serve(&self, digest: &Digest) -> bool {
        !self.verified_only || self.log.is_committed(digest)
    }

    /// Asks for the image whose manifest was just served to be verified and committed.
    pub fn request_verification(
        &self,
        host: &Host,
        name: &str,
        manifest: Digest,
        tag: Option<&str>,
    ) {
        let job = VerifyJob {
            host: host.clone(),
            name: name.to_string(),
            manifest,
            tag: tag.map(str::to_string),
        };
        match &self.member {
            Some(member) => member.request(job),
            None => self.verification.request(job),
        }
    }

    /// Asks for the release a pure-Python wheel or an npm tarball was just served of to be
    /// rebuilt from source once its fetch is committed, when this node rebuilds
    /// (`--rebuild`).
    pub fn request_rebuild(&self, job: &PackageJob) {
        if self.packages.rebuilder.is_none() {
            return;
        }
        match (&self.member, job.rebuild()) {
            (Some(member), Some(rebuild)) => member.request_package(rebuild),
            (None, Some(_)) => self.verification.request_rebuild(job.clone()),
            _ => {}
        }
    }

    /// Whether a file of a rebuilt ecosystem may be served under `--reproduced-only`: the
    /// release's rebuild verdict is reproduced and the file is the artifact rebuilt (the
    /// wheel, the npm tarball) or the sdist a wheel was rebuilt from. Always without `--reproduced-only`, and for ecosystems not rebuilt.
    pub fn may_serve_reproduced(&self, job: &PackageJob, filename: &str) -> bool {
        if !self.reproduced_only || job.rebuild().is_none() {
            return true;
        }
        self.log
            .rebuild_of(&job.coordinates())
            .is_some_and(|r| r.result.verdict.serves(&r.result.artifact, filename))
    }

    /// Asks for the package version a file was just served of to be verified and committed.
    pub fn request_package_verification(&self, job: PackageJob) {
        match &self.member {
            Some(member) => member.request_package(job),
            None => self.verification.request_package(job),
        }
    }

    /// Reports the tags a package's metadata set (a packument's dist-tags, Maven metadata's
    /// `release` and `latest`) as the mirror served it fresh from the upstream, to be
    /// observed in the log.
    pub fn observe_package_tags(&self, tags: PackageTags) {
        match &self.member {
            Some(member) => member.saw_package_tags(tags),
            None => self.verification.observe_package_tags(tags),
        }
    }

    /// Whether a package file may be served: always, unless `--verified-only` and the commit
    /// of the version it belongs to does not list its sha256.
    pub fn may_serve_package(&self, job: &PackageJob, digest: &Digest) -> bool {
        let coordinates = job.coordinates();
        !self.verified_only
            || self
                .log
                .commit_lists(&coordinates.subject(), coordinates.version, digest)
    }

    /// The outputs the log committed for a package version, if it did (one read of the
    /// commit, for a listing that checks many files of the version).
    pub fn committed_outputs(&self, job: &PackageJob) -> Option<Vec<Digest>> {
        let coordinates = job.coordinates();
        self.log
            .commit_outputs(&coordinates.subject(), coordinates.version)
    }

    /// Makes the running P2P network visible in `/status` and `/peers` (once).
    pub fn attach_network(&self, network: Arc<dyn NetworkView>) {
        let _ = self.network.set(network);
    }

    /// The P2P network's state, when the node runs one.
    pub fn network_status(&self) -> Option<NetworkStatus> {
        self.network.get().map(|n| n.status())
    }

    /// The log's state.
    pub fn log_status(&self) -> LogStatus {
        LogStatus {
            origin: self.log.origin(),
            size: self.log.size(),
            key_id: self.log.key_id().to_string(),
            sole_member: self.log.is_sole_member(),
            pending_verifications: self
                .member
                .as_ref()
                .map_or_else(|| self.verification.pending(), |m| m.pending()),
            members: self.log.members().len(),
            member: self.log.is_member(),
            evidence: self.log.evidence_count(),
            verified_only: self.verified_only,
            reproduced_only: self.reproduced_only,
            rebuilds: self.packages.rebuilder.is_some(),
            max_builds: self.max_builds,
        }
    }
}

/// How often the node checks whether a failed write poisoned its databases.
const DATABASE_RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// Reopens the log's and the store's databases once a failed write (a full disk) poisoned
/// them and the disk has room again, so that the node writes again without a restart.
/// The rebuilders `--rebuild` asks for: checked to run here (bubblewrap starts, the
/// interpreter has pip, Node.js runs) before the node starts, so that a node that cannot
/// rebuild says so rather than attesting failed builds. PyPI build requirements come through
/// this node's own PyPI mirror.
fn rebuilder(
    options: &NodeOptions,
    data_dir: &std::path::Path,
) -> Result<Option<pyrsia_std::rebuild::Rebuilders>, String> {
    if !options.rebuild {
        return Ok(None);
    }
    let bwrap = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("bwrap"))
                .find(|candidate| candidate.is_file())
        })
        .ok_or(
            "--rebuild needs bubblewrap (bwrap) on the PATH (Debian: apt-get install bubblewrap)",
        )?;
    let host = match options.http.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let index_url = format!(
        "http://{host}:{}{}simple/",
        options.http.port(),
        crate::pypi_api::PREFIX
    );
    let timeout = Duration::from_secs(options.rebuild_timeout);
    let work = data_dir.join("rebuilds");
    let pypi = pyrsia_std::rebuild::PypiRebuilder::new(
        options.rebuild_python.clone(),
        bwrap.clone(),
        index_url,
        work.clone(),
        timeout,
    )
    .map_err(|e| format!("--rebuild: {e}"))?;
    let npm =
        pyrsia_std::rebuild::NpmRebuilder::new(options.rebuild_node.clone(), bwrap, work, timeout)
            .map_err(|e| format!("--rebuild: {e}"))?;
    Ok(Some(pyrsia_std::rebuild::Rebuilders { pypi, npm }))
}

fn spawn_database_recovery(log: Arc<Log>, mirror: Arc<Mirror>) -> Result<(), String> {
    std::thread::Builder::new()
        .name("database-recovery".into())
        .spawn(move || {
            loop {
                std::thread::sleep(DATABASE_RECOVERY_INTERVAL);
                if let Err(e) = log.recover_if_poisoned() {
                    tracing::warn!(error = %e, "the log database is still failing; will retry");
                }
                if let Err(e) = mirror.store().recover_if_poisoned() {
                    tracing::warn!(error = %e, "the store database is still failing; will retry");
                }
                let failing =
                    i64::from(log.is_poisoned()) + i64::from(mirror.store().is_poisoned());
                mirror.metrics().databases_failing.set(failing);
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the database recovery thread: {e}"))
}
