//! A connection that never sends a request (a client's TLS probe, a port scanner) is closed by
//! the node once it has been idle for a moment (`frontends/http/src/reaper.rs`), and never
//! while the node is answering a request: under load a real client's request can wait in the
//! queue, so silence then proves nothing. While it answers, the node does not look for such
//! connections at all (the scan of its descriptors cost 3% of the CPU in a 16-node swarm);
//! once it is idle again it closes them.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

/// Larger than what the loopback socket buffers hold, so a client that stops reading keeps
/// its request in progress.
const BLOB: u64 = 64 << 20;

/// How long the node takes at most to close a silent connection once idle: its first-request
/// timeout (750 ms) plus a scan interval, with room for a loaded machine.
const CLOSES_WITHIN: Duration = Duration::from_secs(4);

/// Waits for `socket` to be closed by the node; how long that took, or `None` if it stayed
/// open for `within`.
fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    socket.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => Some(started.elapsed()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(started.elapsed()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        other => panic!("a silent connection got {other:?}"),
    }
}

#[test]
fn a_silent_connection_is_closed_when_the_node_is_idle_and_left_open_while_it_serves() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), BLOB);
    let layer = &image.layers[0].blob;
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);
    let path = format!("/v2/library/large/blobs/{}", layer.digest);
    let warm = std::process::Command::new("curl")
        .args(["-sSf", "-o", "/dev/null", &format!("{}{path}", node.url())])
        .status()
        .unwrap();
    assert!(warm.success(), "the blob is stored through the node first");
    // Let the node be idle: its last request finished a moment ago.
    std::thread::sleep(Duration::from_secs(1));

    // Idle: a silent connection is closed.
    let mut silent = TcpStream::connect(node.authority()).unwrap();
    let took = closed_within(&mut silent, CLOSES_WITHIN);
    assert!(
        took.is_some(),
        "an idle node left a silent connection open for {CLOSES_WITHIN:?}"
    );

    // Busy: a client asks for the blob and stops reading after the first bytes, so its
    // request stays in progress; a silent connection opened meanwhile stays open.
    let mut reader = TcpStream::connect(node.authority()).unwrap();
    write!(
        reader,
        "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
        node.authority()
    )
    .unwrap();
    let mut first = [0u8; 4096];
    let n = reader.read(&mut first).unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "the blob's answer started"
    );
    let mut silent = TcpStream::connect(node.authority()).unwrap();
    assert_eq!(
        closed_within(&mut silent, CLOSES_WITHIN),
        None,
        "a node answering a request closed a silent connection"
    );

    // The reader leaves; the node is idle again and closes the silent connection.
    drop(reader);
    let took = closed_within(&mut silent, CLOSES_WITHIN + Duration::from_secs(2));
    assert!(
        took.is_some(),
        "the silent connection stayed open after the node went idle"
    );
    assert!(
        node.log()
            .contains("closed a connection that sent no request"),
        "the node logged the closes"
    );
}
