//! The mirror as a source of pieces for peers: stored, verified blobs; and, when a peer names
//! this node as the one fetching a blob from the upstream for the network, the bytes of that
//! download as they arrive (the asking node verifies the whole blob before it keeps or
//! completes anything).

use std::io::{Read, Seek, SeekFrom};

use std::sync::Arc;

use pyrsia_core::digest::Digest;
use pyrsia_core::pieces::PieceHasher;
use pyrsia_core::reference::{Host, Name};
use pyrsia_core::tlog::Hash;

use super::Mirror;
use super::flight::Joined;
use crate::peers::{
    FetchHint, PIECE_LEN, PieceAnswer, PieceRequest, PieceSource, upstream_fetcher,
};

impl PieceSource for Mirror {
    fn piece(&self, request: &PieceRequest, hint: Option<&FetchHint>) -> PieceAnswer {
        if request.hashes {
            return match self.piece_hashes(&request.digest) {
                Some(list) => PieceAnswer::Hashes(list.to_vec()),
                None => PieceAnswer::Missing,
            };
        }
        let want = u64::from(request.len.min(PIECE_LEN));
        if let Some(mut stored) = self.store.open_blob(&request.digest) {
            let total = stored.record.size;
            return read_piece(&mut stored.file, request.offset, want, total);
        }
        let Some(hint) = hint else {
            return PieceAnswer::Missing;
        };
        let (Ok(host), Ok(_)) = (Host::parse(&hint.host), Name::parse(&hint.repository)) else {
            return PieceAnswer::Missing;
        };
        if self.config.offline {
            return PieceAnswer::Missing;
        }
        // Only for a host this node fetches from itself, and only when this node is the one
        // the rendezvous picks among its live peers: a stranger cannot make it fetch from a
        // host of the stranger's choosing, nor spread its fetches over every node.
        let Ok(upstream) = self.upstream(&host) else {
            tracing::debug!(%host, digest = %request.digest, "a peer asked this node to fetch from a host it does not fetch from; refused");
            return PieceAnswer::Missing;
        };
        if let Some(network) = self.peer_network()
            && let Some(winner) = upstream_fetcher(&*network, &request.digest)
        {
            tracing::debug!(digest = %request.digest, %winner, "a peer asked this node to fetch a blob another peer should fetch; refused");
            return PieceAnswer::Missing;
        }
        // This node fetches for the network: from its upstream only, never back from peers.
        let flight = self.flights.join(
            &self.store,
            upstream,
            None,
            self.metrics.clone(),
            hint.clone(),
            request.digest,
        );
        match flight.follow(request.offset) {
            Joined::Stored => match self.store.open_blob(&request.digest) {
                Some(mut stored) => {
                    let total = stored.record.size;
                    read_piece(&mut stored.file, request.offset, want, total)
                }
                None => PieceAnswer::Missing,
            },
            Joined::Following(total, mut reader) => {
                if request.offset >= total {
                    return PieceAnswer::Missing;
                }
                let len = want.min(total - request.offset) as usize;
                let mut bytes = vec![0u8; len];
                match reader.read_exact(&mut bytes) {
                    Ok(()) => PieceAnswer::Data { total, bytes },
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
    let mut bytes = vec![0u8; len];
    match file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
    {
        Ok(()) => PieceAnswer::Data { total, bytes },
        Err(_) => PieceAnswer::Missing,
    }
}
