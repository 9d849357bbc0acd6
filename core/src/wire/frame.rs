//! Length-prefixed frames: `[version: u8][length: u32 little-endian][postcard payload]`.
//!
//! A reader first takes [`FRAME_HEADER_LEN`] bytes and calls [`FrameHeader::parse`]; only when
//! the version is known and the length within the link's maximum does it set aside a buffer
//! for the payload. [`split`] does the same on an in-memory buffer for stream decoders.

use core::fmt;

use serde::{Deserialize, Serialize};

/// The wire format version this core speaks.
pub const WIRE_VERSION: u8 = 1;
/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 5;
/// The largest payload any link accepts (links may set a smaller maximum; the edge link does).
/// Blob data travels in pieces well below this.
pub const FRAME_LEN_MAX: u32 = 4 * 1024 * 1024;

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameHeader {
    /// Wire version of the payload.
    pub version: u8,
    /// Payload length in bytes.
    pub len: u32,
}

/// Why a frame or envelope was rejected. Each is a peer's fault except [`WireError::BufferFull`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header or its declared payload.
    Truncated {
        /// Bytes the frame needs in all.
        needed: usize,
    },
    /// A version this core does not speak.
    UnsupportedVersion(u8),
    /// The declared length is above the link's maximum; nothing was allocated.
    TooLarge {
        /// Declared payload length.
        len: u32,
        /// The link's maximum.
        max: u32,
    },
    /// The payload is not a valid postcard encoding of the expected message.
    Malformed,
    /// The payload decodes but has bytes left over.
    TrailingBytes,
    /// The payload decodes but is not the canonical encoding of what it decodes to.
    NonCanonical,
    /// The envelope was signed for another purpose than the one expected.
    WrongPurpose,
    /// The envelope's signature does not verify.
    BadSignature,
    /// Our own buffer is too small for the encoding (a local error, not the peer's).
    BufferFull,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { needed } => write!(f, "frame truncated ({needed} bytes needed)"),
            WireError::UnsupportedVersion(v) => write!(f, "unsupported wire version {v}"),
            WireError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            WireError::Malformed => f.write_str("malformed payload"),
            WireError::TrailingBytes => f.write_str("trailing bytes after payload"),
            WireError::NonCanonical => f.write_str("payload is not canonically encoded"),
            WireError::WrongPurpose => f.write_str("envelope signed for another purpose"),
            WireError::BadSignature => f.write_str("envelope signature does not verify"),
            WireError::BufferFull => f.write_str("encode buffer too small"),
        }
    }
}

impl core::error::Error for WireError {}

impl FrameHeader {
    /// Parses and checks a header against the link's `max_len` (at most [`FRAME_LEN_MAX`]).
    pub fn parse(bytes: &[u8], max_len: u32) -> Result<Self, WireError> {
        let header: &[u8; FRAME_HEADER_LEN] = bytes
            .get(..FRAME_HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(WireError::Truncated {
                needed: FRAME_HEADER_LEN,
            })?;
        let version = header[0];
        if version != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
        let max = max_len.min(FRAME_LEN_MAX);
        if len > max {
            return Err(WireError::TooLarge { len, max });
        }
        Ok(FrameHeader { version, len })
    }

    /// Header plus payload length.
    pub const fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.len as usize
    }
}

/// The first complete frame of a buffer, as found by [`split`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split<'a> {
    /// The frame's payload, for [`decode_payload`].
    pub payload: &'a [u8],
    /// The bytes after the frame.
    pub rest: &'a [u8],
}

/// Splits the first complete frame off `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some(split))` when one is complete. Errors are final for the connection.
pub fn split(buf: &[u8], max_len: u32) -> Result<Option<Split<'_>>, WireError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let header = FrameHeader::parse(buf, max_len)?;
    if buf.len() < header.frame_len() {
        return Ok(None);
    }
    let (frame, rest) = buf.split_at(header.frame_len());
    Ok(Some(Split {
        payload: &frame[FRAME_HEADER_LEN..],
        rest,
    }))
}

/// Encodes `message` as one frame into `buf`; returns the frame's bytes.
pub fn encode<'b, T: Serialize>(message: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8], WireError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Err(WireError::BufferFull);
    }
    let (header, body) = buf.split_at_mut(FRAME_HEADER_LEN);
    let payload_len = postcard::to_slice(message, body)
        .map_err(|_| WireError::BufferFull)?
        .len();
    let len = u32::try_from(payload_len).map_err(|_| WireError::BufferFull)?;
    if len > FRAME_LEN_MAX {
        return Err(WireError::BufferFull);
    }
    header[0] = WIRE_VERSION;
    header[1..].copy_from_slice(&len.to_le_bytes());
    Ok(&mut buf[..FRAME_HEADER_LEN + payload_len])
}

/// Encodes `message` as one frame into a new vector.
#[cfg(feature = "alloc")]
pub fn encode_vec<T: Serialize>(message: &T) -> Result<alloc::vec::Vec<u8>, WireError> {
    let payload = postcard::to_allocvec(message).map_err(|_| WireError::BufferFull)?;
    frame_payload(&payload)
}

/// Frames an already encoded `payload` (header, then the bytes): for a payload adapted
/// after encoding, e.g. to an older shape of a message.
#[cfg(feature = "alloc")]
pub fn frame_payload(payload: &[u8]) -> Result<alloc::vec::Vec<u8>, WireError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= FRAME_LEN_MAX)
        .ok_or(WireError::BufferFull)?;
    let mut frame = alloc::vec::Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.push(WIRE_VERSION);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(payload);
    Ok(frame)
}

