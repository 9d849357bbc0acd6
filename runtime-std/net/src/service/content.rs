//! Content over the network: provider records for every digest the store holds, provider
//! lookups and piece requests for the mirror ([`PeerNetwork`]), and serving pieces of stored,
//! verified blobs to peers.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libp2p::request_response::{InboundRequestId, ResponseChannel};
use libp2p::{PeerId, kad};
use pyrsia_core::digest::Digest;
use pyrsia_std::peers::{
    Ask, FetchHint, IfMissing, Path, PeerNetwork, PieceAnswer, PieceReply, PieceRequest,
};
use pyrsia_std::store::StoreEvent;

use super::limits::MAX_ANSWERS_IN_PREPARATION;
use super::{EventLoop, Network, Responder};
use crate::codec::{SyncRequest, SyncResponse};
use pyrsia_std::log::follow::{BATCH_BYTES, BATCH_ENTRIES};
use std::sync::Arc;

/// A place among the answers being prepared off the event loop; freed when dropped.
struct AnswerSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for AnswerSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A provider lookup answers early once it found some providers and this long passed.
const EARLY_ANSWER: Duration = Duration::from_millis(500);
/// How long a lookup of the peers nearest a digest may take.
const CLOSEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the peers found nearest a digest are remembered: every piece request naming this
/// node as the one to fetch a blob is checked against them.
const CLOSEST_KEPT: Duration = Duration::from_secs(30);
/// The most digests whose nearest peers are remembered (the memory is cleared beyond).
const CLOSEST_KEPT_MAX: usize = 4096;

/// The peers found nearest each digest lately, with when.
pub(crate) type ClosestCache = Arc<std::sync::Mutex<HashMap<Digest, (Instant, Closest)>>>;

/// What a lookup of the peers nearest a digest found.
#[derive(Clone, Default)]
pub(crate) struct Closest {
    /// The peers that answered, nearest first.
    pub(crate) peers: Vec<PeerId>,
    /// Whether some peers the lookup was told of could not be reached (at their connection
    /// limit, say): the nearest may be among them.
    pub(crate) unreached: bool,
}

/// What other threads ask of the network thread.
pub(crate) enum Command {
    /// Find providers of a digest.
    Providers {
        digest: Digest,
        timeout: Duration,
        reply: mpsc::Sender<Vec<String>>,
    },
    /// Ask a peer for a piece (with the blob's origin when it should fetch what it lacks,
    /// and whether as a bridge).
    Piece {
        peer: PeerId,
        request: PieceRequest,
        hint: Option<FetchHint>,
        bridge: bool,
        tag: u64,
        reply: mpsc::Sender<PieceReply>,
    },
    /// Find the peers nearest a digest in the DHT.
    Closest {
        digest: Digest,
        reply: mpsc::Sender<Closest>,
    },
    /// Count a misbehaviour.
    Penalise { peer: PeerId, why: String },
    /// Publish a sealed member message on the member topic.
    PublishMember(Vec<u8>),
}

/// What a request about pieces asks of this node (piece bytes, insisting or not, and
/// whether to fetch them for the network when missing; what it holds; a hash list), from
/// libp2p or a piece link alike; any other request is given back. A bridged piece is not
/// taken: its answer depends on the circuits this node carries.
pub(super) fn about_pieces(request: SyncRequest) -> Result<(PieceRequest, Asked), SyncRequest> {
    Ok(match request {
        SyncRequest::Piece {
            digest,
            offset,
            len,
            fetch,
            insist,
        } => (
            PieceRequest::bytes(Digest::from_sha256_bytes(digest), offset, len).insisting(insist),
            match fetch {
                Some((host, repository)) => Asked::FetchForNetwork(FetchHint { host, repository }),
                None => Asked::Nothing,
            },
        ),
        SyncRequest::Have { digest } => (
            PieceRequest::about(Digest::from_sha256_bytes(digest), Ask::Have),
            Asked::Nothing,
        ),
        SyncRequest::PieceHashes { digest } => (
            PieceRequest::about(Digest::from_sha256_bytes(digest), Ask::Hashes),
            Asked::Nothing,
        ),
        other => return Err(other),
    })
}

/// What a peer's piece request asks of this node when it lacks the piece (an owned
/// [`IfMissing`], to cross to the thread that answers).
pub(crate) enum Asked {
    /// Nothing.
    Nothing,
    /// Fetch it from this origin for the network.
    FetchForNetwork(FetchHint),
    /// Bridge it; `asker_circuit`: this node carries a circuit of the asker now.
    Bridge {
        hint: FetchHint,
        asker_circuit: bool,
    },
}

