//! An attacker on a node's piece link port (`/peers`' `piece_links.port`): TLS clients with
//! identities the test controls that send exactly the frames a hostile peer would, and silent
//! sockets that never finish a handshake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::identity;
use pyrsia_net::codec::{LOG_SYNC_PROTOCOL, SyncCodec, SyncRequest, SyncResponse};

/// A TLS connection to a node's piece link port, authenticated with a test's identity.
pub struct LinkClient {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl LinkClient {
    /// Connects to `port` on 127.0.0.1 as `keypair` and completes the TLS handshake with the
    /// node `node_peer` (its peer id); the error says why it could not.
    pub fn connect(
        port: u16,
        keypair: &identity::Keypair,
        node_peer: &str,
    ) -> std::io::Result<LinkClient> {
        Self::connect_with(TcpStream::connect(("127.0.0.1", port))?, keypair, node_peer)
    }

    /// As [`LinkClient::connect`], on a socket whose receive buffer is set to `bytes` before
    /// it connects: a client that stops reading then stalls the node's writes after a few
    /// kilobytes, not after the megabytes loopback's buffers would take.
    pub fn connect_with_receive_buffer(
        port: u16,
        keypair: &identity::Keypair,
        node_peer: &str,
        bytes: usize,
    ) -> std::io::Result<LinkClient> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.set_recv_buffer_size(bytes)?;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.connect(&address.into())?;
        Self::connect_with(socket.into(), keypair, node_peer)
    }

    fn connect_with(
        tcp: TcpStream,
        keypair: &identity::Keypair,
        node_peer: &str,
    ) -> std::io::Result<LinkClient> {
        let node = node_peer.parse().map_err(std::io::Error::other)?;
        let config = libp2p::tls::make_client_config(keypair, Some(node))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
        let name =
            rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
        let connection =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(LinkClient { tls })
    }

    /// Reads the next answer frame: the id of the request it answers, and the answer.
    pub fn read_answer(&mut self) -> std::io::Result<(u64, SyncResponse)> {
        use libp2p::request_response::Codec as _;
        let mut id = [0u8; 8];
        self.tls.read_exact(&mut id)?;
        let mut io = futures::io::AllowStdIo::new(&mut self.tls);
        let answer = smol::block_on(SyncCodec.read_response(&LOG_SYNC_PROTOCOL, &mut io))?;
        Ok((u64::from_be_bytes(id), answer))
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tls.write_all(bytes)?;
        self.tls.flush()
    }

    /// Reads until the node closes the link or `wait` passes; returns the bytes read and
    /// whether the link closed.
    pub fn read_until_closed(&mut self, wait: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + wait;
        let mut read = Vec::new();
        let mut buffer = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.tls.read(&mut buffer) {
                Ok(0) => return (read, true),
                Ok(n) => read.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                Err(_) => return (read, true),
            }
        }
        (read, false)
    }
}

/// The frame of a request `id` for the piece of `digest` at `offset` (`len` bytes), as a node
/// sends it on a link (the id, 8 bytes big-endian, then the log-sync request frame).
pub fn piece_request_frame(
    id: u64,
    digest: &pyrsia_core::digest::Digest,
    offset: u64,
    len: u32,
) -> Vec<u8> {
    let request = SyncRequest::Piece {
        digest: *digest.as_bytes(),
        offset,
        len,
        fetch: None,
        insist: false,
    };
    request_frame(id, request)
}

/// The frame of any request under `id`, as a node would send it on a link (also one a node
/// never puts on a link).
pub fn request_frame(id: u64, request: SyncRequest) -> Vec<u8> {
    use libp2p::request_response::Codec as _;
    let mut frame = futures::io::Cursor::new(id.to_be_bytes().to_vec());
    frame.set_position(8);
    smol::block_on(SyncCodec.write_request(&LOG_SYNC_PROTOCOL, &mut frame, request))
        .expect("encode a request");
    frame.into_inner()
}

/// A socket to `port` on 127.0.0.1 that will send nothing.
pub fn silent_socket(port: u16) -> TcpStream {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the link port");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket
}

/// Whether the node closed `socket` within `wait` (a read returns end of stream or a reset).
pub fn closed_within(socket: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buffer = [0u8; 1024];
    while Instant::now() < deadline {
        match socket.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(_) => return true,
        }
    }
    false
}

