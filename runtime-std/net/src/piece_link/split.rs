//! One piece link after its TLS 1.3 handshake, split into a reading end and a writing end that
//! share nothing but the socket, so a link's answers can go out while its next requests come
//! in (and the other way round at the asker). rustls does the handshake ([`handshake`]) and
//! hands over the traffic keys; each end then protects its own direction's records
//! ([`super::records`]): no lock between the two threads, one copy of each byte on either
//! side of the socket, and no allocation per record.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::{DerefMut, Range};
use std::time::Instant;

use super::records::{self, HEADER_LEN, MAX_PLAINTEXT, MAX_RECORD, Opened, Opener, Sealer};

/// How many ciphertext bytes the reader takes from the socket at once.
const READ_CHUNK: usize = 256 * 1024;
/// Records sealed into one write to the socket.
const RECORDS_PER_WRITE: usize = 4;

const _: () = assert!(READ_CHUNK >= MAX_RECORD);

/// Completes a TLS handshake on `socket` by `deadline` (each read and write also waits at
/// most the socket's timeouts). rustls is given one record at a time, so it takes nothing
/// from the socket past the handshake's last record: what follows is the peer's first
/// protected record, for [`split`]. Everything the handshake has to send is sent.
pub(crate) fn handshake<C, D>(
    conn: &mut C,
    socket: &mut TcpStream,
    deadline: Instant,
) -> io::Result<()>
where
    C: DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    let mut records = OneRecordAtATime::default();
    while conn.is_handshaking() {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake took too long",
            ));
        }
        while conn.wants_write() {
            conn.write_tls(socket)?;
        }
        if !conn.wants_read() {
            continue;
        }
        if conn.read_tls(&mut records.reader(socket))? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the handshake",
            ));
        }
        if let Err(e) = conn.process_new_packets() {
            // The alert that says why, if the socket takes it.
            let _ = conn.write_tls(socket);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    while conn.wants_write() {
        conn.write_tls(socket)?;
    }
    Ok(())
}

/// Reads a socket for rustls during a handshake without going past the end of a record.
#[derive(Default)]
struct OneRecordAtATime {
    header: [u8; HEADER_LEN],
    /// Header bytes read from the socket, and handed to rustls.
    header_read: usize,
    header_given: usize,
    /// Bytes of the current record's body still to read.
    body_left: usize,
}

impl OneRecordAtATime {
    fn reader<'a>(&'a mut self, socket: &'a TcpStream) -> impl Read + 'a {
        OneRecordReader {
            state: self,
            socket,
        }
    }
}

struct OneRecordReader<'a> {
    state: &'a mut OneRecordAtATime,
    socket: &'a TcpStream,
}

impl Read for OneRecordReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let state = &mut *self.state;
        if out.is_empty() {
            return Ok(0);
        }
        if state.header_given == HEADER_LEN && state.body_left == 0 {
            // The last record is all read: the next begins.
            (state.header_read, state.header_given) = (0, 0);
        }
        if state.header_read < HEADER_LEN {
            let n = (&mut self.socket).read(&mut state.header[state.header_read..])?;
            if n == 0 {
                return Ok(0);
            }
            state.header_read += n;
            if state.header_read == HEADER_LEN {
                state.body_left =
                    usize::from(u16::from_be_bytes([state.header[3], state.header[4]]));
            }
        }
        if state.header_given < state.header_read {
            let header = &state.header[state.header_given..state.header_read];
            let n = header.len().min(out.len());
            out[..n].copy_from_slice(&header[..n]);
            state.header_given += n;
            return Ok(n);
        }
        let wanted = state.body_left.min(out.len());
        let n = (&mut self.socket).read(&mut out[..wanted])?;
        state.body_left -= n;
        Ok(n)
    }
}

/// The reading end: plaintext as the peer sent it.
pub(crate) struct ReadHalf {
    socket: TcpStream,
    opener: Opener,
    /// Records as read from the socket, opened in place.
    buffer: Box<[u8]>,
    /// The bytes of `buffer` not opened yet.
    unopened: Range<usize>,
    /// The plaintext of the last opened record not read yet.
    plaintext: Range<usize>,
    /// The peer sent `close_notify`.
    closed: bool,
    closer: TcpStream,
}

/// The writing end: plaintext in, records out to the socket. A write smaller than a record
/// waits for the next write or a flush, so a frame's head and its body share records.
pub(crate) struct WriteHalf {
    socket: TcpStream,
    sealer: Sealer,
    /// Plaintext waiting for more, less than a record's worth.
    pending: Vec<u8>,
    /// Sealed records on their way to the socket.
    records: Vec<u8>,
    closer: TcpStream,
}

