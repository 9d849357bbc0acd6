//! A member's part in the verified-build consensus (PROTOCOL.md §2–3): the IO around
//! `pyrsia_core::consensus::node::MemberNode`, which decides everything, with real time, the
//! node's log and the P2P network.
//!
//! One thread owns the state machines. Members exchange signed postcard messages over the
//! network's member topic ([`MemberLink`], [`Member::deliver`]):
//! - entries to order (`Submit`): build requests for what the mirror passed through, the
//!   commits and disputes build rounds produce, membership changes with a quorum of endorsements;
//! - Tendermint votes ordering batches of them; a precommit carries the member's cosignature
//!   of the batch's checkpoint, so the decision's quorum of precommits are the final checkpoint;
//! - attestations of the builders each request selects, who fetch the image or package
//!   version from their own upstream (`docker-fetch/v1`, `npm-fetch/v1`, `pypi-fetch/v1`)
//!   and sign the digests they found;
//! - tag vouches: a member that served an image by tag asks the others, who resolve the tag
//!   at their own upstream and sign what they found (f+1 make a `TagObservation`).
//!
//! Votes leave only after the voting state they depend on is synced to disk; a restarted
//! member resumes in the next round with its lock. A member that missed decisions catches up
//! through log replication (the network's checkpoint announcements) and rejoins at the new
//! height.

mod driver;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyrsia_core::identity::{PublicKey, SecretKey};
use pyrsia_core::tlog::entry::MembershipOp;

use crate::log::{Log, PackageJob, PackageSources, PackageTags, VerifyJob};
use crate::mirror::Mirror;

pub use pyrsia_core::consensus::limits::MAX_CLOCK_SKEW_SECS;

/// Misbehaviour a test can switch on (`--test-byzantine`) to check that the network
/// tolerates it: the core node's [`Misbehaviour`](pyrsia_core::consensus::node::Misbehaviour).
pub use pyrsia_core::consensus::node::Misbehaviour as Byzantine;

/// How a member runs.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Tendermint's first-round timeout; each later round adds as much again.
    pub round_timeout: Duration,
    /// How long the selected builders have before the next ones are asked
    /// (`docker-fetch/v1`: minutes).
    pub build_timeout: Duration,
    /// How old the last final checkpoint may get before members order an empty batch that
    /// refreshes its time (light clients refuse stale checkpoints).
    pub checkpoint_refresh: Duration,
    /// Builds run at once (`--max-builds`).
    pub max_builds: usize,
    /// Test-only misbehaviour.
    pub byzantine: Option<Byzantine>,
}

impl Default for MemberConfig {
    fn default() -> Self {
        MemberConfig {
            round_timeout: Duration::from_secs(3),
            build_timeout: Duration::from_secs(300),
            checkpoint_refresh: Duration::from_secs(3600),
            max_builds: pyrsia_core::consensus::limits::MAX_CONCURRENT_BUILDS,
            byzantine: None,
        }
    }
}

/// Where a member's builders fetch from: the registry mirror for images, the package mirrors
/// for npm and PyPI versions (each with this node's own upstream).
#[derive(Clone)]
pub struct BuildSources {
    /// The registry mirror.
    pub mirror: Arc<Mirror>,
    /// The package mirrors.
    pub packages: Arc<PackageSources>,
}

/// Where a member's messages go: the network broadcasts them to every member.
pub trait MemberLink: Send + Sync {
    /// Sends a sealed member message to every other member.
    fn broadcast(&self, message: Vec<u8>);
}

/// Inputs of the member thread.
pub(crate) enum Input {
    /// A sealed message from the network.
    Message(Vec<u8>),
    /// The mirror served an image: request its verification.
    Request(VerifyJob),
    /// The mirror served a file of a package version: request its verification.
    RequestPackage(PackageJob),
    /// This node's operator endorses a membership change.
    Endorse(MembershipOp, PublicKey),
    /// A build of this node finished.
    Built(u64, Result<crate::log::Verified, String>),
    /// A rebuild of this node finished.
    Rebuilt(
        u64,
        Result<pyrsia_core::consensus::node::RebuildResult, String>,
    ),
    /// The mirror served a package's metadata, which set these tags.
    SawPackageTags(PackageTags),
    /// A tag lookup another member asked for finished: the ticket and what the tag names (an
    /// image's manifest digest, a package's version).
    TagResolved(Vec<u8>, Option<String>),
}

