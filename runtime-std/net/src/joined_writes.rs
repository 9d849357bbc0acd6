//! yamux over a secured TCP connection, one TLS record per frame.
//!
//! yamux writes each frame in two calls, its 12-byte header and then its body, and TLS
//! (futures-rustls) seals every call into records of its own and sends them at once: a
//! 16 KiB piece frame became a 34-byte record and a 16,406-byte one, two `writev` calls on
//! the sender, two records to open on the receiver (measured with `strace` on a node-to-node
//! transfer: 14,059 writes of 34 bytes beside 12,237 of 16,406). [`JoinedWrites`] holds a
//! short write (a frame header) back and sends it with the next write in one vectored call,
//! and [`YamuxOverRecords`] caps a frame's body at [`FRAME_BODY`], so that header and body
//! fill exactly one TLS record of 16 KiB. A short write that nothing follows (a window
//! update, a ping) goes out when yamux flushes, which it does after every frame.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite, future};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// The largest plaintext of one TLS record (RFC 8446 §5.1).
const TLS_RECORD: usize = 16 * 1024;
/// A yamux frame header.
const YAMUX_HEADER: usize = 12;
/// The largest yamux frame body this node sends: header and body make one TLS record.
pub(crate) const FRAME_BODY: usize = TLS_RECORD - YAMUX_HEADER;
/// Writes up to this long are held back to go out with the next one (a yamux header is 12).
const HELD_MAX: usize = 64;

/// A connection whose short writes wait to be sent together with the next write (or the
/// next flush or close). Reads pass through.
pub(crate) struct JoinedWrites<C> {
    inner: C,
    held: Vec<u8>,
}

impl<C> JoinedWrites<C> {
    /// Wraps `inner`, holding nothing yet.
    pub(crate) fn new(inner: C) -> Self {
        JoinedWrites {
            inner,
            held: Vec::with_capacity(HELD_MAX),
        }
    }
}

impl<C: AsyncWrite + Unpin> JoinedWrites<C> {
    /// Sends what is held back, alone.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let sent = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..sent);
        }
        Poll::Ready(Ok(()))
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for JoinedWrites<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [io::IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read_vectored(cx, bufs)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for JoinedWrites<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.held.len() + buf.len() <= HELD_MAX {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        while !this.held.is_empty() {
            let both = [IoSlice::new(&this.held), IoSlice::new(buf)];
            let sent = std::task::ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &both))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let from_held = sent.min(this.held.len());
            this.held.drain(..from_held);
            if sent > from_held {
                return Poll::Ready(Ok(sent - from_held));
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_held(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_send_held(cx))?;
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// yamux ([`libp2p::yamux::Config`]) on a [`JoinedWrites`] connection, with frame bodies of
/// at most [`FRAME_BODY`]: the multiplexer of every TCP connection.
#[derive(Clone)]
pub(crate) struct YamuxOverRecords(libp2p::yamux::Config);

impl Default for YamuxOverRecords {
    fn default() -> Self {
        let mut config = libp2p::yamux::Config::default();
        config.set_split_send_size(FRAME_BODY);
        YamuxOverRecords(config)
    }
}

impl UpgradeInfo for YamuxOverRecords {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

impl<C> InboundConnectionUpgrade<C> for YamuxOverRecords
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = libp2p::yamux::Muxer<JoinedWrites<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(JoinedWrites::new(io), info)
    }
}

impl<C> OutboundConnectionUpgrade<C> for YamuxOverRecords
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = libp2p::yamux::Muxer<JoinedWrites<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(JoinedWrites::new(io), info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt;

    /// Records every call that reaches the connection, and accepts at most `limit` bytes of
    /// each (a socket whose buffer is nearly full).
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Vec<u8>>,
        limit: Option<usize>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut call: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            call.truncate(self.limit.unwrap_or(usize::MAX));
            let len = call.len();
            self.calls.push(call);
            Poll::Ready(Ok(len))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_header_goes_out_with_the_body_that_follows_it_in_one_call() {
        smol::block_on(async {
            let mut joined = JoinedWrites::new(Recorder::default());
            let header = [7u8; YAMUX_HEADER];
            let body = vec![9u8; FRAME_BODY];
            joined.write_all(&header).await.unwrap();
            assert!(joined.inner.calls.is_empty(), "a header alone waits");
            joined.write_all(&body).await.unwrap();
            joined.flush().await.unwrap();
            assert_eq!(joined.inner.calls.len(), 1);
            assert_eq!(joined.inner.calls[0].len(), TLS_RECORD);
            assert_eq!(&joined.inner.calls[0][..YAMUX_HEADER], &header);
            assert_eq!(&joined.inner.calls[0][YAMUX_HEADER..], &body[..]);
        });
    }

    #[test]
    fn a_header_alone_goes_out_on_flush_and_on_close() {
        smol::block_on(async {
            let mut joined = JoinedWrites::new(Recorder::default());
            joined.write_all(&[1; YAMUX_HEADER]).await.unwrap();
            joined.flush().await.unwrap();
            assert_eq!(joined.inner.calls, vec![vec![1; YAMUX_HEADER]]);
            joined.write_all(&[2; YAMUX_HEADER]).await.unwrap();
            joined.close().await.unwrap();
            assert_eq!(joined.inner.calls[1], vec![2; YAMUX_HEADER]);
        });
    }

    #[test]
    fn short_writes_by_the_connection_lose_and_repeat_nothing() {
        smol::block_on(async {
            let recorder = Recorder {
                limit: Some(5),
                ..Recorder::default()
            };
            let mut joined = JoinedWrites::new(recorder);
            let sent: Vec<u8> = (0..200u8).collect();
            for frame in [&sent[..12], &sent[12..100], &sent[100..112], &sent[112..]] {
                joined.write_all(frame).await.unwrap();
            }
            joined.flush().await.unwrap();
            let received: Vec<u8> = joined.inner.calls.concat();
            assert_eq!(received, sent);
        });
    }
}
