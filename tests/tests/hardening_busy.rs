//! Issue 18: a node answers at most core's `ANSWERS_AT_ONCE` piece requests at a time and tells
//! the rest "busy" at once (`piece_schedule::serves_now`), instead of queueing every asker
//! behind the others. A raw libp2p peer (its own identity, the node's wire protocol; ground
//! so that the node is the one to fetch for the network) asks the node for 24 pieces of an
//! 8 MiB layer at once, naming an upstream held to 2 MiB/s by a throttling proxy: the node
//! fetches the layer and each piece it takes waits for its bytes. Exactly `ANSWERS_AT_ONCE`
//! are taken and served, with the right bytes; the other 16 are `Busy`, sent back at once
//! (before any piece could arrive), never `Missing` nor an error; the busy answers start no
//! further upstream fetch; and the asker is not punished for it: asked again, the node
//! serves it.

use std::process::Command;
use std::time::Duration;

use pyrsia_core::piece_schedule::ANSWERS_AT_ONCE;
use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::node::Node;
use pyrsia_tests::proxy::throttled_upstream;
use pyrsia_tests::raw_peer::{RawPeer, node_wins};

const BLOB: u64 = 8 << 20;
const PIECE: u64 = 1 << 20;
const ASKED: usize = 24;

/// The upstream's bytes per second.
const UPSTREAM_RATE: u64 = 2 << 20;

/// A request for `piece` of `digest` that names this node as the one to fetch it from the
/// throttled upstream.
fn piece_request(digest: &pyrsia_core::digest::Digest, piece: u64) -> SyncRequest {
    SyncRequest::Piece {
        digest: *digest.as_bytes(),
        offset: piece * PIECE,
        len: PIECE as u32,
        fetch: Some(("slow.example".into(), "library/large".into())),
        insist: true,
    }
}

#[test]
fn a_node_answers_busy_beyond_its_answers_at_once_and_never_queues_or_blames_the_asker() {
    let work = tempfile::tempdir().unwrap();
    let (registry, image, proxy) = throttled_upstream(work.path(), BLOB, UPSTREAM_RATE);
    let layer = &image.layers[0].blob;
    let slow = format!("slow.example={}", proxy.url());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--upstream", &slow],
    );
    let node_id = node.peer_id();
    let attacker = RawPeer::grind(|id| node_wins(&layer.digest, &node_id, &[id]));
    let requests = (0..ASKED as u64)
        .map(|i| piece_request(&layer.digest, i % (BLOB / PIECE)))
        .collect();
    let answers = attacker.ask_timed(&node.p2p_address(), requests, Duration::from_secs(30));

    // The reference bytes: the layer as the node stored it (a client pulls it).
    assert!(node.wait_stored(&layer.digest), "{}", node.log());
    let body = work.path().join("layer");
    let status = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&body)
        .arg(format!(
            "{}/v2/library/large/blobs/{}",
            node.url(),
            layer.digest
        ))
        .status()
        .expect("curl");
    assert!(status.success(), "{}", node.log());
    let bytes = std::fs::read(&body).unwrap();
    assert_eq!(pyrsia_core::digest::Digest::sha256(&bytes), layer.digest);

    let mut busy = Vec::new();
    let mut served = Vec::new();
    for (i, (answer, took)) in answers.iter().enumerate() {
        match answer {
            Ok(SyncResponse::Busy) => busy.push(*took),
            Ok(SyncResponse::Piece { total, bytes: got }) => {
                assert_eq!(*total, layer.size);
                let offset = (i as u64 % (BLOB / PIECE) * PIECE) as usize;
                assert!(
                    got[..] == bytes[offset..offset + PIECE as usize],
                    "piece {i} has the wrong bytes"
                );
                served.push(*took);
            }
            other => panic!(
                "request {i}: {other:?}, not a piece nor busy\n{}",
                node.log()
            ),
        }
    }
    assert!(
        served.len() <= ANSWERS_AT_ONCE && busy.len() >= ASKED - ANSWERS_AT_ONCE,
        "{} of {ASKED} were taken and {} answered busy: at most {ANSWERS_AT_ONCE} are taken at once\n{}",
        served.len(),
        busy.len(),
        node.log()
    );
    let slowest_piece = served.iter().max().copied().unwrap_or_default();
    let slowest_busy = busy.iter().max().copied().unwrap_or_default();
    assert!(
        slowest_busy < Duration::from_secs(1) && slowest_busy < slowest_piece,
        "busy answers came at once: slowest busy {slowest_busy:?}, slowest piece {slowest_piece:?}"
    );
    assert!(
        proxy.blob_bytes_sent(&layer.digest.to_string()) <= BLOB + BLOB / 10,
        "the busy answers started no other upstream fetch"
    );

    // Not punished: asked again, the same peer is served (from the store now).
    let again = attacker.ask(
        &node.p2p_address(),
        vec![piece_request(&layer.digest, 0)],
        Duration::from_secs(10),
    );
    assert!(
        matches!(&again[0], Ok(SyncResponse::Piece { bytes: got, .. }) if got[..] == bytes[..PIECE as usize]),
        "the asker is served after the rush: {:?}\n{}",
        again[0].as_ref().map(|_| ()),
        node.log()
    );
    let log = node.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("peer misbehaved") && l.contains(&attacker.peer_id())),
        "no strike against the asker\n{log}"
    );
}