/// Splits a connection whose handshake [`handshake`] completed into its two ends.
pub(crate) fn split(
    conn: impl Into<rustls::Connection>,
    socket: TcpStream,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let secrets = conn
        .into()
        .dangerous_extract_secrets()
        .map_err(io::Error::other)?;
    let reader = ReadHalf {
        socket: socket.try_clone()?,
        opener: Opener::new(secrets.rx)?,
        buffer: vec![0; READ_CHUNK].into_boxed_slice(),
        unopened: 0..0,
        plaintext: 0..0,
        closed: false,
        closer: socket.try_clone()?,
    };
    let writer = WriteHalf {
        closer: socket.try_clone()?,
        socket,
        sealer: Sealer::new(secrets.tx)?,
        pending: Vec::with_capacity(MAX_PLAINTEXT),
        records: Vec::with_capacity(RECORDS_PER_WRITE * MAX_RECORD),
    };
    Ok((reader, writer))
}

impl ReadHalf {
    /// Opens the next whole record in the buffer, if there is one.
    fn open_next(&mut self) -> io::Result<bool> {
        let Range { start, end } = self.unopened;
        if end - start < HEADER_LEN {
            return Ok(false);
        }
        let len = records::record_len(&self.buffer[start..start + HEADER_LEN])?;
        if end - start < len {
            return Ok(false);
        }
        self.unopened.start += len;
        match self.opener.open(&mut self.buffer[start..start + len])? {
            Opened::Data(within) => self.plaintext = start + within.start..start + within.end,
            Opened::Skip => {}
            Opened::Closed => self.closed = true,
        }
        Ok(true)
    }

    /// Reads more ciphertext from the socket; false at the end of the stream.
    fn fill(&mut self) -> io::Result<bool> {
        let Range { start, end } = self.unopened;
        if start == end {
            self.unopened = 0..0;
        } else if start + MAX_RECORD > self.buffer.len() {
            // The record that begins here might not fit after it.
            self.buffer.copy_within(start..end, 0);
            self.unopened = 0..end - start;
        }
        let end = self.unopened.end;
        let n = self.socket.read(&mut self.buffer[end..])?;
        self.unopened.end += n;
        Ok(n > 0)
    }
}

impl Read for ReadHalf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.plaintext.is_empty() {
                let n = self.plaintext.len().min(out.len());
                let from = self.plaintext.start;
                out[..n].copy_from_slice(&self.buffer[from..from + n]);
                self.plaintext.start += n;
                return Ok(n);
            }
            if self.closed {
                return Ok(0);
            }
            if self.open_next()? {
                continue;
            }
            if !self.fill()? {
                return if self.unopened.is_empty() {
                    Ok(0)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the piece link closed inside a TLS record",
                    ))
                };
            }
        }
    }
}

impl WriteHalf {
    /// Seals `pending` and then `data`, record by record, up to [`RECORDS_PER_WRITE`]
    /// records, and writes them; returns how much of `data` went.
    fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        self.records.clear();
        let (mut taken, mut sealed) = (0, 0);
        if !self.pending.is_empty() {
            taken = (MAX_PLAINTEXT - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..taken]);
            self.sealer.seal(&self.pending, &mut self.records)?;
            self.pending.clear();
            sealed = 1;
        }
        while taken < data.len() && sealed < RECORDS_PER_WRITE {
            let n = (data.len() - taken).min(MAX_PLAINTEXT);
            self.sealer
                .seal(&data[taken..taken + n], &mut self.records)?;
            taken += n;
            sealed += 1;
        }
        self.socket.write_all(&self.records)?;
        Ok(taken)
    }

    /// Closes the socket both ways: the reading end's next read ends, and so does the peer's
    /// (a writer blocked on the socket returns too).
    pub(crate) fn shut_down(&self) {
        let _ = self.closer.shutdown(Shutdown::Both);
    }
}

impl Write for WriteHalf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pending.len() + data.len() < MAX_PLAINTEXT {
            self.pending.extend_from_slice(data);
            return Ok(data.len());
        }
        self.send(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.send(&[])?;
        }
        Ok(())
    }
}

