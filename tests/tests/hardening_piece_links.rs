//! Piece links against real node processes: pieces between two nodes go on a link (on the
//! port the operator chose, which a second node cannot take), and a link's port holds
//! against what an attacker sends it (core's `piece_link` rules):
//! - a stranger that completes the TLS handshake but has no libp2p connection to the node gets
//!   no answer, and the link is closed;
//! - a connected peer that sends a malformed frame on its link, or asks on it for what belongs
//!   to log sync, is closed and counted as misbehaving, as on libp2p;
//! - silent sockets fill the link limit: the next one is closed at once, the node's pieces go
//!   over libp2p meanwhile (a pull completes), and the silent ones are closed after the
//!   handshake timeout;
//! - answers come as the node has them, not in the order asked; what a node has of a blob and
//!   its piece hashes are asked and answered on the link too; a request id repeated while its
//!   first request waits is a malformed frame;
//! - a peer that asks for pieces and stops reading has its link closed once one answer has
//!   been written for `WRITE_STALL`, and other peers are served meanwhile;
//! - a holder that says it has every piece and never answers one on its link costs the
//!   asker one late piece, not the pull nor the piece timeout (each request on the link is
//!   given up after `ANSWER_TIMEOUT`), and the asker's next fetch asks it for nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pyrsia_core::piece_link::{HANDSHAKE_TIMEOUT, MAX_SERVED_LINKS, WRITE_STALL};
use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::binary;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::{PushedImage, push_large_image, push_large_image_named};
use pyrsia_tests::link_attacker::{
    LinkClient, closed_within, piece_request_frame, request_frame, silent_socket, stalling_stranger,
};
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::process::free_port;
use pyrsia_tests::raw_peer::{RawPeer, malformed_frames};
use pyrsia_tests::registry::Registry;

/// The link port a node names in `/peers` (within 5 s of its start: the node refreshes
/// `/peers` every 200 ms).
fn link_port(node: &Node) -> u16 {
    let started = Instant::now();
    loop {
        if let Some(port) = node.piece_links()["port"].as_u64() {
            return u16::try_from(port).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the node serves piece links: {}",
            node.piece_links()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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

/// Pulls `reference` through `node` with skopeo into `into` and waits until the node stores
/// `layer`.
fn pull_through(node: &Node, reference: &str, layer: &pyrsia_core::digest::Digest, into: &Path) {
    let out = skopeo_copy(&node.authority(), reference, into);
    assert_succeeded(&out, "the pull through the node", &node.log());
    assert!(node.wait_stored(layer));
}

/// Node A, started in `work` with an upstream that holds an 8 MiB image: it pulls the image
/// through itself, then the upstream stops (A's peers get the pieces from A alone).
fn node_holding_an_image(work: &Path) -> (PushedImage, pyrsia_core::digest::Digest, Node) {
    let mut registry = Registry::start(&work.join("registry"));
    let image = push_large_image(work, &registry.authority(), 8 << 20);
    let layer = image.layers[0].blob.digest;
    let a = Node::start(&work.join("a"), &["--upstream", &registry.url()]);
    pull_through(&a, &image.reference, &layer, &work.join("copy-a"));
    std::thread::sleep(Duration::from_secs(1));
    registry.stop();
    (image, layer, a)
}

/// A fresh peer connected to `a` over libp2p sends `frame` on a link to `port`: A closes the
/// link without an answer and logs the peer as misbehaving, saying `why`.
fn misbehaves_on_link(a: &Node, port: u16, frame: &[u8], why: &str) {
    let peer = RawPeer::new();
    let a_address = a.p2p_address();
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| peer.hold(&a_address, Duration::from_secs(6)));
        wait_connected(a, &peer);
        let mut link = LinkClient::connect(port, peer.keypair(), &a.peer_id()).unwrap();
        link.send(frame).unwrap();
        let (answer, closed) = link.read_until_closed(Duration::from_secs(5));
        assert!(closed && answer.is_empty(), "A closes the link ({why})");
        hold.join().unwrap();
    });
    let log = a.log();
    assert!(
        log.lines().any(|l| l.contains("peer misbehaved")
            && l.contains(&peer.peer_id())
            && l.contains(why)),
        "{log}"
    );
}

