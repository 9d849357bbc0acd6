//! Issue 14, item 8: idle sockets cannot hold the edge port. 64 sockets that connect and never
//! speak fill every session; a 65th client is still served at once, an active client is never
//! the one evicted however many idle sockets keep arriving, and the evicted idle sockets are
//! closed.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_core::edge::{ErrorCode, Request, Response, decode};
use pyrsia_tests::edge::edge_call;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::free_port;

const SESSIONS: usize = 64;
/// How long a session must be idle before a new connection may take its place (the node's
/// `EVICTABLE_AFTER`), with a margin.
const EVICTABLE: Duration = Duration::from_millis(1300);

fn lookup() -> Request {
    Request::Lookup {
        digest: Digest::sha256(b"never committed"),
        tree_size: 1,
    }
}

/// Asks `stream` one question and checks the node answered it.
fn assert_served(stream: &mut TcpStream, what: &str, log: &dyn Fn() -> String) {
    let mut frame = edge_call(stream, &lookup())
        .unwrap_or_else(|| panic!("{what}: the connection ended\n{}", log()));
    assert_eq!(
        decode::<Response<'_>>(&mut frame).unwrap(),
        Response::Error(ErrorCode::NotFound),
        "{what}"
    );
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

#[test]
fn idle_sockets_cannot_lock_edge_clients_out() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let node = Node::start(
        &work.path().join("node"),
        &["--edge-listen", &format!("127.0.0.1:{port}")],
    );
    let log = || node.log();

    let idle: Vec<TcpStream> = (0..SESSIONS).map(|_| connect(port)).collect();
    std::thread::sleep(EVICTABLE);

    // The 65th client is served, within a second.
    let started = Instant::now();
    let mut client = connect(port);
    assert_served(&mut client, "the 65th client", &log);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served in {:?}",
        started.elapsed()
    );

    // More idle sockets keep arriving while the client keeps asking: each takes an idle
    // socket's place, never the active client's.
    let mut more = Vec::new();
    for round in 0..6 {
        for _ in 0..SESSIONS / 4 {
            more.push(connect(port));
        }
        for _ in 0..4 {
            assert_served(
                &mut client,
                &format!("the active client, round {round}"),
                &log,
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(EVICTABLE - Duration::from_millis(400));
    }

    // The first idle sockets were closed by the node to make room.
    let mut closed = 0;
    for mut socket in idle {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut byte = [0u8];
        if matches!(socket.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        closed >= SESSIONS / 2,
        "only {closed} of the first idle sockets were closed\n{}",
        log()
    );
    assert_served(&mut client, "the active client at the end", &log);
}
