//! The floor of a node-to-node transfer on this machine: 1 MiB pieces asked three at a time
//! (a node's first pipeline to a peer) over one TCP connection on loopback, secured with the
//! node's own TLS configuration (libp2p-tls: each end's certificate carries its peer id,
//! AES-GCM first), with blocking IO on one thread per end and nothing else: no multiplexer,
//! no libp2p connection polling, no store, no hashing. `pyrsia-bench-reach floor` sets it
//! beside the CPU the nodes' connection tasks spend per GB, to say how much of that is TLS
//! and TCP themselves.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use libp2p::identity::Keypair;
use rustls::pki_types::{IpAddr, ServerName};

/// A piece.
const PIECE: usize = 1 << 20;
/// Pieces asked for before the first answer, and kept in flight after.
const IN_FLIGHT: usize = 3;
/// A request's length on the wire (a piece index).
const REQUEST: usize = 8;

/// What one floor transfer measured.
pub struct Floor {
    /// Throughput, in MB (10⁶ bytes) per second.
    pub mb_per_second: f64,
    /// User and system CPU of this process (both ends) per GB moved.
    pub cpu_per_gb: f64,
    /// The cipher suite the two ends agreed on.
    pub cipher: String,
}

/// Moves `pieces` pieces from a TLS server thread to this thread's TLS client on loopback.
pub fn transfer(pieces: usize) -> Floor {
    let server_key = Keypair::ed25519_from_bytes([1u8; 32]).expect("key");
    let client_key = Keypair::ed25519_from_bytes([2u8; 32]).expect("key");
    let server_peer = server_key.public().to_peer_id();
    let server_config = libp2p::tls::make_server_config(&server_key).expect("server config");
    let client_config =
        libp2p::tls::make_client_config(&client_key, Some(server_peer)).expect("client config");
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let address = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        tcp.set_nodelay(true).expect("nodelay");
        let connection = rustls::ServerConnection::new(Arc::new(server_config)).expect("tls");
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        let piece = vec![7u8; PIECE];
        let mut request = [0u8; REQUEST];
        for _ in 0..pieces {
            tls.read_exact(&mut request).expect("request");
            tls.write_all(&piece).expect("piece");
            tls.flush().expect("flush");
        }
    });
    let tcp = TcpStream::connect(address).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    // libp2p-tls names no server (the peer id in the certificate is what is checked).
    let name = ServerName::IpAddress(IpAddr::from(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
    let connection = rustls::ClientConnection::new(Arc::new(client_config), name).expect("tls");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // The handshake before the clock starts: the floor is the transfer's.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    let mut piece = vec![0u8; PIECE];
    let (started, cpu_before) = (
        Instant::now(),
        crate::process::cpu_seconds(std::process::id()),
    );
    let first = IN_FLIGHT.min(pieces);
    for _ in 0..first {
        tls.write_all(&[1u8; REQUEST]).expect("request");
    }
    tls.flush().expect("flush");
    for i in 0..pieces {
        tls.read_exact(&mut piece).expect("piece");
        // Its ends only: a scan of every byte would add its own cost to the floor.
        assert!(
            piece[0] == 7 && piece[PIECE - 1] == 7,
            "piece {i} arrived changed"
        );
        if i + first < pieces {
            tls.write_all(&[1u8; REQUEST]).expect("request");
            tls.flush().expect("flush");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    server.join().expect("server thread");
    let gb = (pieces * PIECE) as f64 / 1e9;
    Floor {
        mb_per_second: gb * 1000.0 / seconds,
        cpu_per_gb: (crate::process::cpu_seconds(std::process::id()) - cpu_before) / gb,
        cipher: tls
            .conn
            .negotiated_cipher_suite()
            .map(|suite| format!("{:?}", suite.suite()))
            .unwrap_or_default(),
    }
}
