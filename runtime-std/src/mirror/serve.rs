//! The mirror as a source of pieces for peers: stored, verified blobs; the pieces a download
//! running here holds already (a node serves a blob before it holds all of it: the swarm);
//! and, when a peer names this node as the one fetching a blob from the upstream for the
//! network, the bytes of that download as they arrive; and, as a relay bridging a blob for a
//! peer whose circuit it carries, the bytes of its own download of it from its peers. The
//! asking node checks each piece
//! against the committed piece list when there is one, and the whole blob against its digest
//! always, before it keeps or completes anything.

use std::io::{Read, Seek, SeekFrom};

use std::sync::Arc;

use pyrsia_core::digest::Digest;
use pyrsia_core::pieces::PieceHasher;
use pyrsia_core::reference::{Host, Name};
use pyrsia_core::tlog::Hash;

use super::Mirror;
use super::flight::{Flight, Joined};
use crate::peers::{
    Ask, FetchHint, IfMissing, PIECE_LEN, PieceAnswer, PieceRequest, PieceSource, honour_fetch,
};
use pyrsia_core::rendezvous::Honour;

/// How long a holder asked insisting for a piece waits for it to arrive (core's rule).
fn named_patience() -> std::time::Duration {
    std::time::Duration::from_micros(
        pyrsia_core::piece_schedule::recent_sends::NAMED_PATIENCE.as_micros(),
    )
}

impl PieceSource for Mirror {
    fn piece(&self, request: &PieceRequest, if_missing: IfMissing<'_>) -> PieceAnswer {
        match request.ask {
            Ask::Hashes | Ask::Bytes if self.store.record(&request.digest).is_some() => {
                return self.served(self.verified_piece(request), false);
            }
            Ask::Hashes => return PieceAnswer::Missing,
            Ask::Have => return self.holding(&request.digest),
            Ask::Bytes => {}
        }
        let want = u64::from(request.len.min(PIECE_LEN));
        // A download running here serves the pieces it holds already, whoever it is for.
        if let Some(flight) = self.flights.running(&request.digest)
            && let Some((total, held)) = flight.held()
            && request.offset < total
            && request.offset + want.min(total - request.offset) <= held
        {
            let answer = self.read_from_flight(&flight, request, want);
            return self.served(answer, true);
        }
        // Or has received that piece from peers and not yet written it.
        if let Some(answer) = self.shelved_piece(request, std::time::Duration::ZERO) {
            return self.served(answer, true);
        }
        // Asked insisting: another node named this one as a holder of the piece (core's
        // super-seeding rule), and this node may be receiving it right now; it waits a
        // little for it (core's `NAMED_PATIENCE`) rather than send the asker back to the
        // node that named it.
        if request.insist
            && let Some(answer) = self.shelved_piece(request, named_patience())
        {
            return self.served(answer, true);
        }
        let Some(hint) = if_missing.hint() else {
            return PieceAnswer::Missing;
        };
        let (Ok(host), Ok(_)) = (Host::parse(&hint.host), Name::parse(&hint.repository)) else {
            return PieceAnswer::Missing;
        };
        if let IfMissing::Bridge { asker_circuit, .. } = if_missing
            && !pyrsia_core::reach::honours_bridge(asker_circuit, self.config.offline)
        {
            tracing::debug!(digest = %request.digest, "asked to bridge a blob by a peer whose circuit this node does not carry (or offline); refused");
            return PieceAnswer::Missing;
        }
        if self.config.offline {
            return PieceAnswer::Missing;
        }
        // Only for a host this node fetches from itself, and only when this node is one of
        // the few nearest the digest among those the DHT finds and those connected: a stranger
        // cannot make it fetch from a host of the stranger's choosing, nor spread its fetches
        // over every node.
        let Ok(upstream) = self.upstream(&host) else {
            tracing::debug!(%host, digest = %request.digest, "a peer asked this node to fetch from a host it does not fetch from; refused");
            return PieceAnswer::Missing;
        };
        if let IfMissing::Bridge { .. } = if_missing {
            return self.bridge(request, hint, upstream, want);
        }
        let honour = self
            .peer_network()
            .map(|network| honour_fetch(&*network, &request.digest));
        let peers = match honour {
            Some(Honour::Refuse) => {
                tracing::debug!(digest = %request.digest, "a peer asked this node to fetch a blob other peers should fetch; refused");
                return PieceAnswer::Missing;
            }
            // Nodes nearer the digest that the asker did not reach come first.
            Some(Honour::ThroughNearer) => {
                if self.flights.running(&request.digest).is_none() {
                    tracing::info!(digest = %request.digest, "asked to fetch a blob for the network while nodes nearer it are known here: asking them first");
                }
                self.peer_fetch(&request.digest)
                    .map(|peers| crate::peers::PeerFetch {
                        serving_others: true,
                        ..peers
                    })
            }
            // The nearest: from its upstream only, never back from peers.
            Some(Honour::Upstream) | None => None,
        };
        self.serve_download(request, hint, upstream, peers, want)
    }
}

