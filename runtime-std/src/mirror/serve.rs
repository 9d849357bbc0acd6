//! The mirror as a source of pieces for peers: stored, verified blobs; and, when a peer names
//! this node as the one fetching a blob from the upstream for the network, the bytes of that
//! download as they arrive (the asking node verifies the whole blob before it keeps or
//! completes anything).

use std::io::{Read, Seek, SeekFrom};

use pyrsia_core::reference::{Host, Name};

use super::Mirror;
use super::flight::Joined;
use crate::peers::{FetchHint, PIECE_LEN, PieceAnswer, PieceRequest, PieceSource};

impl PieceSource for Mirror {
    fn piece(&self, request: &PieceRequest, hint: Option<&FetchHint>) -> PieceAnswer {
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
        // This node fetches for the network: from its upstream only, never back from peers.
        let flight = self.flights.join(
            &self.store,
            self.upstream(&host),
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