/// Inputs waiting for the member thread at most: past it, messages from the network are
/// dropped (the senders' resend timers repeat what matters) and local inputs wait.
pub const INPUT_QUEUE: usize = 4096;

/// A running member. Share it with an `Arc`.
pub struct Member {
    inputs: Mutex<SyncSender<Input>>,
    dropped: AtomicU64,
    link: Arc<OnceLock<Arc<dyn MemberLink>>>,
    pending: Arc<AtomicUsize>,
}

impl Member {
    /// Starts the member thread for `key` (the node key, a member of `log`'s epoch), building
    /// through `sources`. Messages wait until [`Member::attach_link`] gives it a network.
    pub fn start(
        log: Arc<Log>,
        sources: BuildSources,
        key: SecretKey,
        config: MemberConfig,
    ) -> std::io::Result<Member> {
        let (sender, receiver) = mpsc::sync_channel(INPUT_QUEUE);
        let link: Arc<OnceLock<Arc<dyn MemberLink>>> = Arc::new(OnceLock::new());
        let pending = Arc::new(AtomicUsize::new(0));
        let mut driver = driver::Driver::new(
            log,
            sources,
            key,
            &config,
            link.clone(),
            sender.clone(),
            pending.clone(),
        );
        std::thread::Builder::new()
            .name("member".into())
            .spawn(move || driver.run(&receiver))?;
        Ok(Member {
            inputs: Mutex::new(sender),
            dropped: AtomicU64::new(0),
            link,
            pending,
        })
    }

    fn send(&self, input: Input) {
        let sender = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        if sender.send(input).is_err() {
            tracing::error!("the member thread is gone");
        }
    }

    /// Connects the member to the network (once).
    pub fn attach_link(&self, link: Arc<dyn MemberLink>) {
        let _ = self.link.set(link);
    }

    /// A sealed member message received from the network; dropped (and counted) when the
    /// member thread is this far behind, so the network thread never waits on it.
    pub fn deliver(&self, message: Vec<u8>) {
        let sender = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        match sender.try_send(Input::Message(message)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1000)
                {
                    tracing::warn!("member input queue full: dropping member messages");
                }
            }
            Err(TrySendError::Disconnected(_)) => tracing::error!("the member thread is gone"),
        }
    }

    /// Member messages dropped because the input queue was full.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Requests verification of an image the mirror served (ignored when committed).
    pub fn request(&self, job: VerifyJob) {
        self.send(Input::Request(job));
    }

    /// Requests verification of a package version the mirror served a file of (ignored when
    /// committed).
    pub fn request_package(&self, job: PackageJob) {
        self.send(Input::RequestPackage(job));
    }

    /// Reports the tags a package's metadata set when the mirror served it: each is observed
    /// in the log once its version is committed and f+1 members resolve it alike.
    /// Best effort: dropped when the member thread is busy (the next time the mirror serves
    /// the metadata reports the tags again), so a packument hit never waits on consensus.
    pub fn saw_package_tags(&self, tags: PackageTags) {
        if tags.tags.is_empty() {
            return;
        }
        let sender = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(TrySendError::Full(_)) = sender.try_send(Input::SawPackageTags(tags)) {
            tracing::debug!("member input queue full: package tags not reported this time");
        }
    }

    /// Endorses adding (or removing) `key`: signs the change for the next epoch and sends the
    /// signature; once a quorum of members endorsed it, the change is ordered into the log.
    pub fn endorse(&self, op: MembershipOp, key: PublicKey) {
        self.send(Input::Endorse(op, key));
    }

    /// Requests this member submitted that are not committed yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }
}