impl Mirror {
    /// Bridges a blob for a peer whose circuit this node carries as a relay (core's
    /// [`pyrsia_core::reach::honours_bridge`] said yes): downloads it as for a client of its
    /// own (from its peers, over direct connections; from the upstream only when this node
    /// is the one to fetch it for the network) and serves its pieces as they arrive.
    fn bridge(
        &self,
        request: &PieceRequest,
        hint: &FetchHint,
        upstream: Arc<crate::upstream::Upstream>,
        want: u64,
    ) -> PieceAnswer {
        let peers = self.peer_fetch(&request.digest);
        self.serve_download(request, hint, upstream, peers, want)
    }

    /// Joins (or starts) this node's download of the blob `request` names, from `upstream`
    /// and, when given, `peers` first, and answers with the piece once its bytes are in.
    fn serve_download(
        &self,
        request: &PieceRequest,
        hint: &FetchHint,
        upstream: Arc<crate::upstream::Upstream>,
        peers: Option<crate::peers::PeerFetch>,
        want: u64,
    ) -> PieceAnswer {
        let flight = self.flights.join(
            &self.store,
            upstream,
            peers,
            self.metrics.clone(),
            hint.clone(),
            request.digest,
        );
        let answer = self.read_from_flight(&flight, request, want);
        let partial = flight.held().is_some_and(|(total, held)| held < total);
        self.served(answer, partial)
    }

    /// A piece or the piece hash list of a stored, verified blob only (never of a download
    /// in progress): what an edge cache is served.
    pub(crate) fn verified_piece(&self, request: &PieceRequest) -> PieceAnswer {
        match request.ask {
            Ask::Hashes => match self.piece_hashes(&request.digest) {
                Some(list) => PieceAnswer::Hashes(list.to_vec()),
                None => PieceAnswer::Missing,
            },
            Ask::Bytes => match self.store.open_blob(&request.digest) {
                Some(mut stored) => {
                    let total = stored.record.size;
                    let want = u64::from(request.len.min(PIECE_LEN));
                    read_piece(&mut stored.file, request.offset, want, total)
                }
                None => PieceAnswer::Missing,
            },
            Ask::Have => self.holding(&request.digest),
        }
    }

    /// What this node holds of `digest`: every piece when it stores it, the pieces written so
    /// far when it is downloading it (and those received but not yet written), else nothing.
    fn holding(&self, digest: &Digest) -> PieceAnswer {
        let running = self.flights.running(digest);
        let (total, held) = match self.store.record(digest) {
            Some(record) => (record.size, record.size),
            None => match running.as_ref().and_then(|f| f.held()) {
                Some(held) => held,
                None => return PieceAnswer::Missing,
            },
        };
        let pieces = if held >= total {
            pyrsia_core::pieces::piece_count(total)
        } else {
            held / u64::from(PIECE_LEN)
        };
        let pieces = u32::try_from(pieces).unwrap_or(u32::MAX);
        let ahead = match running.and_then(|f| f.shelf()) {
            Some(shelf) if held < total => {
                shelf.held().into_iter().filter(|&p| p >= pieces).collect()
            }
            _ => Vec::new(),
        };
        PieceAnswer::Have {
            total,
            pieces,
            load: 0,
            ahead,
        }
    }

