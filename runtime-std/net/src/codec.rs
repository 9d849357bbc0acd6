//! The node-to-node request-response protocol (log sync and blob pieces): one wire frame each way (version, length, postcard
//! payload). The length is checked against the protocol's maximum before any buffer is
//! allocated; a malformed or oversized frame is an error that closes the stream.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use pyrsia_core::wire::frame::{FrameHeader, decode_payload, encode_vec};
use pyrsia_core::wire::{FRAME_HEADER_LEN, FRAME_LEN_MAX};
use pyrsia_std::peers::PieceAnswer;
use serde::{Deserialize, Serialize};

/// The protocol name: its version is bumped whenever a message changes shape.
pub const LOG_SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/pyrsia/sync/2");
/// The protocol of nodes built before super-seeding: piece requests without
/// [`SyncRequest::Piece::insist`] (served as insisting) and no [`SyncResponse::Elsewhere`].
/// Spoken as well, so a network upgrades one node at a time ([`legacy`]).
pub const LOG_SYNC_PROTOCOL_V1: StreamProtocol = StreamProtocol::new("/pyrsia/sync/1");
/// Every version a node speaks and offers, the newest first (a dialler and a listener
/// settle on the newest both speak).
pub const LOG_SYNC_PROTOCOLS: [StreamProtocol; 2] = [LOG_SYNC_PROTOCOL, LOG_SYNC_PROTOCOL_V1];

/// The largest request frame (requests are a few bytes).
const MAX_REQUEST: u32 = 1024;

/// What a node asks a peer about its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// Its latest final checkpoint.
    Checkpoint,
    /// Final entries from `start`, at most `count` (the peer may send fewer).
    Entries {
        /// First index.
        start: u64,
        /// How many.
        count: u64,
    },
    /// Bytes `offset..offset+len` of a stored, verified blob.
    Piece {
        /// The blob's SHA-256.
        digest: [u8; 32],
        /// First byte.
        offset: u64,
        /// How many (the server caps it).
        len: u32,
        /// `(host, repository)` when the asker chose this node to fetch the blob from the
        /// upstream for the network.
        fetch: Option<(String, String)>,
        /// Whether the bytes must come from this node even when it sent this piece to
        /// others lately; else it may answer [`SyncResponse::Elsewhere`] (core's
        /// `piece_schedule::recent_sends`). An asker insists once it has been sent
        /// elsewhere for the piece.
        insist: bool,
    },
    /// The leaf hash of every piece of a stored blob (checked by the asker against the
    /// committed piece root).
    PieceHashes {
        /// The blob's SHA-256.
        digest: [u8; 32],
    },
    /// The consistency proof from the tree of `from` entries to the tree of `to` (at most the
    /// peer's final size): what a node catching up with a long log checks each chunk with.
    Consistency {
        /// The smaller tree's size.
        from: u64,
        /// The larger tree's size.
        to: u64,
    },
    /// What the peer holds of a blob (it stores it, or is downloading it), and how busy it
    /// is: asked before and during a fetch from several peers.
    Have {
        /// The blob's SHA-256.
        digest: [u8; 32],
    },
    /// Bytes `offset..offset+len` of a blob, from a relay asked to bridge it: the asker
    /// reaches the blob's source only through this node's circuit, so this node fetches the
    /// blob from its own peers (from the upstream at `host` only when it is the one to fetch
    /// it for the network) and serves it on. Honoured only while this node carries a circuit
    /// of the asker.
    BridgePiece {
        /// The blob's SHA-256.
        digest: [u8; 32],
        /// First byte.
        offset: u64,
        /// How many (the server caps it).
        len: u32,
        /// The blob's registry host.
        host: String,
        /// The repository on it.
        repository: String,
    },
    /// Not a request: what the codec hands over for a frame it could not decode (never on
    /// the wire), so that the sender is struck. (libp2p reports no failure to read a request.)
    #[serde(skip)]
    Malformed(String),
}

