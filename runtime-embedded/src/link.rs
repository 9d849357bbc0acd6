//! A framed link over any byte stream (`embedded-io` Read/Write: a UART, a socket): sends one
//! message as a COBS frame, receives one frame into a fixed buffer. `RX` and `TX` are the
//! largest frames each way, so a link to a parent (large answers, small requests) and a link
//! to LAN peers (the reverse) each cost only what they need.

use embedded_io::{Error as _, ErrorKind, Read, Write};
use pyrsia_core::edge::{
    FrameError, FrameReader, MAX_FRAME_LEN, MAX_REQUEST_FRAME_LEN, Push, Request, Response, decode,
    encode,
};
use serde::{Deserialize, Serialize};

/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 64;

/// Why a link operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LinkError {
    /// The stream failed.
    Io(#[cfg_attr(feature = "defmt", defmt(Debug2Format))] ErrorKind),
    /// The stream ended.
    Closed,
    /// A frame that is not a message, or one longer than this link accepts (dropped).
    Frame(FrameError),
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::Io(kind) => write!(f, "link: {kind:?}"),
            LinkError::Closed => f.write_str("link closed"),
            LinkError::Frame(e) => write!(f, "link: {e}"),
        }
    }
}

/// A framed link with an `RX`-byte receive buffer and a `TX`-byte send buffer.
pub struct Link<IO, const RX: usize, const TX: usize> {
    io: IO,
    reader: FrameReader<RX>,
    pending: [u8; READ_CHUNK],
    start: usize,
    end: usize,
    tx: [u8; TX],
}

/// The link to a parent: it asks small requests and receives the largest answers.
pub type ParentLink<IO> = Link<IO, MAX_FRAME_LEN, MAX_REQUEST_FRAME_LEN>;

/// The link to a LAN peer: it receives small requests and sends the largest answers.
pub type PeerLink<IO> = Link<IO, MAX_REQUEST_FRAME_LEN, MAX_FRAME_LEN>;

impl<IO: Read + Write, const RX: usize, const TX: usize> Link<IO, RX, TX> {
    /// A link over `io`.
    pub const fn new(io: IO) -> Self {
        Link {
            io,
            reader: FrameReader::new(),
            pending: [0; READ_CHUNK],
            start: 0,
            end: 0,
            tx: [0; TX],
        }
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), LinkError> {
        let frame = encode(message, &mut self.tx).map_err(LinkError::Frame)?;
        self.io
            .write_all(frame)
            .map_err(|e| LinkError::Io(e.kind()))?;
        self.io.flush().map_err(|e| LinkError::Io(e.kind()))
    }

    /// Receives one message; it borrows the link's buffer until the next call.
    pub fn receive<'a, T: Deserialize<'a>>(&'a mut self) -> Result<T, LinkError> {
        loop {
            if self.start == self.end {
                let n = self
                    .io
                    .read(&mut self.pending)
                    .map_err(|e| LinkError::Io(e.kind()))?;
                if n == 0 {
                    return Err(LinkError::Closed);
                }
                self.start = 0;
                self.end = n;
            }
            match self.reader.push(&self.pending[self.start..self.end]) {
                Push::More => self.start = self.end,
                Push::Frame { consumed } => {
                    self.start += consumed;
                    break;
                }
                Push::TooLong { consumed } => {
                    self.start += consumed;
                    return Err(LinkError::Frame(FrameError::TooLong));
                }
            }
        }
        decode(self.reader.frame()).map_err(LinkError::Frame)
    }

    /// Sends `request` and receives the answer.
    pub fn call<'a>(&'a mut self, request: &Request) -> Result<Response<'a>, LinkError> {
        self.send(request)?;
        self.receive()
    }

    /// The stream, back.
    pub fn into_inner(self) -> IO {
        self.io
    }
}