/// Decodes one whole frame (header and payload, nothing more) into a message.
pub fn decode<'de, T: Deserialize<'de>>(frame: &'de [u8], max_len: u32) -> Result<T, WireError> {
    let header = FrameHeader::parse(frame, max_len)?;
    if frame.len() < header.frame_len() {
        return Err(WireError::Truncated {
            needed: header.frame_len(),
        });
    }
    if frame.len() > header.frame_len() {
        return Err(WireError::TrailingBytes);
    }
    decode_payload(&frame[FRAME_HEADER_LEN..])
}

/// Decodes a frame's payload; every byte must be used.
pub fn decode_payload<'de, T: Deserialize<'de>>(payload: &'de [u8]) -> Result<T, WireError> {
    let (message, rest) = postcard::take_from_bytes(payload).map_err(|_| WireError::Malformed)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg<'a> {
        Ping(u64),
        Have { digests: u32, name: &'a str },
    }

    #[test]
    fn round_trips() {
        let mut buf = [0u8; 64];
        let msg = Msg::Have {
            digests: 3,
            name: "alpine",
        };
        let frame = encode(&msg, &mut buf).unwrap();
        assert_eq!(frame[0], WIRE_VERSION);
        let frame: &[u8] = frame;
        assert_eq!(decode::<Msg>(frame, FRAME_LEN_MAX), Ok(msg));
        assert_eq!(encode_vec(&Msg::Ping(9)).unwrap(), {
            let mut b = [0u8; 16];
            encode(&Msg::Ping(9), &mut b).unwrap().to_vec()
        });
    }

    #[test]
    fn rejects_bad_frames_before_allocating() {
        let mut buf = [0u8; 32];
        let frame = encode(&Msg::Ping(1), &mut buf).unwrap().to_vec();
        // Truncated header and payload.
        assert_eq!(
            decode::<Msg>(&frame[..3], FRAME_LEN_MAX),
            Err(WireError::Truncated { needed: 5 })
        );
        assert_eq!(
            decode::<Msg>(&frame[..frame.len() - 1], FRAME_LEN_MAX),
            Err(WireError::Truncated {
                needed: frame.len()
            })
        );
        // Oversized: a length prefix far above the maximum is refused from the header alone.
        let huge = [WIRE_VERSION, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            FrameHeader::parse(&huge, FRAME_LEN_MAX),
            Err(WireError::TooLarge {
                len: u32::MAX,
                max: FRAME_LEN_MAX
            })
        );
        assert_eq!(
            FrameHeader::parse(&[WIRE_VERSION, 200, 0, 0, 0], 100),
            Err(WireError::TooLarge { len: 200, max: 100 })
        );
        assert_eq!(
            split(&huge, FRAME_LEN_MAX),
            Err(WireError::TooLarge {
                len: u32::MAX,
                max: FRAME_LEN_MAX
            })
        );
        // Unknown version.
        let mut v2 = frame.clone();
        v2[0] = 2;
        assert_eq!(
            decode::<Msg>(&v2, FRAME_LEN_MAX),
            Err(WireError::UnsupportedVersion(2))
        );
        // Trailing bytes after the frame, and inside the payload.
        let mut trailing = frame.clone();
        trailing.push(0);
        assert_eq!(
            decode::<Msg>(&trailing, FRAME_LEN_MAX),
            Err(WireError::TrailingBytes)
        );
        let mut padded = frame.clone();
        padded.push(0);
        padded[1] += 1;
        assert_eq!(
            decode::<Msg>(&padded, FRAME_LEN_MAX),
            Err(WireError::TrailingBytes)
        );
        // Garbage payload: unknown enum variant.
        let garbage = [WIRE_VERSION, 1, 0, 0, 0, 0x7f];
        assert_eq!(
            decode::<Msg>(&garbage, FRAME_LEN_MAX),
            Err(WireError::Malformed)
        );
        // A string length that points past the end.
        let lying = [WIRE_VERSION, 3, 0, 0, 0, 1, 3, 0x7f];
        assert_eq!(
            decode::<Msg>(&lying, FRAME_LEN_MAX),
            Err(WireError::Malformed)
        );
        // Encode into a buffer that is too small is our error, not a panic.
        assert_eq!(
            encode(&Msg::Ping(u64::MAX), &mut [0u8; 6]).unwrap_err(),
            WireError::BufferFull
        );
    }

    #[test]
    fn split_streams_frames() {
        let mut stream = encode_vec(&Msg::Ping(1)).unwrap();
        stream.extend(encode_vec(&Msg::Ping(2)).unwrap());
        let first = split(&stream, FRAME_LEN_MAX).unwrap().unwrap();
        assert_eq!(decode_payload::<Msg>(first.payload), Ok(Msg::Ping(1)));
        assert_eq!(
            split(&first.rest[..first.rest.len() - 1], FRAME_LEN_MAX),
            Ok(None)
        );
        let second = split(first.rest, FRAME_LEN_MAX).unwrap().unwrap();
        assert_eq!(decode_payload::<Msg>(second.payload), Ok(Msg::Ping(2)));
        assert!(second.rest.is_empty());
        assert_eq!(split(&[], FRAME_LEN_MAX), Ok(None));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Msg>(&bytes, FRAME_LEN_MAX);
            let _ = split(&bytes, 16);
        }

        #[test]
        fn messages_round_trip(n in any::<u64>(), name in "\\PC{0,20}", d in any::<u32>()) {
            for msg in [Msg::Ping(n), Msg::Have { digests: d, name: &name }] {
                let frame = encode_vec(&msg).unwrap();
                prop_assert_eq!(decode::<Msg>(&frame, FRAME_LEN_MAX), Ok(msg));
            }
        }
    }
}