/// A peer's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// Its latest checkpoint's signed note, if it has one.
    Checkpoint(Option<String>),
    /// The entries asked for (a prefix of them).
    Entries(Vec<Vec<u8>>),
    /// A piece of a blob and the blob's size.
    Piece {
        /// The blob's size.
        total: u64,
        /// The bytes, as one byte string (postcard writes the same length and bytes for a
        /// `Vec<u8>` either way, but serde's default reads and writes it one element at a
        /// time, which cost more CPU than the encryption of a piece). A piece served from a
        /// download's shelf is shared with it, not copied.
        bytes: pyrsia_std::piece_bytes::PieceBytes,
    },
    /// The piece hash list asked for.
    PieceHashes(Vec<[u8; 32]>),
    /// The peer does not hold that blob.
    Missing,
    /// The consistency proof asked for (empty when the peer cannot prove those sizes).
    Consistency(Vec<[u8; 32]>),
    /// What the peer holds of the blob asked about (`Missing` when nothing).
    Have {
        /// The blob's size.
        total: u64,
        /// How many pieces from the first it holds (all of them when it stores the blob).
        pieces: u32,
        /// Piece answers it is preparing or sending now, to anyone.
        load: u32,
        /// Pieces beyond the first `pieces` it holds too (received, not yet written).
        ahead: Vec<u32>,
    },
    /// The peer takes no more piece requests now (core's `piece_schedule::serves_now`, or
    /// its `--max-upload-rate` turn is too far off): not a fault, and not a sign it lacks the
    /// piece. Ask another holder, or this one again after a short rest.
    Busy,
    /// The peer sent this piece to these peers (their peer ids, as bytes) lately and keeps
    /// its upload for what others do not hold yet (core's `piece_schedule::recent_sends`):
    /// ask them, and ask for this piece insisting from then on. Only an answer to a `Piece`
    /// request that does not insist.
    Elsewhere(Vec<Vec<u8>>),
}

impl SyncResponse {
    /// The piece bytes or piece hashes this answer carries, in bytes (0 for any other answer):
    /// what a peer's received-bytes count adds.
    pub(crate) fn piece_payload_len(&self) -> usize {
        match self {
            SyncResponse::Piece { bytes, .. } => bytes.len(),
            SyncResponse::PieceHashes(list) => list.len() * 32,
            _ => 0,
        }
    }
}

/// An answer to a request about pieces as the fetcher takes it, from libp2p or a piece link
/// alike; an answer that belongs to log sync is given back (the peer answered the wrong
/// kind). A redirect keeps the peer ids that parse, no more than core's rule names.
pub(crate) fn piece_answer(response: SyncResponse) -> Result<PieceAnswer, SyncResponse> {
    Ok(match response {
        SyncResponse::Piece { total, bytes } => PieceAnswer::Data { total, bytes },
        SyncResponse::PieceHashes(list) => PieceAnswer::Hashes(list),
        SyncResponse::Missing => PieceAnswer::Missing,
        SyncResponse::Busy => PieceAnswer::Busy,
        SyncResponse::Elsewhere(named) => PieceAnswer::Elsewhere(
            named
                .iter()
                .filter_map(|bytes| libp2p::PeerId::from_bytes(bytes).ok())
                .take(pyrsia_core::piece_schedule::recent_sends::COPIES_BEFORE_REDIRECT)
                .map(|id| id.to_string())
                .collect(),
        ),
        SyncResponse::Have {
            total,
            pieces,
            load,
            mut ahead,
        } => {
            ahead.truncate(pyrsia_std::peers::MAX_AHEAD);
            PieceAnswer::Have {
                total,
                pieces,
                load,
                ahead,
            }
        }
        other @ (SyncResponse::Checkpoint(_)
        | SyncResponse::Entries(_)
        | SyncResponse::Consistency(_)) => return Err(other),
    })
}

pub mod legacy;
pub(crate) mod link;
mod piece_frame;

/// Frames [`SyncRequest`]s and [`SyncResponse`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

/// Reads a frame's header; returns its payload's length (at most `max`).
async fn read_header<T>(io: &mut T, max: u32) -> io::Result<usize>
where
    T: AsyncRead + Unpin + Send,
{
    let mut header = [0u8; FRAME_HEADER_LEN];
    io.read_exact(&mut header).await?;
    let header = FrameHeader::parse(&header, max)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(header.len as usize)
}

