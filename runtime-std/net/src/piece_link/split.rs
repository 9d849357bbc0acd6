//! One TLS connection read by one thread and written by another, so a link's answers can go out
//! while its next requests come in (and the other way round at the asker). rustls keeps one
//! state for both directions; it sits behind a mutex that no thread holds while it waits for
//! the socket to bring bytes. A writer encrypts and writes to the socket under the mutex: the
//! reader then waits for it, never the other way round, and a link's requests are small and
//! bounded ([`pyrsia_core::piece_link::IN_FLIGHT`]), so two ends writing at once never both
//! wait on full socket buffers.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::DerefMut;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many ciphertext bytes the reader takes from the socket at once.
const READ_CHUNK: usize = 256 * 1024;

struct Shared<C> {
    /// The TLS state and the socket as the writers use it.
    tls: Mutex<(C, TcpStream)>,
    /// The socket again, to shut it down without waiting for a writer.
    closer: TcpStream,
}

impl<C> Shared<C> {
    fn lock(&self) -> MutexGuard<'_, (C, TcpStream)> {
        self.tls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reading end: plaintext as the peer sent it.
pub(crate) struct ReadHalf<C> {
    shared: Arc<Shared<C>>,
    socket: TcpStream,
    ciphertext: Box<[u8]>,
    start: usize,
    end: usize,
}

/// The writing end: plaintext in, records out to the socket before `write` returns.
pub(crate) struct WriteHalf<C> {
    shared: Arc<Shared<C>>,
}

/// Splits an established TLS connection (its handshake done) into its two ends.
pub(crate) fn split<C, D>(
    tls: rustls::StreamOwned<C, TcpStream>,
) -> io::Result<(ReadHalf<C>, WriteHalf<C>)>
where
    C: DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    let rustls::StreamOwned { mut conn, sock } = tls;
    // Whole pieces are written at once; the socket, not rustls, holds the writer back.
    conn.set_buffer_limit(None);
    let socket = sock.try_clone()?;
    let closer = sock.try_clone()?;
    let shared = Arc::new(Shared {
        tls: Mutex::new((conn, sock)),
        closer,
    });
    Ok((
        ReadHalf {
            shared: shared.clone(),
            socket,
            ciphertext: vec![0; READ_CHUNK].into_boxed_slice(),
            start: 0,
            end: 0,
        },
        WriteHalf { shared },
    ))
}

/// Writes what rustls has to send (held by the caller's lock).
fn send_records<C, D>(conn: &mut C, socket: &mut TcpStream) -> io::Result<()>
where
    C: DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while conn.wants_write() {
        conn.write_tls(socket)?;
    }
    Ok(())
}

impl<C, D> Read for ReadHalf<C>
where
    C: DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut guard = self.shared.lock();
                let (conn, socket) = &mut *guard;
                match conn.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if self.start < self.end {
                    let mut fresh = &self.ciphertext[self.start..self.end];
                    let taken = conn.read_tls(&mut fresh)?;
                    self.start += taken;
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    // An alert or a key update to answer.
                    send_records(conn, socket)?;
                    continue;
                }
            }
            let n = self.socket.read(&mut self.ciphertext)?;
            (self.start, self.end) = (0, n);
            if n == 0 {
                // The peer closed: rustls says whether it did so cleanly.
                let mut guard = self.shared.lock();
                guard.0.read_tls(&mut io::empty())?;
                guard
                    .0
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                return match guard.0.reader().read(out) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    other => other,
                };
            }
        }
    }
}

impl<C, D> Write for WriteHalf<C>
where
    C: DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut guard = self.shared.lock();
        let (conn, socket) = &mut *guard;
        let n = conn.writer().write(data)?;
        send_records(conn, socket)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut guard = self.shared.lock();
        let (conn, socket) = &mut *guard;
        send_records(conn, socket)
    }
}

impl<C> WriteHalf<C> {
    /// Closes the socket both ways: the reading end's next read ends, and so does the peer's
    /// (a writer blocked on the socket returns too).
    pub(crate) fn shut_down(&self) {
        let _ = self.shared.closer.shutdown(Shutdown::Both);
    }
}

impl<C> ReadHalf<C> {
    /// Closes the socket both ways, as [`WriteHalf::shut_down`].
    pub(crate) fn shut_down(&self) {
        let _ = self.shared.closer.shutdown(Shutdown::Both);
    }
}