/// Waits until `node` counts `peer` among its connected peers (within 5 s).
fn wait_connected(node: &Node, peer: &RawPeer) {
    let started = Instant::now();
    while !node.connected_peers().contains(&peer.peer_id()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the peer connects"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pieces_go_on_a_link_and_strangers_and_junk_on_it_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let layer = image.layers[0].blob.digest;
    // A listens for links on the port its operator chose (a firewall rule's port).
    let chosen = free_port();
    let a = Node::start(
        &work.path().join("a"),
        &[
            "--upstream",
            &registry.url(),
            "--piece-link-port",
            &chosen.to_string(),
        ],
    );
    assert_eq!(link_port(&a), chosen, "{}", a.piece_links());
    let b = Node::start(
        &work.path().join("b"),
        &["--upstream", &registry.url(), "--peer", &a.p2p_address()],
    );
    wait_mesh(&[&a, &b]);
    pull_through(&a, &image.reference, &layer, &work.path().join("copy-a"));
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
    let _ = link.send(&piece_request_frame(0, &layer, 0, 1 << 20));
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

    // A connected peer that sends junk on its link, or asks on it for what belongs to log
    // sync (a node puts only requests about pieces on a link): closed and counted as
    // misbehaving.
    misbehaves_on_link(
        &a,
        port,
        &malformed_frames()[0],
        "malformed frame on a piece link",
    );
    misbehaves_on_link(
        &a,
        port,
        &request_frame(0, SyncRequest::Checkpoint),
        "something other than pieces on a piece link",
    );
    // A node told to listen for links on a port it cannot have does not start.
    let taken = Command::new(binary("pyrsia"))
        .args(["node", "--data-dir"])
        .arg(work.path().join("c"))
        .args([
            "--http",
            "127.0.0.1:0",
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(["--no-mdns", "--piece-link-port", &chosen.to_string()])
        .output()
        .expect("run pyrsia node");
    let said = String::from_utf8_lossy(&taken.stderr);
    assert!(!taken.status.success(), "it must not start: {said}");
    assert!(
        said.contains(&format!("cannot listen for piece links on port {chosen}")),
        "{said}"
    );

    // B's link and pulls are untouched.
    assert!(a.connected_peers().contains(&b.peer_id()));
}

#[test]
fn silent_sockets_cost_the_links_only_and_are_closed_after_the_handshake_timeout() {
    let work = tempfile::tempdir().unwrap();
    let (image, layer, a) = node_holding_an_image(work.path());

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

#[test]
fn answers_come_as_the_holder_has_them_and_a_repeated_request_id_is_malformed() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let layer = image.layers[0].blob.digest;
    // A serves peers 1 MiB a second: its second piece in a row waits about a second.
    let a = Node::start(
        &work.path().join("a"),
        &["--upstream", &registry.url(), "--max-upload-rate", "1M"],
    );
    pull_through(&a, &image.reference, &layer, &work.path().join("copy-a"));

    let peer = RawPeer::new();
    let a_address = a.p2p_address();
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| peer.hold(&a_address, Duration::from_secs(12)));
        wait_connected(&a, &peer);
        let mut link = LinkClient::connect(link_port(&a), peer.keypair(), &a.peer_id()).unwrap();

        // Two pieces, then a blob A does not hold, asked at once: the answer A has at once
        // overtakes the piece that waits for the upload rate (whichever of the two that is:
        // both are read from disk at once).
        let unknown = pyrsia_core::digest::Digest::sha256(b"a blob nobody holds");
        let asked = [
            piece_request_frame(1, &layer, 0, 1 << 20),
            piece_request_frame(2, &layer, 1 << 20, 1 << 20),
            piece_request_frame(3, &unknown, 0, 1 << 20),
        ]
        .concat();
        link.send(&asked).unwrap();
        let mut order = Vec::new();
        for _ in 0..3 {
            let (id, answer) = link.read_answer().expect("an answer");
            let len = match &answer {
                SyncResponse::Piece { bytes, .. } => bytes.len(),
                _ => 0,
            };
            match id {
                1 | 2 => assert_eq!(len, 1 << 20, "request {id}: a whole piece"),
                3 => assert!(
                    matches!(answer, SyncResponse::Missing),
                    "request 3: missing"
                ),
                other => panic!("an answer to request {other}, never sent"),
            }
            order.push(id);
        }
        // In order, request 3's answer would come last; one of the pieces waits a second.
        assert_ne!(
            order.last(),
            Some(&3),
            "the missing blob's answer waits for no piece: {order:?}"
        );

        // What A has of the layer, and the layer's piece hashes: asked on the link too (a
        // fetch polls every peer every round), each answered under its id.
        let about = [
            request_frame(
                4,
                SyncRequest::Have {
                    digest: *layer.as_bytes(),
                },
            ),
            request_frame(
                5,
                SyncRequest::PieceHashes {
                    digest: *layer.as_bytes(),
                },
            ),
        ]
        .concat();
        link.send(&about).unwrap();
        let mut answered = Vec::new();
        for _ in 0..2 {
            match link.read_answer().expect("an answer") {
                (4, SyncResponse::Have { total, pieces, .. }) => {
                    assert_eq!(
                        u64::from(pieces),
                        total.div_ceil(1 << 20),
                        "A holds every piece"
                    );
                    answered.push(4);
                }
                // (A committed no piece list for a layer it pulled through alone.)
                (5, SyncResponse::PieceHashes(_) | SyncResponse::Missing) => answered.push(5),
                (id, other) => panic!("request {id} answered with {other:?}"),
            }
        }
        answered.sort();
        assert_eq!(answered, [4, 5]);

        // The same id twice while the first waits for its answer: a malformed frame.
        let twice = [
            piece_request_frame(10, &layer, 2 << 20, 1 << 20),
            piece_request_frame(10, &layer, 3 << 20, 1 << 20),
        ]
        .concat();
        link.send(&twice).unwrap();
        let (_, closed) = link.read_until_closed(Duration::from_secs(10));
        assert!(closed, "A closes a link that repeats a request id");
        hold.join().unwrap();
    });
    let log = a.log();
    assert!(
        log.lines().any(|l| l.contains("peer misbehaved")
            && l.contains(&peer.peer_id())
            && l.contains("already waiting for its answer")),
        "{log}"
    );
}

