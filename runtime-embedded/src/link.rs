//! A framed link over any byte stream (`embedded-io` Read/Write: a UART, a socket): sends one
//! message as a COBS frame, receives one frame into a fixed buffer. The buffers are the
//! caller's ([`LinkBuffers`], a `static` on a device, so nothing large is ever on the stack),
//! sized for the direction: a link to a parent receives the largest answers and sends small
//! requests ([`ParentBuffers`]), a link to LAN peers the reverse ([`PeerBuffers`]).

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

/// Receive and send buffers for one link.
pub struct LinkBuffers<const RX: usize, const TX: usize> {
    rx: [u8; RX],
    tx: [u8; TX],
}

impl<const RX: usize, const TX: usize> LinkBuffers<RX, TX> {
    /// Zeroed buffers; `const`, so a device can keep them in a `static`.
    pub const fn new() -> Self {
        LinkBuffers {
            rx: [0; RX],
            tx: [0; TX],
        }
    }
}

impl<const RX: usize, const TX: usize> Default for LinkBuffers<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Buffers for the link to a parent: the largest answers in, requests out.
pub type ParentBuffers = LinkBuffers<MAX_FRAME_LEN, MAX_REQUEST_FRAME_LEN>;

/// Buffers for the link to a LAN peer: requests in, the largest answers out.
pub type PeerBuffers = LinkBuffers<MAX_REQUEST_FRAME_LEN, MAX_FRAME_LEN>;

/// A framed link over `IO`.
pub struct Link<'b, IO> {
    io: IO,
    reader: FrameReader<'b>,
    pending: [u8; READ_CHUNK],
    start: usize,
    end: usize,
    tx: &'b mut [u8],
}

impl<'b, IO: Read + Write> Link<'b, IO> {
    /// A link over `io` using `buffers`.
    pub fn new<const RX: usize, const TX: usize>(
        io: IO,
        buffers: &'b mut LinkBuffers<RX, TX>,
    ) -> Self {
        Link {
            io,
            reader: FrameReader::new(&mut buffers.rx),
            pending: [0; READ_CHUNK],
            start: 0,
            end: 0,
            tx: &mut buffers.tx,
        }
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&mut self, message: &T) -> Result<(), LinkError> {
        let frame = encode(message, self.tx).map_err(LinkError::Frame)?;
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
