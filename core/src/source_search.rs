//! Where a download of one blob gets its bytes from the peers, as a sans-IO state machine:
//! the order of every decision a node makes before it either reads the blob from peers or
//! fetches it from its upstream. The runtime does what each [`Action`] says (a DHT lookup, a
//! survey of what providers hold, a handshake with a set of peers, a pause) and reports back;
//! `runtime-std`'s peer download (`peers::search`) is that IO; `pyrsia-sim claims` drives it
//! on every simulated node, up to 10,000 (`fuzz/sim/src/claims.rs`).
//!
//! The order, each step taken only when the one before found no peer that serves:
//!
//! 1. the providers of the blob and what each holds; the holders of every piece reached
//!    directly, with the partial holders ([`Action::Try`], the pieces checked against the
//!    committed list);
//! 2. with the blob's origin known (a pull-through download): a relay that bridges a holder
//!    reached only through it ([`crate::reach::route`]);
//! 3. the claimants, nearest the digest first ([`crate::rendezvous::claimants`]), each asked
//!    to fetch the blob for the network ([`crate::reach::claim_walk`]), until this node's
//!    turn;
//! 4. at its turn, when its view may miss the nearest node
//!    ([`crate::rendezvous::look_again_before_upstream`]): up to
//!    [`crate::rendezvous::NEARER_DOWNLOADER_LOOKS`] looks for a nearer node downloading it
//!    already, within one lookup's budget; that node is asked, then the peers downloading
//!    from it are followed ([`crate::rendezvous::REJOIN_LOOKUPS`] looks);
//! 5. the upstream ([`Action::Upstream`]).

use alloc::vec::Vec;

use crate::piece_schedule::Have;
use crate::reach::{ClaimStep, Path, Route, carries_pieces, claim_walk, route};
use crate::rendezvous::{
    NEARER_DOWNLOADER_LOOKS, REJOIN_LOOKUPS, look_again_before_upstream, nearer_downloader,
    worth_following,
};
use crate::time::{Duration, Instant};

/// A provider of the blob, as a DHT lookup found it ([`SourceSearch::providers_found`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider<P> {
    /// The peer.
    pub peer: P,
    /// Its public key's bytes (its place in the rendezvous order).
    pub key: Vec<u8>,
    /// How this node reaches it now.
    pub path: Path<P>,
}

/// What a provider said it holds of the blob ([`SourceSearch::surveyed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding<P> {
    /// The peer.
    pub peer: P,
    /// How this node reaches it now.
    pub path: Path<P>,
    /// The blob's size by its word.
    pub total: u64,
    /// The pieces it holds from the first.
    pub pieces: u32,
    /// The pieces it holds beyond those.
    pub ahead: Vec<u32>,
}

/// How a set of peers is asked for the blob ([`Action::Try`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asking {
    /// Holders: each piece is checked against the committed piece list when there is one.
    Holders,
    /// The first peer is asked to fetch the blob for the network (it serves the bytes as
    /// its upstream delivers them; the runtime sends the blob's origin along).
    Claimant,
    /// The first peer is a relay asked to bridge the blob from a holder reached only
    /// through it.
    Bridge,
    /// The first peer is a relay asked to bridge the blob from a claimant reached only
    /// through it (which fetches it for the network).
    BridgeToClaimant,
    /// Peers downloading the blob from a nearer node this node does not reach: followed
    /// from the blob's start, as they get pieces.
    Following,
}

/// What the runtime does next for the search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Look the blob's providers up on the DHT, waiting at most `within`; answer with
    /// [`SourceSearch::providers_found`] (an empty list when none answered).
    FindProviders {
        /// The lookup's budget.
        within: Duration,
    },
    /// Ask each of these providers what it holds of the blob; answer with
    /// [`SourceSearch::surveyed`] (those that answered in time, holding some of it).
    Survey {
        /// The providers to ask.
        providers: Vec<P>,
    },
    /// Find the claimants of the blob ([`crate::rendezvous::claimants`] over this node, the
    /// peers the DHT finds nearest the digest and those connected); answer with
    /// [`SourceSearch::claimants_found`].
    FindClaimants,
    /// Start a download from `peers` (the first holds, or is to fetch, every piece);
    /// when none of them serves, answer with [`SourceSearch::none_served`]. When one does,
    /// the search is over.
    Try {
        /// The peers and what each holds.
        peers: Vec<(P, Have)>,
        /// How they are asked.
        asking: Asking,
    },
    /// Pause until `until`, then answer with [`SourceSearch::waited`].
    Wait {
        /// When to go on.
        until: Instant,
    },
    /// No peer serves the blob: fetch it from the upstream (a download without the blob's
    /// origin reports it not found). The search is over.
    Upstream,
}

