//! Rebuild rounds on a member (issue 16): a rebuild request (`pypi-rebuild/v1`) runs the same
//! build round as a fetch, and the runtime reports what its rebuild found through
//! [`MemberNode::rebuilt`]; this member attests it as a [`RebuildStatement`] bound to the
//! request, and f+1 identical statements commit an `Entry::Rebuilt`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::digest::Digest;
use crate::time::{Duration, Instant};
use crate::tlog::Hash;
use crate::tlog::entry::{BuildRequest, Coordinates};
use crate::tlog::rebuilt::{RebuildStatement, RebuildVerdict, rebuilt_ecosystem};
use crate::tlog::state::LogState;

use super::{MemberNode, Misbehaviour, Now};

/// How long a wanted rebuild waits for its version's fetch to commit before it is forgotten.
pub const REBUILD_FETCH_WAIT: Duration = Duration::from_secs(600);
/// The most rebuilds a member keeps waiting for their fetch (the oldest makes room).
pub const AWAITING_REBUILDS_MAX: usize = 256;

/// A rebuild this member wants, waiting for the fetch commit of its version.
#[derive(Clone, Debug)]
pub(super) struct AwaitingRebuild {
    source: String,
    since: Instant,
}

/// What a rebuild found, as the runtime reports it: the statement's content without its
/// binding to the request (which the member adds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildResult {
    /// The upstream artifact's file name (the wheel).
    pub artifact: String,
    /// The upstream artifact's sha256.
    pub upstream: Digest,
    /// The rebuilt artifact's sha256, when the build produced one.
    pub rebuilt: Option<Digest>,
    /// The rebuilt artifact's stabilised digest, when the build produced one.
    pub stabilized: Option<Digest>,
    /// The verdict.
    pub verdict: RebuildVerdict,
    /// How it was rebuilt.
    pub recipe: String,
    /// For `NotReproduced`, the encoded diff ([`crate::package::rebuild::encode_diff`]).
    pub diff: Vec<u8>,
    /// For `BuildFailed`, why.
    pub failure: String,
}

impl RebuildResult {
    /// The statement of this result for the rebuild `request` at `request_index`, under
    /// `epoch` and the selection checkpoint (`selection_size`, `selection_root`).
    pub fn statement<'a>(
        &'a self,
        request_index: u64,
        request: &BuildRequest<'a>,
        epoch: u64,
        selection: (u64, Hash),
    ) -> RebuildStatement<'a> {
        RebuildStatement {
            request_index,
            coordinates: request.coordinates,
            build_type: request.build_type,
            epoch,
            selection_size: selection.0,
            selection_root: selection.1,
            artifact: &self.artifact,
            upstream: self.upstream,
            rebuilt: self.rebuilt,
            stabilized: self.stabilized,
            verdict: self.verdict,
            recipe: &self.recipe,
            diff: &self.diff,
            failure: &self.failure,
        }
    }

    /// What a byzantine rebuilder ([`Misbehaviour::WrongDigest`]) attests in place of this
    /// result: the upstream's artifact reproduced bit for bit, whatever the rebuild found.
    fn claimed_reproduced(&self) -> RebuildResult {
        RebuildResult {
            rebuilt: Some(self.upstream),
            stabilized: Some(self.stabilized.unwrap_or(self.upstream)),
            verdict: RebuildVerdict::Reproduced,
            diff: Vec::new(),
            failure: String::new(),
            ..self.clone()
        }
    }
}

impl MemberNode {
    /// The mirror served an artifact a rebuild ecosystem rebuilds (`coordinates` in it, e.g.
    /// `pypi-rebuild`): request the rebuild once the version's fetch is committed (at once
    /// if it is), unless it is requested already. Waits at most [`REBUILD_FETCH_WAIT`].
    pub(super) fn want_rebuild(
        &mut self,
        log: &LogState,
        now: Now,
        coordinates: Coordinates<'_>,
        source: &str,
    ) {
        let key = (
            coordinates.subject().into_owned(),
            coordinates.version.to_string(),
        );
        if log.index().request(&key.0, &key.1).is_some() {
            return;
        }
        if !self.awaiting_rebuilds.contains_key(&key)
            && self.awaiting_rebuilds.len() >= AWAITING_REBUILDS_MAX
            && let Some(oldest) = self
                .awaiting_rebuilds
                .iter()
                .min_by_key(|(_, a)| a.since)
                .map(|(k, _)| k.clone())
        {
            self.awaiting_rebuilds.remove(&oldest);
        }
        self.awaiting_rebuilds.insert(
            key,
            AwaitingRebuild {
                source: source.to_string(),
                since: now.mono,
            },
        );
        self.request_awaited_rebuilds(log, now);
    }

    /// Requests each awaited rebuild whose fetch is committed; forgets those requested
    /// already, whose fetch is unverifiable, or that waited [`REBUILD_FETCH_WAIT`].
    pub(super) fn request_awaited_rebuilds(&mut self, log: &LogState, now: Now) {
        let me = self.id();
        let awaiting = core::mem::take(&mut self.awaiting_rebuilds);
        for ((subject, version), waiting) in awaiting {
            let Some((ecosystem, name)) = subject.split_once(':') else {
                continue;
            };
            let Some(fetched) = rebuilt_ecosystem(ecosystem) else {
                continue;
            };
            let rebuild = Coordinates {
                ecosystem,
                name,
                version: &version,
            };
            let base = Coordinates {
                ecosystem: fetched,
                ..rebuild
            }
            .subject();
            let index = log.index();
            if index.request(&subject, &version).is_some()
                || index.dispute(&base, &version).is_some_and(|(_, last)| last)
                || now.mono.saturating_since(waiting.since) >= REBUILD_FETCH_WAIT
            {
                continue;
            }
            if index.commit(&base, &version).is_some() {
                let source = waiting.source.clone();
                self.submit_request(log, now, rebuild, &source, me);
            } else {
                self.awaiting_rebuilds
                    .insert((subject.clone(), version.clone()), waiting);
            }
        }
    }

    /// A rebuild of this member finished: attest what it found (`Err` when it could not run
    /// at all, e.g. the upstream was unreachable: nothing is attested and the round asks the
    /// next rebuilders at its deadline; a build that ran and failed is a `BuildFailed`
    /// result, attested).
    pub fn rebuilt(
        &mut self,
        log: &LogState,
        now: Now,
        index: u64,
        result: Result<RebuildResult, ()>,
    ) {
        self.follow_log(log, now);
        self.building.remove(&index);
        self.start_builds(log);
        let Ok(mut result) = result else {
            return;
        };
        if self.config.misbehaviour == Some(Misbehaviour::WrongDigest) {
            result = result.claimed_reproduced();
            self.misbehaved += 1;
        }
        let Some((request, selection)) = super::rounds::open_request_with_selection(log, index)
        else {
            return;
        };
        if rebuilt_ecosystem(request.coordinates.ecosystem).is_none() {
            return;
        }
        let statement = result.statement(index, &request, self.members.epoch(), selection);
        if !statement.is_well_formed() {
            return;
        }
        let signed = statement.sign(&self.key);
        let encoded = postcard::to_allocvec(&statement).unwrap_or_default();
        self.attest(log, now, index, encoded, signed);
    }
}