    /// Piece `request` when a download from peers running here received it and has not
    /// written it yet (or does within `patience`): the whole piece, from memory.
    fn shelved_piece(
        &self,
        request: &PieceRequest,
        patience: std::time::Duration,
    ) -> Option<PieceAnswer> {
        let flight = self.flights.running(&request.digest)?;
        let (total, _) = flight.held()?;
        let piece_len = u64::from(PIECE_LEN);
        if !request.offset.is_multiple_of(piece_len) || request.offset >= total {
            return None;
        }
        let piece = u32::try_from(request.offset / piece_len).ok()?;
        let bytes = flight.shelf()?.wait_for(piece, patience)?;
        let whole = piece_len.min(total - request.offset);
        (u64::from(request.len) >= whole && bytes.len() as u64 == whole).then(|| {
            PieceAnswer::Data {
                total,
                bytes: bytes.into(),
            }
        })
    }

    /// Counts the bytes of `answer` as served to a peer (`partial`: before this node held
    /// the whole blob).
    fn served(&self, answer: PieceAnswer, partial: bool) -> PieceAnswer {
        if let PieceAnswer::Data { bytes, .. } = &answer {
            self.metrics.piece_bytes_served.inc_by(bytes.len() as u64);
            if partial {
                self.metrics
                    .piece_bytes_served_partial
                    .inc_by(bytes.len() as u64);
            }
        }
        answer
    }

    /// Piece `request` (at most `want` bytes) from a download in progress, waiting for its
    /// bytes as they arrive (or from the store, if the download finished meanwhile).
    fn read_from_flight(
        &self,
        flight: &Arc<Flight>,
        request: &PieceRequest,
        want: u64,
    ) -> PieceAnswer {
        match flight.follow(request.offset) {
            Joined::Stored => self.verified_piece(request),
            Joined::Following(total, mut reader) => {
                if request.offset >= total {
                    return PieceAnswer::Missing;
                }
                let len = want.min(total - request.offset) as usize;
                let mut bytes = crate::buffers::take(len);
                match reader.read_exact(&mut bytes) {
                    Ok(()) => PieceAnswer::Data {
                        total,
                        bytes: bytes.into(),
                    },
                    Err(_) => PieceAnswer::Missing,
                }
            }
            Joined::Failed(_) => PieceAnswer::Missing,
        }
    }
}

/// How many piece hash lists are kept in memory.
const HASH_LISTS_KEPT: usize = 256;

impl Mirror {
    /// The leaf hash of every piece of a stored blob, computed once by reading it, then kept.
    fn piece_hashes(&self, digest: &Digest) -> Option<Arc<Vec<Hash>>> {
        let cache = self.piece_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = cache.get(digest) {
            return Some(list.clone());
        }
        drop(cache);
        let mut stored = self.store.open_blob(digest)?;
        let mut hasher = PieceHasher::new();
        let mut leaves = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match stored.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n], |leaf| leaves.push(leaf)),
                Err(_) => return None,
            }
        }
        leaves.extend(hasher.finish(stored.record.size));
        let list = Arc::new(leaves);
        let mut cache = self.piece_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= HASH_LISTS_KEPT {
            cache.clear();
        }
        cache.insert(*digest, list.clone());
        Some(list)
    }
}

fn read_piece(file: &mut std::fs::File, offset: u64, want: u64, total: u64) -> PieceAnswer {
    if offset >= total {
        return PieceAnswer::Missing;
    }
    let len = want.min(total - offset) as usize;
    let mut bytes = crate::buffers::take(len);
    match file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
    {
        Ok(()) => PieceAnswer::Data {
            total,
            bytes: bytes.into(),
        },
        Err(_) => PieceAnswer::Missing,
    }
}