/// Where the search stands (what answer it waits for).
#[derive(Clone, Debug)]
enum Stage<P> {
    /// The first lookup of the providers.
    Providers,
    /// What the providers hold.
    Survey,
    /// Holders reached directly, or a relay asked to bridge, were tried; the relays still
    /// to ask (in reverse order, each with the holder behind it), then the claimants.
    Bridges(Vec<(P, P)>),
    /// Waiting for the claimants.
    Claimants,
    /// A claimant was asked; the claim walk's steps still to take.
    Claims(Vec<ClaimStep<P>>),
    /// A look for a nearer downloader (the `n`th, from 0) was asked for.
    Looking(usize),
    /// The pause before look `n`.
    PauseBeforeLook(usize),
    /// The nearer downloader found was asked to fetch the blob for the network.
    AskedNearer(Vec<Provider<P>>),
    /// Following: the pause before rejoin round `n` (from 1).
    PauseBeforeRejoin(usize),
    /// Following: the providers of rejoin round `n` were asked for.
    RejoinProviders(usize),
    /// Following: what the providers of rejoin round `n` hold was asked for.
    RejoinSurvey(usize),
    /// Following: the holders of rejoin round `n` were tried.
    Following(usize),
    /// Over.
    Done,
}

/// What the search is configured with: the runtime's timeouts.
#[derive(Clone, Copy, Debug)]
pub struct SearchConfig {
    /// One DHT lookup's budget; also the budget of all the looks for a nearer downloader
    /// together.
    pub lookup_timeout: Duration,
    /// The pause between two looks for a nearer downloader, and between two rejoin rounds.
    pub poll: Duration,
    /// The search is for a download other nodes asked this node to make for the network
    /// (`rendezvous::Honour::ThroughNearer`): when the nearer node found downloading is out
    /// of reach, it fetches from the upstream rather than follow the peers downloading from
    /// that node (which may be following this one: its askers wait on it).
    pub serving_others: bool,
}

/// One search for the peers that serve a blob (see the module documentation). Create it with
/// [`SourceSearch::new`], take the first action from [`SourceSearch::start`], and answer each
/// action with the method it names until [`Action::Upstream`] (or a [`Action::Try`] that
/// found the blob). An answer the search does not wait for ends it ([`Action::Upstream`]).
#[derive(Clone, Debug)]
pub struct SourceSearch<P> {
    key: Vec<u8>,
    local: Vec<u8>,
    origin_known: bool,
    resuming: bool,
    config: SearchConfig,
    stage: Stage<P>,
    /// Peers holding some pieces, reached on a path that carries them.
    partial: Vec<(P, Have)>,
    /// Claimants asked to fetch the blob for the network.
    asked: Vec<P>,
    /// Whether the lookup of the nodes nearest the digest missed some.
    lookup_unreached: bool,
    /// When the looks for a nearer downloader must end.
    look_deadline: Instant,
}

impl<P: Clone + PartialEq> SourceSearch<P> {
    /// A search for the blob whose digest bytes are `key`, by the node whose public key's
    /// bytes are `local`. `origin_known`: the download can name the blob's origin (a
    /// pull-through download; without, only holders are asked). `resuming`: the download
    /// resumes after its peers stopped delivering (it is next in line: no look for a nearer
    /// downloader).
    pub fn new(
        key: &[u8],
        local: &[u8],
        origin_known: bool,
        resuming: bool,
        config: SearchConfig,
    ) -> Self {
        SourceSearch {
            key: key.to_vec(),
            local: local.to_vec(),
            origin_known,
            resuming,
            config,
            stage: Stage::Providers,
            partial: Vec::new(),
            asked: Vec::new(),
            lookup_unreached: false,
            look_deadline: Instant::ZERO,
        }
    }

    /// The first action: look the providers up.
    pub fn start(&mut self) -> Action<P> {
        self.stage = Stage::Providers;
        Action::FindProviders {
            within: self.config.lookup_timeout,
        }
    }