#[test]
fn a_peer_that_stops_reading_loses_its_link_after_the_write_stall_and_holds_up_nobody() {
    let work = tempfile::tempdir().unwrap();
    let (image, layer, a) = node_holding_an_image(work.path());

    let reader = RawPeer::new();
    let a_address = a.p2p_address();
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| reader.hold(&a_address, WRITE_STALL_PLUS_MARGIN));
        wait_connected(&a, &reader);
        // Every piece of the layer, twice, asked on a socket that is never read: more than
        // the kernel's buffers at both ends take (about 3 MB and 1 MB on loopback), so A's
        // writes stall.
        let mut link = LinkClient::connect_with_receive_buffer(
            link_port(&a),
            reader.keypair(),
            &a.peer_id(),
            4096,
        )
        .unwrap();
        let asked: Vec<u8> = (0..16u64)
            .flat_map(|i| piece_request_frame(i, &layer, (i % 8) << 20, 1 << 20))
            .collect();
        link.send(&asked).unwrap();
        let stalled = Instant::now();
        assert!(rises_above(&a, "served", 0), "{}", a.piece_links());

        // Meanwhile a peer pulls the whole blob from A (over libp2p: the answer slots the
        // stalled link holds are the ones every asker shares, and `served` then counts the
        // stalled link alone).
        let b = Node::start(
            &work.path().join("b"),
            &["--peer", &a.p2p_address(), "--no-piece-links"],
        );
        wait_mesh(&[&a, &b]);
        let by_digest = format!("library/large@{}", image.digest);
        let out = skopeo_copy(&b.authority(), &by_digest, &work.path().join("copy-b"));
        assert_succeeded(&out, "B pulls from A while a link stalls", &b.log());
        assert!(b.wait_stored(&layer));

        // The stalled link closes once one answer has been written for WRITE_STALL.
        let stall = Duration::from_micros(WRITE_STALL.as_micros());
        while count(&a, "served") > 0 {
            assert!(
                stalled.elapsed() < stall + Duration::from_secs(10),
                "the stalled link outlived the write stall: {}",
                a.piece_links()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            stalled.elapsed() >= stall - Duration::from_secs(1),
            "closed no sooner than the write stall: {:?}",
            stalled.elapsed()
        );
        assert!(
            a.log()
                .contains("an answer took longer to write than allowed"),
            "{}",
            a.log()
        );
        drop(link);
        drop(b);
        hold.join().unwrap();
    });
}

/// How long the stalling peer keeps its libp2p connection: past the write stall and the
/// checks after it.
const WRITE_STALL_PLUS_MARGIN: Duration = Duration::from_secs(30);

/// How long after a pull a piece request may wait on the staller's link: core's answer timeout
/// from when it was sent, and a margin for a loaded machine.
const ANSWER_TIMEOUT_PLUS_MARGIN: Duration =
    Duration::from_secs(pyrsia_core::piece_link::ANSWER_TIMEOUT.as_micros() / 1_000_000 + 10);

/// The layer of the first image the staller announces: more pieces than a fetch keeps in
/// flight or waiting (32), so that a piece held up at the staller holds up the reader.
const STALLED_LAYER: u64 = 64 << 20;

