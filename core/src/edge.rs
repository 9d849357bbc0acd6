//! The edge protocol: how an edge cache (`pyrsia-embedded`) asks a parent (a full node, or
//! another edge cache) for the log's checkpoint, membership changes, the proof that an artifact
//! is committed, and the artifact's pieces; and how it answers its own LAN peers with the same
//! messages.
//!
//! It runs over any byte stream: a UART, a TCP socket. Each message is postcard, framed with
//! COBS (a `0x00` byte ends a frame). The exchange is strictly one request, one response, so a
//! device needs one receive buffer per link. Every size is bounded by a constant here:
//! a device sizes its buffers from them and a peer that sends more is refused before anything
//! is allocated.
//!
//! What the messages carry is enough to verify without trusting the sender
//! ([`crate::light::LightClient`]): a signed checkpoint with the proof that links it to the
//! verifier's trusted one, a `Commit` entry with its inclusion proof, and each piece with its
//! inclusion proof in the committed piece root (or, for a blob of one piece, its digest).

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::tlog::Hash;
use crate::tlog::checkpoint::MAX_NOTE_LEN;

/// Protocol version; a peer answering another version is refused.
pub const EDGE_VERSION: u8 = 1;

/// The most hashes in one proof: trees and piece lists are smaller than 2^64.
pub const MAX_PROOF_HASHES: usize = 64;

/// The most bytes of blob data in one [`Response::Piece`].
pub const CHUNK_LEN: usize = 8 * 1024;

/// The longest postcard message either side sends: a checkpoint note with its link proof is the
/// largest; commit entries and chunks fit under it.
pub const MAX_MESSAGE_LEN: usize = MAX_NOTE_LEN + MAX_PROOF_HASHES * 32 + 64;

/// The longest `Commit` entry served to an edge: what is left of a message beside the proof.
pub const MAX_EDGE_ENTRY_LEN: usize = MAX_MESSAGE_LEN - MAX_PROOF_HASHES * 32 - 64;

/// The longest request: requests are fixed-size apart from their digests.
pub const MAX_REQUEST_LEN: usize = 96;

/// A COBS frame's worst-case length for a message of `len` bytes, with its `0x00` end.
pub const fn frame_len(len: usize) -> usize {
    len + len / 254 + 2
}

/// The longest frame on the wire.
pub const MAX_FRAME_LEN: usize = frame_len(MAX_MESSAGE_LEN);

/// The longest request frame on the wire.
pub const MAX_REQUEST_FRAME_LEN: usize = frame_len(MAX_REQUEST_LEN);

/// What an edge (or any client of the protocol) asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The first message of a session: the asker's protocol version.
    Hello {
        /// [`EDGE_VERSION`].
        version: u8,
    },
    /// The latest checkpoint, with the consistency proof from tree size `have` (the asker's
    /// trusted size), or with `have == 0` the inclusion proof of the genesis entry at index 0.
    Checkpoint {
        /// The asker's trusted tree size, 0 before its first checkpoint.
        have: u64,
    },
    /// The membership change that starts epoch `epoch + 1`, if the log has one.
    Membership {
        /// The asker's current epoch.
        epoch: u64,
    },
    /// The `Commit` entry listing `digest`, with its inclusion proof in the tree of size
    /// `tree_size` (the asker's trusted size).
    Lookup {
        /// The artifact.
        digest: Digest,
        /// The tree the proof must be for.
        tree_size: u64,
    },
    /// Up to [`CHUNK_LEN`] bytes of piece `index` of blob `digest`, from `offset` in the piece.
    Piece {
        /// The blob.
        digest: Digest,
        /// The piece, from 0.
        index: u32,
        /// Where in the piece the data starts.
        offset: u32,
    },
    /// The asker ends the session.
    Goodbye,
}

/// Why a request got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorCode {
    /// Not in the log, or not held here.
    NotFound,
    /// Held elsewhere but not reachable now (the parent is down), or not for that tree size.
    Unavailable,
    /// The request makes no sense (an offset past the piece, an unknown version).
    BadRequest,
    /// The answer would exceed the protocol's limits (an entry over [`MAX_EDGE_ENTRY_LEN`]).
    TooLarge,
}

impl ErrorCode {
    /// A short name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not found",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::BadRequest => "bad request",
            ErrorCode::TooLarge => "too large",
        }
    }
}

/// The answer to a [`Request`]. Byte fields borrow from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// Answer to [`Request::Hello`].
    Hello {
        /// The answerer's [`EDGE_VERSION`].
        version: u8,
    },
    /// Answer to [`Request::Checkpoint`].
    Checkpoint {
        /// The signed note (C2SP format).
        note: &'a str,
        /// The proof asked for, as concatenated 32-byte hashes.
        #[serde(borrow)]
        link: Hashes<'a>,
    },
    /// Answer to [`Request::Membership`]: the `AddMember`/`RemoveMember` entry, or `None`.
    Membership {
        /// The entry's bytes.
        entry: Option<&'a [u8]>,
    },
    /// Answer to [`Request::Lookup`].
    Committed {
        /// The entry's index in the log.
        index: u64,
        /// The tree size the proof is for.
        tree_size: u64,
        /// The `Commit` entry's bytes.
        entry: &'a [u8],
        /// Its inclusion proof.
        #[serde(borrow)]
        proof: Hashes<'a>,
    },
    /// Answer to [`Request::Piece`].
    Piece {
        /// The whole blob's size in bytes.
        blob_size: u64,
        /// Where in the piece `data` starts (the request's offset).
        offset: u32,
        /// Up to [`CHUNK_LEN`] bytes.
        data: &'a [u8],
        /// At offset 0 of a blob with a committed piece root: the piece's inclusion proof in
        /// it. Otherwise empty.
        #[serde(borrow)]
        proof: Hashes<'a>,
    },
    /// Answer to [`Request::Goodbye`].
    Goodbye,
    /// The request was refused.
    Error(ErrorCode),
}