/// A piece link holder that lies by silence: it accepts links from any peer (TLS as
/// `keypair`, as a node's link port does), answers `Have` for `blobs` (digest and size) as
/// a holder of every piece, and never answers a piece request, though it keeps reading the
/// link. What an asker must give up on (core's `piece_link::overdue`). Runs until dropped.
pub struct StallingLinkHolder {
    /// The port it listens on (127.0.0.1), to name in an agent string.
    pub port: u16,
    piece_requests: Arc<std::sync::atomic::AtomicUsize>,
    have_requests: Arc<std::sync::atomic::AtomicUsize>,
    _accepting: crate::background::Background,
}

impl StallingLinkHolder {
    /// Listens on a free port of 127.0.0.1 as `keypair`.
    pub fn start(
        keypair: &identity::Keypair,
        blobs: Vec<(pyrsia_core::digest::Digest, u64)>,
    ) -> StallingLinkHolder {
        use std::sync::atomic::AtomicUsize;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a link port");
        let port = listener.local_addr().expect("its address").port();
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let config =
            Arc::new(libp2p::tls::make_server_config(keypair).expect("a link server config"));
        let piece_requests = Arc::new(AtomicUsize::new(0));
        let have_requests = Arc::new(AtomicUsize::new(0));
        let (pieces, haves) = (piece_requests.clone(), have_requests.clone());
        let accepting = crate::background::Background::spawn(move |stop| {
            while !stop.is_set() {
                let tcp = match listener.accept() {
                    Ok((tcp, _)) => tcp,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let (config, blobs) = (config.clone(), blobs.clone());
                let (pieces, haves) = (pieces.clone(), haves.clone());
                std::thread::spawn(move || {
                    let _ = hold_link(tcp, config, &blobs, &pieces, &haves);
                });
            }
        });
        StallingLinkHolder {
            port,
            piece_requests,
            have_requests,
            _accepting: accepting,
        }
    }

    /// Piece requests read on its links so far (none answered).
    pub fn piece_requests(&self) -> usize {
        self.piece_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Have` requests read and answered on its links so far.
    pub fn have_requests(&self) -> usize {
        self.have_requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A stranger that stalls on its piece link, connected to `node` over libp2p: a
/// [`StallingLinkHolder`] holding `blobs` (digest and size), and a
/// [`crate::raw_peer::LyingProvider`] that announces them and names the holder's port. Returns
/// once the node sees the stranger connected.
pub fn stalling_stranger(
    node: &crate::node::Node,
    blobs: Vec<(pyrsia_core::digest::Digest, u64)>,
) -> (StallingLinkHolder, crate::raw_peer::LyingProvider) {
    let key = identity::Keypair::generate_ed25519();
    let holder = StallingLinkHolder::start(&key, blobs.clone());
    let liar = crate::raw_peer::LyingProvider::lying_as(
        key,
        &node.p2p_address(),
        blobs,
        crate::raw_peer::Lie::StallsOnLink(holder.port),
    );
    let started = Instant::now();
    while !node.connected_peers().iter().any(|p| p == liar.peer_id()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the staller connects"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (holder, liar)
}

/// One link of a [`StallingLinkHolder`]: the handshake, then requests read until the asker
/// closes the link; only `Have` is answered.
fn hold_link(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    blobs: &[(pyrsia_core::digest::Digest, u64)],
    pieces: &std::sync::atomic::AtomicUsize,
    haves: &std::sync::atomic::AtomicUsize,
) -> std::io::Result<()> {
    use libp2p::request_response::Codec as _;
    use std::sync::atomic::Ordering;
    tcp.set_nonblocking(false)?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    loop {
        let mut id = [0u8; 8];
        tls.read_exact(&mut id)?;
        let request = {
            let mut io = futures::io::AllowStdIo::new(&mut tls);
            smol::block_on(SyncCodec.read_request(&LOG_SYNC_PROTOCOL, &mut io))?
        };
        match request {
            SyncRequest::Have { digest } => {
                haves.fetch_add(1, Ordering::SeqCst);
                let answer = match blobs.iter().find(|(d, _)| d.as_bytes() == &digest) {
                    Some((_, size)) => SyncResponse::Have {
                        total: *size,
                        pieces: pyrsia_core::pieces::piece_count(*size) as u32,
                        load: 0,
                        ahead: Vec::new(),
                    },
                    None => SyncResponse::Missing,
                };
                let mut frame = futures::io::Cursor::new(id.to_vec());
                frame.set_position(8);
                smol::block_on(SyncCodec.write_response(&LOG_SYNC_PROTOCOL, &mut frame, answer))?;
                tls.write_all(&frame.into_inner())?;
                tls.flush()?;
            }
            SyncRequest::Piece { .. } => {
                pieces.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
    }
}
