//! The edge protocol's parent side ([`pyrsia_core::edge`]): edge caches (and any client of the
//! protocol) connect over TCP and ask for the latest checkpoint with its link proof,
//! membership changes, the `Commit` proving a digest, and pieces of stored blobs with their
//! proofs in the committed piece root. Everything served is checked by the asker against its
//! genesis, so this side needs no authentication; it only bounds what one session may cost.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_core::edge::{
    CHUNK_LEN, EDGE_VERSION, ErrorCode, FrameReader, Hashes, MAX_EDGE_ENTRY_LEN, MAX_FRAME_LEN,
    MAX_REQUEST_LEN, Push, Request, Response, decode, encode,
};
use pyrsia_core::pieces::{PIECE_LEN, piece_count};
use pyrsia_core::tlog::tree::MerkleTree;

use crate::log::Log;
use crate::mirror::Mirror;
use crate::peers::{Ask, PieceAnswer, PieceRequest};

mod sessions;

pub use sessions::EVICTABLE_AFTER;
use sessions::{Session, Sessions};

/// Sessions served at once; when all are taken, a new connection replaces the session idle
/// the longest (see [`EVICTABLE_AFTER`]), or is closed if every session is active.
pub const MAX_EDGE_SESSIONS: usize = 64;

/// A session silent for this long is closed.
pub const EDGE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A session whose peer does not take an answer's bytes for this long is closed.
pub const EDGE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Malformed frames tolerated per session before it is closed.
const MAX_BAD_FRAMES: u32 = 3;

/// Answers edge requests from the log and the mirror's store.
#[derive(Clone)]
pub struct EdgeServer {
    log: Arc<Log>,
    mirror: Arc<Mirror>,
    sessions: Arc<Sessions>,
}

impl EdgeServer {
    /// A server over this node's log and store.
    pub fn new(log: Arc<Log>, mirror: Arc<Mirror>) -> Self {
        EdgeServer {
            log,
            mirror,
            sessions: Sessions::new(MAX_EDGE_SESSIONS),
        }
    }