impl ReadHalf {
    /// Closes the socket both ways, as [`WriteHalf::shut_down`].
    pub(crate) fn shut_down(&self) {
        let _ = self.closer.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::Duration;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn configs(tickets: usize) -> (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
        let (client_key, server_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let mut client =
            libp2p::tls::make_client_config(&client_key, Some(server_key.public().to_peer_id()))
                .unwrap();
        client.enable_secret_extraction = true;
        let mut server = libp2p::tls::make_server_config(&server_key).unwrap();
        server.enable_secret_extraction = true;
        server.send_tls13_tickets = tickets;
        (Arc::new(client), Arc::new(server))
    }

    fn connected() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        for socket in [&client, &server] {
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
        }
        (client, server)
    }

    fn loopback() -> rustls::pki_types::ServerName<'static> {
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into())
    }

    /// The asker's end as `ask` opens it.
    fn our_asker(
        config: Arc<rustls::ClientConfig>,
        mut socket: TcpStream,
    ) -> (ReadHalf, WriteHalf) {
        let mut connection = rustls::ClientConnection::new(config, loopback()).unwrap();
        handshake(&mut connection, &mut socket, deadline()).unwrap();
        split(connection, socket).unwrap()
    }

    /// The holder's end as the listener opens it.
    fn our_holder(
        config: Arc<rustls::ServerConfig>,
        mut socket: TcpStream,
    ) -> (ReadHalf, WriteHalf) {
        let mut connection = rustls::ServerConnection::new(config).unwrap();
        handshake(&mut connection, &mut socket, deadline()).unwrap();
        split(connection, socket).unwrap()
    }

    fn deadline() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Our end against rustls's own record layer at the other end (a node that still uses it,
    /// or sends session tickets), both ways, up to the peer's close_notify.
    #[test]
    fn an_asker_of_ours_talks_to_a_holder_that_uses_rustls_records() {
        let (client_config, server_config) = configs(2);
        let (client_socket, server_socket) = connected();
        let holder = std::thread::spawn(move || {
            let connection = rustls::ServerConnection::new(server_config).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, server_socket);
            tls.write_all(&pattern((1 << 20) + 123, 1)).unwrap();
            let mut asked = vec![0; 70_000];
            tls.read_exact(&mut asked).unwrap();
            assert_eq!(asked, pattern(70_000, 2));
            tls.conn.send_close_notify();
            tls.flush().unwrap();
        });
        let (mut reader, mut writer) = our_asker(client_config, client_socket);
        let mut answer = vec![0; (1 << 20) + 123];
        reader.read_exact(&mut answer).unwrap();
        assert!(answer == pattern((1 << 20) + 123, 1));
        writer.write_all(&pattern(70_000, 2)).unwrap();
        writer.flush().unwrap();
        assert_eq!(
            reader.read(&mut [0; 16]).unwrap(),
            0,
            "close_notify ends the stream"
        );
        holder.join().unwrap();
    }

    /// An asker using rustls's record layer sends its first request in the same flight as its
    /// handshake's last message: the holder's handshake must not swallow it.
    #[test]
    fn a_holder_of_ours_keeps_a_request_sent_right_after_the_handshake() {
        let (client_config, server_config) = configs(0);
        let (client_socket, server_socket) = connected();
        let asker = std::thread::spawn(move || {
            let mut connection = rustls::ClientConnection::new(client_config, loopback()).unwrap();
            let mut socket = client_socket;
            // The handshake's last flight and the first request leave in one write.
            let mut flight = Vec::new();
            loop {
                while connection.wants_write() {
                    connection.write_tls(&mut flight).unwrap();
                }
                if !connection.is_handshaking() {
                    break;
                }
                socket.write_all(&flight).unwrap();
                flight.clear();
                connection.read_tls(&mut socket).unwrap();
                connection.process_new_packets().unwrap();
            }
            connection.writer().write_all(b"a first request").unwrap();
            while connection.wants_write() {
                connection.write_tls(&mut flight).unwrap();
            }
            socket.write_all(&flight).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, socket);
            let mut echoed = vec![0; 3 * MAX_PLAINTEXT + 15];
            tls.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed[..15], b"a first request");
            assert_eq!(echoed[15..], pattern(3 * MAX_PLAINTEXT, 3));
        });
        let (mut reader, mut writer) = our_holder(server_config, server_socket);
        let mut request = [0; 15];
        reader.read_exact(&mut request).unwrap();
        assert_eq!(&request, b"a first request");
        // A small write waits for the next, so the two share records.
        writer.write_all(&request).unwrap();
        writer.write_all(&pattern(3 * MAX_PLAINTEXT, 3)).unwrap();
        writer.flush().unwrap();
        asker.join().unwrap();
    }

    /// Both ends ours: many frames each way at once, on two threads per end.
    #[test]
    fn two_ends_of_ours_carry_both_directions_at_once() {
        let (client_config, server_config) = configs(0);
        let (client_socket, server_socket) = connected();
        let holder = std::thread::spawn(move || {
            let (mut reader, mut writer) = our_holder(server_config, server_socket);
            let writing = std::thread::spawn(move || {
                for i in 0..64u8 {
                    writer.write_all(&pattern(100_000, i)).unwrap();
                    writer.flush().unwrap();
                }
            });
            for i in 0..64u8 {
                let mut got = vec![0; 1000 + usize::from(i)];
                reader.read_exact(&mut got).unwrap();
                assert_eq!(got, pattern(1000 + usize::from(i), i));
            }
            writing.join().unwrap();
        });
        let (mut reader, mut writer) = our_asker(client_config, client_socket);
        let writing = std::thread::spawn(move || {
            for i in 0..64u8 {
                writer
                    .write_all(&pattern(1000 + usize::from(i), i))
                    .unwrap();
                writer.flush().unwrap();
            }
            writer
        });
        for i in 0..64u8 {
            let mut got = vec![0; 100_000];
            reader.read_exact(&mut got).unwrap();
            assert!(got == pattern(100_000, i), "frame {i}");
        }
        let writer = writing.join().unwrap();
        holder.join().unwrap();
        writer.shut_down();
        assert_eq!(reader.read(&mut [0; 1]).unwrap(), 0);
    }
}