    /// The answer to [`Action::FindProviders`], at `now`.
    pub fn providers_found(&mut self, providers: Vec<Provider<P>>, now: Instant) -> Action<P> {
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Providers => {
                self.stage = Stage::Survey;
                Action::Survey {
                    providers: providers.into_iter().map(|p| p.peer).collect(),
                }
            }
            Stage::Looking(look) => match self.nearer(&providers) {
                Some(nearer) => self.ask_nearer(nearer, providers),
                None if look + 1 < NEARER_DOWNLOADER_LOOKS => {
                    self.stage = Stage::PauseBeforeLook(look + 1);
                    self.pause(now)
                }
                None => self.upstream(),
            },
            Stage::RejoinProviders(round) => {
                if self.nearer(&providers).is_none() {
                    return self.upstream();
                }
                self.rejoin_survey(round, providers)
            }
            _ => self.upstream(),
        }
    }

    /// The answer to [`Action::Survey`], at `now`.
    pub fn surveyed(&mut self, holdings: Vec<Holding<P>>, now: Instant) -> Action<P> {
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Survey => self.after_survey(holdings),
            Stage::RejoinSurvey(round) => {
                let holders: Vec<(P, Have)> = holdings
                    .into_iter()
                    .filter(|h| worth_following(h.pieces, h.ahead.len()) && carries_pieces(&h.path))
                    .map(|h| (h.peer, Have::from_prefix(h.total, h.pieces, &h.ahead)))
                    .collect();
                if holders.is_empty() {
                    return self.next_rejoin(round + 1, now);
                }
                self.stage = Stage::Following(round);
                Action::Try {
                    peers: holders,
                    asking: Asking::Following,
                }
            }
            _ => self.upstream(),
        }
    }

    /// The answer to [`Action::FindClaimants`] at `now`: the claimants nearest the digest
    /// first, `None` for this node, each with its path; `lookup_unreached`: the lookup of the
    /// nodes nearest the digest could not reach some it was told of.
    pub fn claimants_found(
        &mut self,
        claimants: Vec<Option<(P, Path<P>)>>,
        lookup_unreached: bool,
        now: Instant,
    ) -> Action<P> {
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Claimants => {
                let ids: Vec<Option<P>> = claimants
                    .iter()
                    .map(|c| c.as_ref().map(|(id, _)| id.clone()))
                    .collect();
                let path_of = |id: &P| {
                    claimants
                        .iter()
                        .flatten()
                        .find(|(c, _)| c == id)
                        .map(|(_, path)| path.clone())
                        .unwrap_or(Path::NotConnected)
                };
                let mut steps = claim_walk(&ids, path_of);
                steps.reverse();
                self.lookup_unreached = lookup_unreached;
                self.walk(steps, now)
            }
            _ => self.upstream(),
        }
    }

    /// The answer to [`Action::Try`] when no peer of the set served the blob, at `now`.
    pub fn none_served(&mut self, now: Instant) -> Action<P> {
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Bridges(rest) => self.after_holders(rest),
            Stage::Claims(rest) => self.walk(rest, now),
            Stage::AskedNearer(_) if self.config.serving_others => self.upstream(),
            Stage::AskedNearer(providers) => self.rejoin_survey(0, providers),
            Stage::Following(round) => self.next_rejoin(round + 1, now),
            _ => self.upstream(),
        }
    }

    /// The answer to [`Action::Wait`], at `now`.
    pub fn waited(&mut self, now: Instant) -> Action<P> {
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::PauseBeforeLook(look) => self.look(look, now),
            Stage::PauseBeforeRejoin(round) => {
                self.stage = Stage::RejoinProviders(round);
                Action::FindProviders {
                    within: self.config.lookup_timeout,
                }
            }
            _ => self.upstream(),
        }
    }

    /// The claimants asked so far to fetch the blob for the network, nearest first.
    pub fn asked(&self) -> &[P] {
        &self.asked
    }

    /// Whether the search is over (it said [`Action::Upstream`]).
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    fn after_survey(&mut self, holdings: Vec<Holding<P>>) -> Action<P> {
        let mut direct = Vec::new();
        let mut bridges: Vec<(P, P)> = Vec::new();
        for holding in holdings {
            let have = Have::from_prefix(holding.total, holding.pieces, &holding.ahead);
            if have != Have::All {
                // No piece crosses a relay's circuit.
                if carries_pieces(&holding.path) {
                    self.partial.push((holding.peer, have));
                }
                continue;
            }
            match route(&holding.peer, &holding.path, self.origin_known) {
                Route::Ask(id) => direct.push((id, have)),
                Route::Bridge { relay, source } => {
                    // One bridge per relay, however many holders sit behind it.
                    if !bridges.iter().any(|(r, _)| *r == relay) {
                        bridges.push((relay, source));
                    }
                }
                Route::Skip => {}
            }
        }
        bridges.reverse();
        if direct.is_empty() {
            return self.after_holders(bridges);
        }
        let peers = direct
            .into_iter()
            .chain(self.partial.iter().cloned())
            .collect();
        self.stage = Stage::Bridges(bridges);
        Action::Try {
            peers,
            asking: Asking::Holders,
        }
    }

    /// Holders failed: the next bridge (`bridges` in reverse order), then the claimants.
    fn after_holders(&mut self, mut bridges: Vec<(P, P)>) -> Action<P> {
        if !self.origin_known {
            return self.upstream();
        }
        if let Some((relay, _source)) = bridges.pop() {
            let peers = self.through(relay);
            self.stage = Stage::Bridges(bridges);
            return Action::Try {
                peers,
                asking: Asking::Bridge,
            };
        }
        self.stage = Stage::Claimants;
        Action::FindClaimants
    }

    /// `first`, holding (or fetching) every piece, then the partial holders.
    fn through(&self, first: P) -> Vec<(P, Have)> {
        core::iter::once((first.clone(), Have::All))
            .chain(self.partial.iter().filter(|(id, _)| *id != first).cloned())
            .collect()
    }

    /// The claim walk's next step (`steps` in reverse order); at this node's turn, the looks
    /// for a nearer downloader or the upstream.
    fn walk(&mut self, mut steps: Vec<ClaimStep<P>>, now: Instant) -> Action<P> {
        while let Some(step) = steps.pop() {
            let (first, asking) = match step {
                ClaimStep::FetchSelf => break,
                ClaimStep::Ask(Route::Ask(claimant)) => (claimant, Asking::Claimant),
                ClaimStep::Ask(Route::Bridge { relay, .. }) => (relay, Asking::BridgeToClaimant),
                ClaimStep::Ask(Route::Skip) => continue,
            };
            self.asked.push(first.clone());
            let peers = self.through(first);
            self.stage = Stage::Claims(steps);
            return Action::Try { peers, asking };
        }
        if !look_again_before_upstream(!self.asked.is_empty(), self.lookup_unreached, self.resuming)
        {
            return self.upstream();
        }
        self.look_deadline = now.checked_add(self.config.lookup_timeout).unwrap_or(now);
        self.look(0, now)
    }

    /// Look `look` for a nearer downloader, within what is left of the looks' budget.
    fn look(&mut self, look: usize, now: Instant) -> Action<P> {
        let left = self.look_deadline.saturating_since(now);
        if left == Duration::ZERO {
            return self.upstream();
        }
        self.stage = Stage::Looking(look);
        Action::FindProviders { within: left }
    }

    /// A nearer downloader was found: ask it to fetch the blob for the network (unless it
    /// was asked already as a claimant, or only a relay's circuit reaches it), then follow
    /// the peers downloading from it.
    fn ask_nearer(&mut self, nearer: Provider<P>, providers: Vec<Provider<P>>) -> Action<P> {
        if self.asked.contains(&nearer.peer) || !carries_pieces(&nearer.path) {
            if self.config.serving_others {
                return self.upstream();
            }
            return self.rejoin_survey(0, providers);
        }
        let peers = self.through(nearer.peer);
        self.stage = Stage::AskedNearer(providers);
        Action::Try {
            peers,
            asking: Asking::Claimant,
        }
    }

    /// Rejoin round `round`: what the downloaders in `providers` hold.
    fn rejoin_survey(&mut self, round: usize, providers: Vec<Provider<P>>) -> Action<P> {
        self.stage = Stage::RejoinSurvey(round);
        Action::Survey {
            providers: providers.into_iter().map(|p| p.peer).collect(),
        }
    }

    /// Rejoin round `round` (after a pause), or the upstream when the rounds are over.
    fn next_rejoin(&mut self, round: usize, now: Instant) -> Action<P> {
        if round >= REJOIN_LOOKUPS {
            return self.upstream();
        }
        self.stage = Stage::PauseBeforeRejoin(round);
        self.pause(now)
    }

    fn pause(&self, now: Instant) -> Action<P> {
        Action::Wait {
            until: now.checked_add(self.config.poll).unwrap_or(now),
        }
    }

    /// The provider nearest the digest, when it is nearer than this node.
    fn nearer(&self, providers: &[Provider<P>]) -> Option<Provider<P>> {
        let keys: Vec<&[u8]> = providers.iter().map(|p| p.key.as_slice()).collect();
        nearer_downloader(&self.key, &self.local, &keys).map(|i| providers[i].clone())
    }

    fn upstream(&mut self) -> Action<P> {
        self.stage = Stage::Done;
        Action::Upstream
    }
}

#[cfg(test)]
mod tests;