/// Concatenated 32-byte hashes (a Merkle proof) as they travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes<'a>(#[serde(borrow)] pub &'a [u8]);

impl<'a> Hashes<'a> {
    /// No hashes.
    pub const EMPTY: Hashes<'static> = Hashes(&[]);

    /// Borrows `hashes` flattened into bytes.
    pub fn from_hashes(hashes: &'a [Hash]) -> Self {
        Hashes(hashes.as_flattened())
    }

    /// The hashes in place, or `None` if the bytes are not whole hashes or more than
    /// [`MAX_PROOF_HASHES`].
    pub fn as_hashes(&self) -> Option<&'a [Hash]> {
        let (hashes, rest) = self.0.as_chunks::<32>();
        (rest.is_empty() && hashes.len() <= MAX_PROOF_HASHES).then_some(hashes)
    }

    /// The hashes copied out (to keep them past the buffer they arrived in), or `None` as for
    /// [`Hashes::as_hashes`].
    pub fn to_vec(&self) -> Option<heapless::Vec<Hash, MAX_PROOF_HASHES>> {
        if !self.0.len().is_multiple_of(32) || self.0.len() / 32 > MAX_PROOF_HASHES {
            return None;
        }
        let mut out = heapless::Vec::new();
        for chunk in self.0.chunks_exact(32) {
            let hash: Hash = chunk.try_into().ok()?;
            out.push(hash).ok()?;
        }
        Some(out)
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// The message does not fit the buffer (or the protocol's maximum).
    TooLong,
    /// The frame is not valid COBS, or its content is not a message.
    Malformed,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::TooLong => "edge frame longer than the protocol allows",
            FrameError::Malformed => "malformed edge frame",
        })
    }
}

impl core::error::Error for FrameError {}

/// Encodes `message` as one COBS frame ending in `0x00` into `buf`; returns the frame.
pub fn encode<'b, T: Serialize>(
    message: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8], FrameError> {
    postcard::to_slice_cobs(message, buf).map_err(|_| FrameError::TooLong)
}

/// Decodes one frame (its bytes without the final `0x00`) in place and reads the message,
/// which borrows from `frame`. Trailing bytes after the message are refused: one frame, one
/// message.
pub fn decode<'f, T: Deserialize<'f>>(frame: &'f mut [u8]) -> Result<T, FrameError> {
    let len = cobs::decode_in_place(frame).map_err(|_| FrameError::Malformed)?;
    let (message, rest) =
        postcard::take_from_bytes(&frame[..len]).map_err(|_| FrameError::Malformed)?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed);
    }
    Ok(message)
}

/// Collects bytes from a stream into one frame at a time in a caller's buffer, refusing a
/// frame longer than the buffer before storing more of it. The caller feeds what it read and
/// gets back how many bytes were consumed and whether a frame ended; bytes past a frame's end
/// stay with the caller.
#[derive(Debug)]
pub struct FrameReader<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflowed: bool,
}

/// What [`FrameReader::push`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Push {
    /// All the input was consumed and the frame has not ended.
    More,
    /// A frame ended after `consumed` input bytes; read it with [`FrameReader::frame`].
    Frame {
        /// Bytes of the input used, the `0x00` included.
        consumed: usize,
    },
    /// A frame longer than the buffer ended after `consumed` bytes; it was dropped.
    TooLong {
        /// Bytes of the input used, the `0x00` included.
        consumed: usize,
    },
}

impl<'b> FrameReader<'b> {
    /// An empty reader whose frames may be as long as `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        FrameReader {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    /// Feeds bytes read from the stream. After [`Push::Frame`], call [`FrameReader::frame`]
    /// before pushing again.
    pub fn push(&mut self, input: &[u8]) -> Push {
        for (i, &byte) in input.iter().enumerate() {
            if byte == 0 {
                let overflowed = core::mem::replace(&mut self.overflowed, false);
                if overflowed {
                    self.len = 0;
                    return Push::TooLong { consumed: i + 1 };
                }
                return Push::Frame { consumed: i + 1 };
            }
            if self.len == self.buf.len() {
                self.overflowed = true;
            } else if !self.overflowed {
                self.buf[self.len] = byte;
                self.len += 1;
            }
        }
        Push::More
    }

    /// The frame that just ended, for [`decode`]; the reader is empty again afterwards.
    pub fn frame(&mut self) -> &mut [u8] {
        let len = core::mem::take(&mut self.len);
        &mut self.buf[..len]
    }
}

#[cfg(test)]
mod tests;