/// Decodes a frame's payload; what does not decode is `InvalidData`.
fn decode<M: for<'de> Deserialize<'de>>(payload: &[u8]) -> io::Result<M> {
    decode_payload(payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

async fn read_payload<T>(io: &mut T, max: u32) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut payload = vec![0u8; read_header(io, max).await?];
    io.read_exact(&mut payload).await?;
    Ok(payload)
}

async fn read_request_frame<T>(io: &mut T, protocol: &StreamProtocol) -> io::Result<SyncRequest>
where
    T: AsyncRead + Unpin + Send,
{
    let payload = read_payload(io, MAX_REQUEST).await?;
    if *protocol == LOG_SYNC_PROTOCOL_V1 {
        decode(&legacy::request_from_v1(payload))
    } else {
        decode(&payload)
    }
}

async fn write_frame<T, M>(io: &mut T, message: &M) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
    M: Serialize,
{
    let frame = encode_vec(message)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    io.write_all(&frame).await?;
    io.close().await
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_request_frame(io, protocol).await {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(SyncRequest::Malformed(e.to_string()))
            }
            result => result,
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        // The header and the variant index first: a piece's bytes are read straight into
        // the answer's buffer ([`piece_frame`]), anything else is decoded by postcard.
        let len = read_header(io, FRAME_LEN_MAX).await?;
        if len == 0 {
            return decode(&[]);
        }
        let mut variant = [0u8; 1];
        io.read_exact(&mut variant).await?;
        if variant[0] == piece_frame::PIECE_VARIANT {
            return piece_frame::read_piece_rest(io, len).await;
        }
        let mut payload = vec![0u8; len];
        payload[0] = variant[0];
        io.read_exact(&mut payload[1..]).await?;
        decode(&payload)
    }

    async fn write_request<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        request: SyncRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if *protocol == LOG_SYNC_PROTOCOL_V1 {
            let frame = legacy::request_frame_v1(&request)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            io.write_all(&frame).await?;
            return io.close().await;
        }
        write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        protocol: &StreamProtocol,
        io: &mut T,
        response: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let response = if *protocol == LOG_SYNC_PROTOCOL_V1 {
            legacy::response_for_v1(response)
        } else {
            response
        };
        match response {
            SyncResponse::Piece { total, bytes } => {
                let written = piece_frame::write_piece(io, total, &bytes).await;
                bytes.recycle();
                written
            }
            response => write_frame(io, &response).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec as _;

    #[test]
    fn piece_bytes_keep_the_wire_format_of_a_plain_byte_vector() {
        // Variant 2 (Piece), total 5, then the length and the bytes: what nodes that wrote
        // `bytes` element by element sent, so old and new nodes understand each other.
        let piece = SyncResponse::Piece {
            total: 5,
            bytes: vec![1, 2, 3].into(),
        };
        let wire = postcard::to_allocvec(&piece).unwrap();
        assert_eq!(wire, [2, 5, 3, 1, 2, 3]);
        assert_eq!(postcard::from_bytes::<SyncResponse>(&wire).unwrap(), piece);
    }

    #[test]
    fn insisting_piece_requests_and_elsewhere_answers_round_trip() {
        let request = SyncRequest::Piece {
            digest: [7; 32],
            offset: 1 << 20,
            len: 1 << 20,
            fetch: None,
            insist: true,
        };
        let wire = postcard::to_allocvec(&request).unwrap();
        assert_eq!(wire.last(), Some(&1), "insist travels last");
        assert_eq!(postcard::from_bytes::<SyncRequest>(&wire).unwrap(), request);
        let named = SyncResponse::Elsewhere(vec![vec![1, 2], vec![3]]);
        let wire = postcard::to_allocvec(&named).unwrap();
        assert_eq!(
            wire,
            [8, 2, 2, 1, 2, 1, 3],
            "the last variant: ids as byte strings"
        );
        assert_eq!(postcard::from_bytes::<SyncResponse>(&wire).unwrap(), named);
    }

    #[test]
    fn frames_round_trip_and_oversized_ones_are_refused_before_reading() {
        smol::block_on(async {
            let mut codec = SyncCodec;
            let mut buf = Vec::new();
            let response = SyncResponse::Entries(vec![vec![1, 2, 3], vec![]]);
            codec
                .write_response(
                    &LOG_SYNC_PROTOCOL,
                    &mut futures::io::Cursor::new(&mut buf),
                    response.clone(),
                )
                .await
                .unwrap();
            let read = codec
                .read_response(&LOG_SYNC_PROTOCOL, &mut futures::io::Cursor::new(&buf))
                .await
                .unwrap();
            assert_eq!(read, response);

            // A request header claiming 1 GiB: refused from the header alone (handed over as
            // malformed, so that the sender is struck).
            let mut huge = vec![pyrsia_core::wire::WIRE_VERSION];
            huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
            let read = codec
                .read_request(&LOG_SYNC_PROTOCOL, &mut futures::io::Cursor::new(&huge))
                .await
                .unwrap();
            assert!(matches!(read, SyncRequest::Malformed(_)), "{read:?}");
            // Garbage payload: malformed; a truncated frame: an error (the stream broke).
            let garbage = [pyrsia_core::wire::WIRE_VERSION, 2, 0, 0, 0, 0xff, 0xff];
            let read = codec
                .read_request(&LOG_SYNC_PROTOCOL, &mut futures::io::Cursor::new(&garbage))
                .await
                .unwrap();
            assert!(matches!(read, SyncRequest::Malformed(_)), "{read:?}");
            assert!(
                codec
                    .read_request(
                        &LOG_SYNC_PROTOCOL,
                        &mut futures::io::Cursor::new(&garbage[..3])
                    )
                    .await
                    .is_err()
            );
        });
    }
}
