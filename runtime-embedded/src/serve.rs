//! Answering LAN peers with the same protocol the cache speaks to its parent: the trusted
//! checkpoint, commit proofs and pieces from flash. What is not cached is fetched from the
//! parent first (pull-through, verified like any fetch); what the cache cannot answer itself
//! (another tree size, membership changes) is relayed to the parent, since the peer verifies
//! every answer against its own genesis anyway.

use embedded_io::{Read, Write};
use embedded_storage::nor_flash::NorFlash;
use pyrsia_core::edge::{CHUNK_LEN, EDGE_VERSION, ErrorCode, Hashes, Request, Response};

use crate::cache::EdgeCache;
use crate::error::EdgeError;
use crate::link::{Link, LinkError};

/// What one [`EdgeCache::serve`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Served {
    /// A request was answered (possibly with an error code).
    Answered,
    /// The peer said goodbye: the session is over.
    Goodbye,
}

impl<F: NorFlash> EdgeCache<'_, F> {
    /// Reads one request from `peer` and answers it. A malformed or oversized request is
    /// answered with [`ErrorCode::BadRequest`]; a failing link is returned as an error.
    pub fn serve<P: Read + Write, U: Read + Write>(
        &mut self,
        peer: &mut Link<'_, P>,
        mut parent: Option<&mut Link<'_, U>>,
    ) -> Result<Served, EdgeError> {
        let request = match peer.receive::<Request>() {
            Ok(request) => request,
            Err(LinkError::Frame(_)) => {
                peer.send(&Response::Error(ErrorCode::BadRequest))?;
                return Ok(Served::Answered);
            }
            Err(e) => return Err(e.into()),
        };
        match request {
            Request::Hello { version } => {
                if version == EDGE_VERSION {
                    peer.send(&Response::Hello {
                        version: EDGE_VERSION,
                    })?;
                } else {
                    peer.send(&Response::Error(ErrorCode::BadRequest))?;
                }
            }
            Request::Goodbye => {
                peer.send(&Response::Goodbye)?;
                return Ok(Served::Goodbye);
            }
            Request::Checkpoint { have } => self.answer_checkpoint(peer, parent, have)?,
            Request::Membership { .. } => relay(peer, parent, &request)?,
            Request::Lookup { digest, tree_size } => {
                let ours = self.trusted().map(|t| t.size);
                if ours == Some(tree_size)
                    && self.store.proof(&digest).is_none()
                    && let Some(link) = parent.as_deref_mut()
                {
                    // Pull-through: a failure leaves the peer to its other sources.
                    let _ = self.fetch(link, &digest);
                }
                match self.store.proof(&digest).filter(|p| p.size == tree_size) {
                    Some(stored) => {
                        let proof_len = 32 * stored.proof_hashes as usize;
                        let entry_len = stored.data_len() as usize;
                        if proof_len + entry_len > self.scratch.bytes.len() {
                            peer.send(&Response::Error(ErrorCode::TooLarge))?;
                        } else {
                            let (proof, rest) = self.scratch.bytes.split_at_mut(proof_len);
                            self.store.read(stored.proof_at(), proof)?;
                            self.store.read(stored.data_at(), &mut rest[..entry_len])?;
                            peer.send(&Response::Committed {
                                index: stored.entry_index,
                                tree_size,
                                entry: &rest[..entry_len],
                                proof: Hashes(proof),
                            })?;
                        }
                    }
                    None => relay(peer, parent, &request)?,
                }
            }
            Request::Piece {
                digest,
                index,
                offset,
            } => {
                if self.store.piece(&digest, index).is_none()
                    && let Some(link) = parent
                {
                    let _ = self.fetch(link, &digest);
                }
                match self.store.piece(&digest, index) {
                    Some(piece) if offset <= piece.data_len() => {
                        let proof_len = if offset == 0 {
                            32 * piece.proof_hashes as usize
                        } else {
                            0
                        };
                        let data_len = ((piece.data_len() - offset) as usize).min(CHUNK_LEN);
                        let (proof, rest) = self.scratch.bytes.split_at_mut(proof_len);
                        self.store.read(piece.proof_at(), proof)?;
                        self.store
                            .read(piece.data_at() + offset, &mut rest[..data_len])?;
                        peer.send(&Response::Piece {
                            blob_size: piece.size,
                            offset,
                            data: &rest[..data_len],
                            proof: Hashes(proof),
                        })?;
                    }
                    Some(_) => peer.send(&Response::Error(ErrorCode::BadRequest))?,
                    None => peer.send(&Response::Error(ErrorCode::NotFound))?,
                }
            }
        }
        Ok(Served::Answered)
    }

    /// The saved checkpoint with the genesis link (`have == 0`) or no link (`have` is our
    /// size); other sizes go to the parent.
    fn answer_checkpoint<P: Read + Write, U: Read + Write>(
        &mut self,
        peer: &mut Link<'_, P>,
        parent: Option<&mut Link<'_, U>>,
        have: u64,
    ) -> Result<(), EdgeError> {
        let Some(saved) = self.store.saved_state() else {
            return relay(peer, parent, &Request::Checkpoint { have });
        };
        if have != 0 && have != saved.trusted.size {
            return relay(peer, parent, &Request::Checkpoint { have });
        }
        let note_len = saved.note_len as usize;
        let link_len = if have == 0 {
            32 * saved.link_hashes as usize
        } else {
            0
        };
        let (note, rest) = self.scratch.bytes.split_at_mut(note_len);
        self.store.read(saved.note_at, note)?;
        self.store.read(saved.link_at, &mut rest[..link_len])?;
        match core::str::from_utf8(note) {
            Ok(note) => peer.send(&Response::Checkpoint {
                note,
                link: Hashes(&rest[..link_len]),
            })?,
            Err(_) => peer.send(&Response::Error(ErrorCode::Unavailable))?,
        }
        Ok(())
    }
}

/// Passes `request` to the parent and its answer back; without a parent, `Unavailable`.
fn relay<P: Read + Write, U: Read + Write>(
    peer: &mut Link<'_, P>,
    parent: Option<&mut Link<'_, U>>,
    request: &Request,
) -> Result<(), EdgeError> {
    match parent {
        Some(link) => match link.call(request) {
            Ok(answer) => peer.send(&answer)?,
            Err(_) => peer.send(&Response::Error(ErrorCode::Unavailable))?,
        },
        None => peer.send(&Response::Error(ErrorCode::Unavailable))?,
    }
    Ok(())
}
