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
//! update, a ping) goes out when yamux flushes, which it does once no frame waits
//! (`third_party/yamux`); TLS (`third_party/futures-rustls`) then sends the records held
//! since the last flush, or every 48 KiB, in one `writev`.

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
    /// each (a socket whose buffer is nearly full); with a `socket`, the calls go on to it
    /// and reads come from it.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<Vec<u8>>,
        limit: Option<usize>,
        socket: Option<smol::net::TcpStream>,
    }

    impl AsyncRead for Recorder {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            match &mut self.socket {
                Some(socket) => Pin::new(socket).poll_read(cx, buf),
                None => Poll::Ready(Ok(0)),
            }
        }
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
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut call: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            call.truncate(self.limit.unwrap_or(usize::MAX));
            if let Some(socket) = &mut self.socket {
                let sent = std::task::ready!(Pin::new(socket).poll_write(cx, &call))?;
                call.truncate(sent);
            }
            let len = call.len();
            self.calls.push(call);
            Poll::Ready(Ok(len))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match &mut self.socket {
                Some(socket) => Pin::new(socket).poll_flush(cx),
                None => Poll::Ready(Ok(())),
            }
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            match &mut self.socket {
                Some(socket) => Pin::new(socket).poll_close(cx),
                None => Poll::Ready(Ok(())),
            }
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

    /// What TLS 1.3 adds to a record's plaintext: header, content type, AEAD tag.
    const RECORD_OVERHEAD: usize = 5 + 1 + 16;

    #[test]
    fn tls_sends_a_run_of_records_in_one_write_and_what_is_left_at_the_flush() {
        use futures::AsyncReadExt;
        use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade};
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server_key = libp2p::identity::Keypair::generate_ed25519();
            let server = smol::spawn(async move {
                let (socket, _) = listener.accept().await.unwrap();
                let config = libp2p::tls::Config::new(&server_key).unwrap();
                let (_, mut tls) = config.upgrade_inbound(socket, "/tls/1.0.0").await.unwrap();
                let mut received = Vec::new();
                tls.read_to_end(&mut received).await.unwrap();
                received
            });
            let socket = Recorder {
                socket: Some(smol::net::TcpStream::connect(address).await.unwrap()),
                ..Recorder::default()
            };
            let client_key = libp2p::identity::Keypair::generate_ed25519();
            let config = libp2p::tls::Config::new(&client_key).unwrap();
            let (_, mut tls) = config.upgrade_outbound(socket, "/tls/1.0.0").await.unwrap();
            tls.get_mut().0.calls.clear();
            let lengths = |tls: &libp2p::tls::TlsStream<Recorder>| -> Vec<usize> {
                tls.get_ref().0.calls.iter().map(Vec::len).collect()
            };

            let frames: Vec<u8> = (0..3 * TLS_RECORD).map(|i| (i % 251) as u8).collect();
            for frame in frames.chunks(TLS_RECORD) {
                tls.write_all(frame).await.unwrap();
            }
            assert_eq!(
                lengths(&tls),
                [3 * (TLS_RECORD + RECORD_OVERHEAD)],
                "three full records leave in one write"
            );
            tls.write_all(b"a window update").await.unwrap();
            assert_eq!(lengths(&tls).len(), 1, "a short record waits");
            tls.flush().await.unwrap();
            assert_eq!(
                lengths(&tls)[1..],
                [b"a window update".len() + RECORD_OVERHEAD],
                "the flush sends it"
            );
            tls.close().await.unwrap();
            let mut sent = frames;
            sent.extend_from_slice(b"a window update");
            assert_eq!(server.await, sent);
        });
    }
}