/// A provider lookup in progress.
pub(crate) struct ProviderQuery {
    reply: mpsc::Sender<Vec<String>>,
    found: HashSet<PeerId>,
    started: Instant,
    timeout: Duration,
}

pub(crate) fn record_key(digest: &Digest) -> kad::RecordKey {
    kad::RecordKey::new(digest.as_bytes())
}

impl PeerNetwork for Network {
    fn local_id(&self) -> String {
        self.local_id.clone()
    }

    fn live_peers(&self) -> Vec<String> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peers
            .iter()
            .map(|p| p.peer_id.clone())
            .collect()
    }

    fn providers(&self, digest: &Digest, timeout: Duration) -> Vec<String> {
        let (reply, answer) = mpsc::channel();
        let command = Command::Providers {
            digest: *digest,
            timeout,
            reply,
        };
        if self.commands.send_blocking(command).is_err() {
            return Vec::new();
        }
        answer
            .recv_timeout(timeout + Duration::from_secs(1))
            .unwrap_or_default()
    }

    fn path(&self, peer: &str) -> Path {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match status.peers.iter().find(|p| p.peer_id == peer) {
            None => Path::NotConnected,
            Some(info) if info.path == "relayed" => {
                Path::Relayed(info.relay.clone().unwrap_or_default())
            }
            Some(_) => Path::Direct,
        }
    }

    fn download_delay(&self, bytes: u64) -> Duration {
        self.download.delay(bytes)
    }

    fn closest_peers(&self, digest: &Digest) -> Vec<(String, Vec<u8>)> {
        // The DHT's answer, with the peers connected now (a connected peer outside the DHT
        // still counts, as it always did; in a DHT that has converged it changes nothing).
        let keyed = |peers: &[PeerId]| {
            let mut all: Vec<(String, Vec<u8>)> = peers
                .iter()
                .map(|p| (p.to_string(), p.to_bytes()))
                .collect();
            for id in self.live_peers() {
                if let (false, Ok(peer)) = (all.iter().any(|(p, _)| *p == id), id.parse::<PeerId>())
                {
                    all.push((id, peer.to_bytes()));
                }
            }
            all
        };
        {
            let cache = self.closest.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, closest)) = cache.get(digest)
                && at.elapsed() < CLOSEST_KEPT
            {
                return keyed(&closest.peers);
            }
        }
        let (reply, answer) = mpsc::channel();
        let command = Command::Closest {
            digest: *digest,
            reply,
        };
        if self.commands.send_blocking(command).is_err() {
            return Vec::new();
        }
        let closest: Closest = answer
            .recv_timeout(CLOSEST_TIMEOUT + Duration::from_secs(1))
            .unwrap_or_default();
        let all = keyed(&closest.peers);
        let mut cache = self.closest.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CLOSEST_KEPT_MAX {
            cache.clear();
        }
        cache.insert(*digest, (Instant::now(), closest));
        all
    }

    fn view_may_miss_nearest(&self, digest: &Digest) -> bool {
        let cache = self.closest.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(digest)
            .is_some_and(|(at, closest)| at.elapsed() < CLOSEST_KEPT && closest.unreached)
    }

    fn peer_key(&self, peer: &str) -> Vec<u8> {
        peer.parse::<PeerId>()
            .map(|p| p.to_bytes())
            .unwrap_or_else(|_| peer.as_bytes().to_vec())
    }

    fn local_key(&self) -> Vec<u8> {
        self.local_id
            .parse::<PeerId>()
            .map(|p| p.to_bytes())
            .unwrap_or_default()
    }

    fn request_piece(
        &self,
        peer: &str,
        request: PieceRequest,
        if_missing: IfMissing<'_>,
        tag: u64,
        reply: mpsc::Sender<PieceReply>,
    ) {
        let Ok(peer) = peer.parse::<PeerId>() else {
            let _ = reply.send(PieceReply {
                tag,
                result: Err(format!("bad peer id {peer}")),
            });
            return;
        };
        let command = Command::Piece {
            peer,
            request,
            hint: if_missing.hint().cloned(),
            bridge: matches!(if_missing, IfMissing::Bridge { .. }),
            tag,
            reply: reply.clone(),
        };
        if self.commands.send_blocking(command).is_err() {
            let _ = reply.send(PieceReply {
                tag,
                result: Err("network stopped".into()),
            });
        }
    }

    fn penalise(&self, peer: &str, why: &str) {
        if let Ok(peer) = peer.parse() {
            let _ = self.commands.send_blocking(Command::Penalise {
                peer,
                why: why.to_string(),
            });
        }
    }

    fn stalls(&self) -> Option<&pyrsia_std::peers::StallMemory> {
        Some(&self.stalls)
    }
}