#[test]
fn a_link_holder_that_never_answers_a_piece_costs_one_late_piece_not_the_pull() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let first = push_large_image_named(work.path(), &registry.authority(), STALLED_LAYER, "first");
    let second = push_large_image_named(work.path(), &registry.authority(), 8 << 20, "second");
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let layers: Vec<(pyrsia_core::digest::Digest, u64)> = [&first, &second]
        .iter()
        .map(|image| (image.layers[0].blob.digest, image.layers[0].blob.size))
        .collect();
    for (image, (layer, _)) in [&first, &second].iter().zip(&layers) {
        let into = work.path().join(format!("copy-a-{layer}"));
        pull_through(&a, &image.reference, layer, &into);
    }
    std::thread::sleep(Duration::from_secs(1));
    registry.stop();
    let b = Node::start(&work.path().join("b"), &["--peer", &a.p2p_address()]);
    wait_mesh(&[&a, &b]);

    // A stranger that announces both layers, names its link port over identify, answers what
    // it holds (everything) on its link and never sends a piece.
    let (staller, liar) = stalling_stranger(&b, layers.clone());

    let by_digest = |image: &PushedImage| format!("library/{}@{}", image_name(image), image.digest);
    let started = Instant::now();
    let out = skopeo_copy(
        &b.authority(),
        &by_digest(&first),
        &work.path().join("copy-b"),
    );
    assert_succeeded(&out, "B pulls with a staller among its holders", &b.log());
    assert!(b.wait_stored(&layers[0].0), "B stores the layer, verified");
    let took = started.elapsed();
    assert!(
        staller.have_requests() > 0,
        "B asked the staller what it holds on its link"
    );
    let log = b.log();
    assert!(
        staller.piece_requests() > 0,
        "B asked the staller for pieces on its link: {log}"
    );
    assert!(
        took < Duration::from_secs(60),
        "the staller cost time, not the pull: {took:?}"
    );
    // A piece held up at the staller was asked of A once late (core's `answer_times`): the
    // reader never waited for the piece timeout. (Which the staller was asked for first, the
    // first piece or later ones, depends on the draw.)
    assert!(
        !log.contains("piece stalled; its peer is given up, the piece asked elsewhere"),
        "a fetch waited for the piece timeout: {log}"
    );
    // B remembers the staller: late in the fetch, or silent when asked for the first piece
    // or to confirm the size before it.
    let staller_id = liar.peer_id();
    let remembered = |log: &str| {
        log.lines().any(|l| {
            l.contains(staller_id)
                && (l.contains("let a piece wait until late")
                    || l.contains("did not answer in time: asked last"))
        })
    };
    assert!(remembered(&log), "B remembers the staller: {log}");

    // The link itself gives the piece request up after the answer timeout (core's
    // `overdue`): it closes the link when nothing came on it meanwhile, and gives up only
    // that request when the staller's answers to polls kept coming (which of the two depends
    // on when the fetch stopped polling).
    let given_up = |log: &str| {
        log.lines().any(|l| {
            l.contains(staller_id)
                && ((l.contains("piece link failed") && l.contains("no answer on the piece link"))
                    || l.contains("got no answer in time; given up"))
        })
    };
    let waited = Instant::now();
    while !given_up(&b.log()) {
        assert!(
            waited.elapsed() < ANSWER_TIMEOUT_PLUS_MARGIN,
            "B gives up the piece request waiting on the staller's link: {}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The next pull asks the staller for no piece at all: A holds them all.
    let asked_before = staller.piece_requests();
    let out = skopeo_copy(
        &b.authority(),
        &by_digest(&second),
        &work.path().join("copy-b2"),
    );
    assert_succeeded(&out, "B pulls a second image next to the staller", &b.log());
    assert!(
        b.wait_stored(&layers[1].0),
        "B stores the second layer, verified"
    );
    let log = b.log();
    assert!(
        log.lines().any(|l| l.contains(staller_id)
            && l.contains("stalled a fetch lately: asked only for pieces nobody else holds")),
        "B's second fetch marks the staller slow from its start: {log}"
    );
    assert_eq!(
        staller.piece_requests(),
        asked_before,
        "the staller was asked for no piece in the second fetch: {log}"
    );
    // Silence is no proof of lying on its own: A, who answered, is not blamed.
    assert!(!b.blocked_peers().contains(&a.peer_id()), "{log}");
}

/// The repository name of an image pushed as `library/<name>:<name>`.
fn image_name(image: &PushedImage) -> &str {
    image
        .reference
        .trim_start_matches("library/")
        .split(':')
        .next()
        .unwrap_or_default()
}