    /// Accepts sessions on `listener` in a background thread, one thread per session.
    pub fn spawn(self, listener: TcpListener) -> io::Result<()> {
        std::thread::Builder::new()
            .name("edge-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let place = match self.sessions.admit(&stream, Instant::now()) {
                        Ok(place) => place,
                        Err(why) => {
                            tracing::warn!(
                                ?why,
                                "edge: every session is active; connection closed"
                            );
                            continue;
                        }
                    };
                    let server = self.clone();
                    let spawned = std::thread::Builder::new()
                        .name("edge-session".into())
                        .spawn(move || {
                            let peer = stream.peer_addr().ok();
                            if let Err(e) = server.session(stream, &place) {
                                tracing::debug!(?peer, error = %e, "edge session ended");
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "edge: cannot start a session thread");
                    }
                }
            })
            .map(|_| ())
    }

    /// Serves one connection until the peer says goodbye, closes, idles out, stops reading,
    /// misbehaves or is evicted from `place`.
    fn session(&self, mut stream: TcpStream, place: &Session) -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(EDGE_IDLE_TIMEOUT))?;
        stream.set_write_timeout(Some(EDGE_WRITE_TIMEOUT))?;
        let mut frame_buf = vec![0u8; MAX_REQUEST_LEN + MAX_REQUEST_LEN / 254 + 2];
        let mut reader = FrameReader::new(&mut frame_buf);
        let mut input = [0u8; 512];
        let mut out = vec![0u8; MAX_FRAME_LEN];
        let mut bad = 0;
        loop {
            let n = stream.read(&mut input)?;
            if n == 0 {
                return Ok(());
            }
            let mut rest = &input[..n];
            while !rest.is_empty() {
                let request = match reader.push(rest) {
                    Push::More => break,
                    Push::Frame { consumed } => {
                        rest = &rest[consumed..];
                        decode::<Request>(reader.frame()).ok()
                    }
                    Push::TooLong { consumed } => {
                        rest = &rest[consumed..];
                        None
                    }
                };
                let Some(request) = request else {
                    bad += 1;
                    write_response(
                        &mut stream,
                        &Response::Error(ErrorCode::BadRequest),
                        &mut out,
                    )?;
                    if bad >= MAX_BAD_FRAMES {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "malformed edge frames",
                        ));
                    }
                    continue;
                };
                let goodbye = request == Request::Goodbye;
                place.busy();
                self.answer(&request, &mut stream, &mut out)?;
                place.idle();
                if goodbye {
                    return Ok(());
                }
            }
        }
    }

    /// Writes the answer to `request`.
    fn answer(&self, request: &Request, stream: &mut TcpStream, out: &mut [u8]) -> io::Result<()> {
        match *request {
            Request::Hello { version } if version == EDGE_VERSION => write_response(
                stream,
                &Response::Hello {
                    version: EDGE_VERSION,
                },
                out,
            ),
            Request::Hello { .. } => {
                write_response(stream, &Response::Error(ErrorCode::BadRequest), out)
            }
            Request::Goodbye => write_response(stream, &Response::Goodbye, out),
            Request::Checkpoint { have } => self.checkpoint(have, stream, out),
            Request::Membership { epoch } => {
                let entry = epoch
                    .checked_add(1)
                    .and_then(|next| self.log.membership_change(next))
                    .and_then(|index| self.log.entry(index));
                write_response(
                    stream,
                    &Response::Membership {
                        entry: entry.as_deref(),
                    },
                    out,
                )
            }
            Request::Lookup { digest, tree_size } => self.lookup(&digest, tree_size, stream, out),
            Request::Piece {
                digest,
                index,
                offset,
            } => self.piece(&digest, index, offset, stream, out),
        }
    }

    fn checkpoint(&self, have: u64, stream: &mut TcpStream, out: &mut [u8]) -> io::Result<()> {
        let Some(note) = self.log.checkpoint() else {
            return write_response(stream, &Response::Error(ErrorCode::Unavailable), out);
        };
        let size = note.checkpoint.size;
        let link = if have == 0 {
            self.log.inclusion_proof(0, size)
        } else {
            self.log.consistency_proof(have, size)
        };
        match link {
            Ok(link) => {
                let text = note.to_string();
                write_response(
                    stream,
                    &Response::Checkpoint {
                        note: &text,
                        link: Hashes::from_hashes(&link),
                    },
                    out,
                )
            }
            Err(_) => write_response(stream, &Response::Error(ErrorCode::BadRequest), out),
        }
    }

    fn lookup(
        &self,
        digest: &Digest,
        tree_size: u64,
        stream: &mut TcpStream,
        out: &mut [u8],
    ) -> io::Result<()> {
        if tree_size > self.log.size() {
            return write_response(stream, &Response::Error(ErrorCode::BadRequest), out);
        }
        let found = self
            .log
            .find_output(digest)
            .filter(|&index| index < tree_size)
            .and_then(|index| Some((index, self.log.entry(index)?)));
        let Some((index, entry)) = found else {
            return write_response(stream, &Response::Error(ErrorCode::NotFound), out);
        };
        if entry.len() > MAX_EDGE_ENTRY_LEN {
            return write_response(stream, &Response::Error(ErrorCode::TooLarge), out);
        }
        match self.log.inclusion_proof(index, tree_size) {
            Ok(proof) => write_response(
                stream,
                &Response::Committed {
                    index,
                    tree_size,
                    entry: &entry,
                    proof: Hashes::from_hashes(&proof),
                },
                out,
            ),
            Err(_) => write_response(stream, &Response::Error(ErrorCode::BadRequest), out),
        }
    }

    fn piece(
        &self,
        digest: &Digest,
        index: u32,
        offset: u32,
        stream: &mut TcpStream,
        out: &mut [u8],
    ) -> io::Result<()> {
        let start = u64::from(index) * u64::from(PIECE_LEN) + u64::from(offset);
        let wanted = PieceRequest::bytes(*digest, start, CHUNK_LEN as u32);
        let (total, mut bytes) = match self.mirror.verified_piece(&wanted) {
            PieceAnswer::Data { total, bytes } => (total, bytes.into_vec()),
            _ => return write_response(stream, &Response::Error(ErrorCode::NotFound), out),
        };
        let count = piece_count(total);
        let piece_end = ((u64::from(index) + 1) * u64::from(PIECE_LEN)).min(total);
        if u64::from(index) >= count || u64::from(offset) >= u64::from(PIECE_LEN) {
            return write_response(stream, &Response::Error(ErrorCode::BadRequest), out);
        }
        bytes.truncate(piece_end.saturating_sub(start) as usize);
        let proof = match (offset, self.log.piece_root(digest)) {
            (0, Some(root)) if count > 1 => {
                let hashes = PieceRequest::about(*digest, Ask::Hashes);
                let PieceAnswer::Hashes(leaves) = self.mirror.verified_piece(&hashes) else {
                    return write_response(stream, &Response::Error(ErrorCode::NotFound), out);
                };
                let mut tree = MerkleTree::new();
                for leaf in leaves {
                    tree.push_hash(leaf);
                }
                if tree.root(count).ok() != Some(root) {
                    tracing::error!(%digest, "stored blob's pieces do not match the committed piece root");
                    return write_response(stream, &Response::Error(ErrorCode::Unavailable), out);
                }
                tree.inclusion_proof(u64::from(index), count)
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        write_response(
            stream,
            &Response::Piece {
                blob_size: total,
                offset,
                data: &bytes,
                proof: Hashes::from_hashes(&proof),
            },
            out,
        )
    }
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response<'_>,
    out: &mut [u8],
) -> io::Result<()> {
    let frame = encode(response, out).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    stream.write_all(frame)
}