impl EventLoop {
    /// Announces every digest stored at start.
    pub(super) fn provide_all(&mut self) {
        let digests = self.store.digests();
        tracing::info!(count = digests.len(), "providing stored content");
        for digest in digests {
            self.provide(&digest);
        }
    }

    fn provide(&mut self, digest: &Digest) {
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .start_providing(record_key(digest))
        {
            tracing::warn!(%digest, error = %e, "cannot provide");
        }
    }

    /// Applies what the store did since the last tick: provide new blobs, withdraw evicted ones.
    pub(super) fn on_store_events(&mut self) {
        while let Ok(event) = self.store_events.try_recv() {
            match event {
                // A node downloading a blob serves the pieces it holds: it is a provider
                // from the start (a peer asks it what it holds before asking for pieces).
                StoreEvent::Stored(digest) | StoreEvent::Receiving(digest) => self.provide(&digest),
                StoreEvent::Evicted(digest) => {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .stop_providing(&record_key(&digest));
                }
                StoreEvent::Abandoned(digest) => {
                    if self.store.record(&digest).is_none() {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .stop_providing(&record_key(&digest));
                    }
                }
            }
        }
    }

    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishMember(message) => self.publish_member(message),
            Command::Providers {
                digest,
                timeout,
                reply,
            } => {
                if self.swarm.connected_peers().next().is_none() {
                    let _ = reply.send(Vec::new());
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(record_key(&digest));
                self.provider_queries.insert(
                    id,
                    ProviderQuery {
                        reply,
                        found: HashSet::new(),
                        started: Instant::now(),
                        timeout,
                    },
                );
            }
            Command::Piece {
                peer,
                request,
                hint,
                bridge,
                tag,
                reply,
            } => {
                if request.ask == Ask::Bytes
                    && !pyrsia_core::reach::carries_pieces(&self.connections.path(&peer))
                {
                    // No blob bytes through a relay: the fetcher takes the piece elsewhere.
                    let _ = reply.send(pyrsia_std::peers::PieceReply {
                        tag,
                        result: Err("reached only through a relay: no pieces over it".into()),
                    });
                    return;
                }
                let digest = *request.digest.as_bytes();
                let message = match request.ask {
                    Ask::Hashes => SyncRequest::PieceHashes { digest },
                    Ask::Have => SyncRequest::Have { digest },
                    Ask::Bytes => match hint {
                        Some(hint) if bridge => SyncRequest::BridgePiece {
                            digest,
                            offset: request.offset,
                            len: request.len,
                            host: hint.host,
                            repository: hint.repository,
                        },
                        hint => SyncRequest::Piece {
                            digest,
                            offset: request.offset,
                            len: request.len,
                            fetch: hint.map(|h| (h.host, h.repository)),
                            insist: request.insist,
                        },
                    },
                };
                let (message, tag, reply) = match self.send_on_link(peer, message, tag, reply) {
                    Some(back) => back,
                    None => return,
                };
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, message);
                self.piece_requests.insert(id, (tag, reply));
            }
            Command::Closest { digest, reply } => {
                if self.swarm.connected_peers().next().is_none() {
                    let _ = reply.send(Closest::default());
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_closest_peers(digest.as_bytes().to_vec());
                self.closest_queries.insert(id, reply);
            }
            Command::Penalise { peer, why } => self.strike(peer, &why),
        }
    }

    /// Answers lookups that found providers a while ago or ran out of time.
    pub(super) fn expire_provider_queries(&mut self) {
        let due: Vec<kad::QueryId> = self
            .provider_queries
            .iter()
            .filter(|(_, q)| {
                let age = q.started.elapsed();
                age >= q.timeout || (age >= EARLY_ANSWER && !q.found.is_empty())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.finish_provider_query(id);
        }
    }

    fn finish_provider_query(&mut self, id: kad::QueryId) {
        if let Some(query) = self.provider_queries.remove(&id) {
            if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                running.finish();
            }
            let local = *self.swarm.local_peer_id();
            let found: Vec<String> = query
                .found
                .into_iter()
                .filter(|p| *p != local)
                .map(|p| p.to_string())
                .collect();
            let _ = query.reply.send(found);
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        if let kad::Event::OutboundQueryProgressed {
            id,
            result: kad::QueryResult::GetClosestPeers(result),
            stats,
            ..
        } = &event
        {
            if let Some(reply) = self.closest_queries.remove(id) {
                // Peers that answered the lookup; on a timeout, those found so far.
                let peers = match result {
                    Ok(ok) => ok.peers.iter().map(|p| p.peer_id).collect(),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => {
                        peers.iter().map(|p| p.peer_id).collect()
                    }
                };
                let unreached = stats.num_failures() > 0 || result.is_err();
                let _ = reply.send(Closest { peers, unreached });
            }
            return;
        }
        if let kad::Event::OutboundQueryProgressed {
            id,
            result: kad::QueryResult::GetProviders(result),
            step,
            ..
        } = event
        {
            if let (Ok(kad::GetProvidersOk::FoundProviders { providers, .. }), Some(query)) =
                (&result, self.provider_queries.get_mut(&id))
            {
                query.found.extend(providers.iter().copied());
            }
            if step.last {
                self.finish_provider_query(id);
            }
        }
    }

    /// A peer asks for a piece (or what this node holds of a blob): answered off this thread
    /// by the mirror (which may wait for the bytes of a download it makes for the network);
    /// the answer comes back through `served`.
    pub(super) fn serve_piece(
        &mut self,
        peer: PeerId,
        request_id: Option<InboundRequestId>,
        channel: Responder,
        request: PieceRequest,
        asked: Asked,
    ) {
        // Piece bytes this node sent to a couple of peers lately: the asker is sent to them
        // (core's super-seeding rule), unless it insists. Not through a bridge: its asker
        // reaches only this node.
        let whole_pieces = request.ask == Ask::Bytes && !matches!(asked, Asked::Bridge { .. });
        let now = self.sync_now();
        if whole_pieces
            && !request.insist
            && let Some(named) =
                self.redirects
                    .redirect(&request.digest, request.offset, &peer, now)
        {
            tracing::debug!(%peer, offset = request.offset, "piece sent to others lately: asker sent to them");
            let named = named.into_iter().map(PeerId::to_bytes).collect();
            let _ = channel.respond(&mut self.swarm, SyncResponse::Elsewhere(named));
            return;
        }
        // Piece bytes: core's rule on how many this node answers at once; beyond, the asker
        // is told busy now (it asks another holder) instead of queueing behind the others.
        let piece_slot = if request.ask == Ask::Bytes {
            use std::sync::atomic::Ordering;
            let on_links = self.links.as_ref().map_or(0, |links| links.writing());
            let in_progress =
                self.preparing_pieces.load(Ordering::SeqCst) + self.uploading.len() + on_links;
            let serves = if request.insist && whole_pieces {
                let sent = (self.redirects).sent_lately(&request.digest, request.offset, now);
                pyrsia_core::piece_schedule::serves_insisting_now(in_progress, sent)
            } else {
                pyrsia_core::piece_schedule::serves_now(in_progress)
            };
            if !serves {
                tracing::debug!(%peer, in_progress, "piece request while busy: answered busy");
                let _ = channel.respond(&mut self.swarm, SyncResponse::Busy);
                return;
            }
            self.preparing_pieces.fetch_add(1, Ordering::SeqCst);
            Some(AnswerSlot(self.preparing_pieces.clone()))
        } else {
            None
        };
        let Some(slot) = self.answer_slot() else {
            let refusal = if piece_slot.is_some() {
                SyncResponse::Busy
            } else {
                SyncResponse::Missing
            };
            let _ = channel.respond(&mut self.swarm, refusal);
            return;
        };
        // Taken, to be answered with the bytes: the asker counts among the piece's latest
        // recipients (a request turned away above is not counted).
        if whole_pieces && piece_slot.is_some() {
            self.redirects
                .record(&request.digest, request.offset, peer, now);
        }
        let source = self.source.clone();
        let served = self.served.clone();
        let upload = self.upload.clone();
        smol::spawn(async move {
            let answer = smol::unblock(move || {
                let if_missing = match &asked {
                    Asked::Nothing => IfMissing::Nothing,
                    Asked::FetchForNetwork(hint) => IfMissing::FetchForNetwork(hint),
                    Asked::Bridge {
                        hint,
                        asker_circuit,
                    } => IfMissing::Bridge {
                        hint,
                        asker_circuit: *asker_circuit,
                    },
                };
                source.piece(&request, if_missing)
            })
            .await;
            drop(slot);
            let response = match answer {
                // --max-upload-rate: the piece waits its turn, or, when the turn is far off,
                // the peer is told this node is busy (it asks another holder).
                PieceAnswer::Data { total, bytes } => match upload.admit(bytes.len() as u64) {
                    Some(wait) => {
                        if !wait.is_zero() {
                            smol::Timer::after(wait).await;
                        }
                        SyncResponse::Piece { total, bytes }
                    }
                    None => SyncResponse::Busy,
                },
                PieceAnswer::Hashes(list) => SyncResponse::PieceHashes(list),
                PieceAnswer::Have {
                    total,
                    pieces,
                    ahead,
                    ..
                } => SyncResponse::Have {
                    total,
                    pieces,
                    load: 0,
                    ahead,
                },
                // (The mirror never answers `Elsewhere`: only this loop redirects.)
                PieceAnswer::Missing | PieceAnswer::Elsewhere(_) => SyncResponse::Missing,
                PieceAnswer::Busy => SyncResponse::Busy,
            };
            let _ = served.send((peer, request_id, channel, response)).await;
            // Counted until the event loop has the answer (then `uploading` counts it).
            drop(piece_slot);
        })
        .detach();
    }

    /// A peer asks for log entries: read off this thread (fjall), answered through `served`.
    pub(super) fn serve_entries(
        &self,
        peer: PeerId,
        channel: ResponseChannel<SyncResponse>,
        start: u64,
        count: u64,
    ) {
        let Some(slot) = self.answer_slot() else {
            // Too many answers in preparation: the peer asks again (or asks another peer).
            drop(channel);
            return;
        };
        let (log, served) = (self.log.clone(), self.served.clone());
        smol::spawn(async move {
            let entries =
                smol::unblock(move || log.entries(start, count.min(BATCH_ENTRIES), BATCH_BYTES))
                    .await;
            drop(slot);
            let _ = served
                .send((
                    peer,
                    None,
                    Responder::Sync(channel),
                    SyncResponse::Entries(entries),
                ))
                .await;
        })
        .detach();
    }

    /// A place among the answers being prepared ([`MAX_ANSWERS_IN_PREPARATION`]), if free.
    fn answer_slot(&self) -> Option<AnswerSlot> {
        use std::sync::atomic::Ordering;
        let preparing = self.preparing.fetch_add(1, Ordering::SeqCst);
        let slot = AnswerSlot(self.preparing.clone());
        (preparing < MAX_ANSWERS_IN_PREPARATION).then_some(slot)
    }

    /// A piece answer from a peer; one to a request that was not a piece request goes to the
    /// log catch-up as an answer of the wrong kind.
    pub(super) fn on_piece_answer(
        &mut self,
        request: libp2p::request_response::OutboundRequestId,
        answer: PieceAnswer,
    ) {
        if !self.on_piece_reply(request, Ok(answer)) {
            self.on_wrong_sync_answer(request);
        }
    }

    /// A piece answer (or failure) for a request the mirror made.
    pub(super) fn on_piece_reply(
        &mut self,
        request: libp2p::request_response::OutboundRequestId,
        result: Result<PieceAnswer, String>,
    ) -> bool {
        let Some((tag, reply)) = self.piece_requests.remove(&request) else {
            return false;
        };
        let _ = reply.send(PieceReply { tag, result });
        true
    }
}

#[cfg(test)]
mod tests {
    use libp2p::kad::KBucketKey;
    use libp2p::{PeerId, identity};

    /// Core's claimant rule measures distance as libp2p's Kademlia does, so the peer a DHT
    /// lookup finds nearest a digest is the one core picks.
    #[test]
    fn core_nearest_is_kademlias_nearest() {
        let peers: Vec<PeerId> = (0..40)
            .map(|_| identity::Keypair::generate_ed25519().public().to_peer_id())
            .collect();
        for k in 0u8..50 {
            let digest = pyrsia_core::digest::Digest::sha256(&[k]);
            let target = KBucketKey::new(digest.as_bytes().to_vec());
            let kad = peers
                .iter()
                .min_by_key(|p| KBucketKey::from(**p).distance(&target))
                .unwrap();
            let keys: Vec<Vec<u8>> = peers.iter().map(|p| p.to_bytes()).collect();
            let core =
                pyrsia_core::rendezvous::nearest(digest.as_bytes(), keys.iter().map(Vec::as_slice))
                    .unwrap();
            assert_eq!(core, kad.to_bytes().as_slice());
        }
    }
}
