//! Piece links against real node processes: pieces between two nodes go on a link, and a
//! link's port holds against what an attacker sends it (core's `piece_link` rules):
//! - a stranger that completes the TLS handshake but has no libp2p connection to the node gets
//!   no answer, and the link is closed;
//! - a connected peer that sends a malformed frame on its link is closed and counted as
//!   misbehaving, as on libp2p;
//! - silent sockets fill the link limit: the next one is closed at once, the node's pieces go
//!   over libp2p meanwhile (a pull completes), and the silent ones are closed after the
//!   handshake timeout.

use std::time::{Duration, Instant};

use pyrsia_core::piece_link::{HANDSHAKE_TIMEOUT, MAX_SERVED_LINKS};
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::link_attacker::{LinkClient, closed_within, piece_request_frame, silent_socket};
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::raw_peer::{RawPeer, malformed_frames};
use pyrsia_tests::registry::Registry;

/// The link port a node names in `/peers`.
fn link_port(node: &Node) -> u16 {
    let port = node.piece_links()["port"].as_u64();
    u16::try_from(port.expect("the node serves piece links")).unwrap()
}

fn count(node: &Node, field: &str) -> u64 {
    node.piece_links()[field].as_u64().unwrap_or(0)
}

/// Whether `/peers` shows `field` above `floor` within 2 s (the node refreshes it every
/// 200 ms).
fn rises_above(node: &Node, field: &str, floor: u64) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        if count(node, field) > floor {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn pieces_go_on_a_link_and_strangers_and_junk_on_it_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let layer = image.layers[0].blob.digest;
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let b = Node::start(
        &work.path().join("b"),
        &["--upstream", &registry.url(), "--peer", &a.p2p_address()],
    );
    wait_mesh(&[&a, &b]);
    let out = skopeo_copy(
        &a.authority(),
        &image.reference,
        &work.path().join("copy-a"),
    );
    assert_succeeded(&out, "A pulls", &a.log());
    assert!(a.wait_stored(&layer));
    std::thread::sleep(Duration::from_secs(1));
    registry.stop();

    // B takes every piece from A: on a link once it is open.
    let by_digest = format!("library/large@{}", image.digest);
    let out = skopeo_copy(&b.authority(), &by_digest, &work.path().join("copy-b"));
    assert_succeeded(&out, "B pulls from A", &b.log());
    assert!(b.wait_stored(&layer));
    assert!(rises_above(&b, "pieces_asked", 0), "{}", b.piece_links());
    assert!(rises_above(&a, "pieces_served", 0), "{}", a.piece_links());

    // A stranger: its certificate is valid, but it has no libp2p connection to A.
    let port = link_port(&a);
    let refused_before = count(&a, "refused");
    let stranger = RawPeer::new();
    let mut link = LinkClient::connect(port, stranger.keypair(), &a.peer_id())
        .expect("the TLS handshake itself succeeds");
    // (A may close the link before the request is out: the write may fail.)
    let _ = link.send(&piece_request_frame(&layer, 0, 1 << 20));
    let (answer, closed) = link.read_until_closed(Duration::from_secs(10));
    assert!(closed, "A closes a stranger's link");
    assert!(
        answer.is_empty(),
        "no piece for a stranger: {} bytes",
        answer.len()
    );
    assert!(
        rises_above(&a, "refused", refused_before),
        "{}",
        a.piece_links()
    );
    assert!(a.log().contains("refused a piece link"), "{}", a.log());

    // A connected peer that sends junk on its link: closed and counted as misbehaving.
    let junk = RawPeer::new();
    let a_address = a.p2p_address();
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| junk.hold(&a_address, Duration::from_secs(6)));
        let started = Instant::now();
        while !a.connected_peers().contains(&junk.peer_id()) {
            assert!(started.elapsed() < Duration::from_secs(5), "junk connects");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut link = LinkClient::connect(port, junk.keypair(), &a.peer_id()).unwrap();
        link.send(&malformed_frames()[0]).unwrap();
        let (answer, closed) = link.read_until_closed(Duration::from_secs(5));
        assert!(
            closed && answer.is_empty(),
            "A closes a link that sent junk"
        );
        hold.join().unwrap();
    });
    let log = a.log();
    assert!(
        log.lines().any(|l| l.contains("peer misbehaved")
            && l.contains(&junk.peer_id())
            && l.contains("malformed frame on a piece link")),
        "{log}"
    );
    // B's link and pulls are untouched.
    assert!(a.connected_peers().contains(&b.peer_id()));
}

#[test]
fn silent_sockets_cost_the_links_only_and_are_closed_after_the_handshake_timeout() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let layer = image.layers[0].blob.digest;
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let out = skopeo_copy(
        &a.authority(),
        &image.reference,
        &work.path().join("copy-a"),
    );
    assert_succeeded(&out, "A pulls", &a.log());
    assert!(a.wait_stored(&layer));
    std::thread::sleep(Duration::from_secs(1));
    registry.stop();

    // The attacker fills A's link limit with sockets that never say a word.
    let port = link_port(&a);
    let opened = Instant::now();
    let mut silent: Vec<_> = (0..MAX_SERVED_LINKS).map(|_| silent_socket(port)).collect();
    let mut one_more = silent_socket(port);
    assert!(
        closed_within(&mut one_more, Duration::from_secs(2)),
        "the socket beyond the limit is closed at once"
    );

    // A peer joins and pulls: its link is refused, its pieces go over libp2p.
    let b = Node::start(&work.path().join("b"), &["--peer", &a.p2p_address()]);
    wait_mesh(&[&a, &b]);
    let by_digest = format!("library/large@{}", image.digest);
    let out = skopeo_copy(&b.authority(), &by_digest, &work.path().join("copy-b"));
    assert_succeeded(&out, "B pulls from A while the links are full", &b.log());
    assert!(b.wait_stored(&layer));
    assert_eq!(count(&b, "pieces_asked"), 0, "{}", b.piece_links());
    assert!(rises_above(&a, "refused", 1), "{}", a.piece_links());

    // The silent sockets are closed once the handshake timeout has passed.
    let timeout = Duration::from_micros(HANDSHAKE_TIMEOUT.as_micros());
    for socket in &mut silent {
        let left = (timeout + Duration::from_secs(5)).saturating_sub(opened.elapsed());
        assert!(
            closed_within(socket, left),
            "a silent socket outlived the handshake timeout: {:?}",
            opened.elapsed()
        );
    }
    assert!(
        opened.elapsed() >= timeout - Duration::from_secs(1),
        "closed no sooner than the timeout: {:?}",
        opened.elapsed()
    );
    // And links open again.
    let stranger = RawPeer::new();
    assert!(LinkClient::connect(port, stranger.keypair(), &a.peer_id()).is_ok());
}
