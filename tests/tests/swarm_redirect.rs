//! Issue 18, super-seeding: a node that sent a piece to two peers lately sends the next asker
//! that does not insist to them (`SyncResponse::Elsewhere`, core's
//! `piece_schedule::recent_sends`) instead of sending the piece a third time; a request that
//! insists is always served. Raw libp2p peers, each with its own identity, ask a real node
//! that stores a layer: the first two askers get piece 0's bytes, the third is named exactly
//! those two, and the same third asker insisting gets the bytes; another piece is not
//! redirected; an asker that always insists is always served; nobody is struck for any of it.
//! Askers sent elsewhere are named in their turn, so the copies of a piece spread as a tree.
//! Askers speaking only `/pyrsia/sync/1` (a node of the build before, during a rolling upgrade)
//! are always served and never sent elsewhere.

use std::process::Command;
use std::time::Duration;

use pyrsia_net::codec::{LOG_SYNC_PROTOCOL_V1, SyncRequest, SyncResponse};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::raw_peer::RawPeer;
use pyrsia_tests::registry::Registry;

/// The layer's content before compression (it comes out a little larger).
const LAYER: u64 = 4 << 20;
const PIECE: u64 = 1 << 20;

/// An answer in a few words (never a piece's bytes).
fn describe(answer: &Result<SyncResponse, String>) -> String {
    match answer {
        Ok(SyncResponse::Piece { total, bytes }) => {
            format!("Piece {{ total: {total}, {} bytes }}", bytes.len())
        }
        other => format!("{other:?}"),
    }
}

/// A request for `piece` of `digest`, insisting or not.
fn piece(digest: &pyrsia_core::digest::Digest, piece: u64, insist: bool) -> SyncRequest {
    SyncRequest::Piece {
        digest: *digest.as_bytes(),
        offset: piece * PIECE,
        len: PIECE as u32,
        fetch: None,
        insist,
    }
}

/// A node that stores a fresh layer (a client pulled it through), the layer, its bytes, and
/// the registry behind the node (kept running).
fn node_storing_a_layer(
    work: &std::path::Path,
) -> (Registry, Node, pyrsia_tests::image::Blob, Vec<u8>) {
    let registry = Registry::start(&work.join("registry"));
    let image = push_large_image(work, &registry.authority(), LAYER);
    let layer = image.layers[0].blob.clone();
    let node = Node::start(&work.join("node"), &["--upstream", &registry.url()]);
    let body = work.join("layer");
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
    assert!(node.wait_stored(&layer.digest), "{}", node.log());
    let bytes = std::fs::read(&body).unwrap();
    (registry, node, layer, bytes)
}

#[test]
fn a_piece_sent_to_two_peers_lately_sends_the_next_asker_to_them_unless_it_insists() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, node, layer, bytes) = node_storing_a_layer(work.path());
    let is_piece = |answer: &Result<SyncResponse, String>, index: u64| {
        let at = (index * PIECE) as usize;
        matches!(answer, Ok(SyncResponse::Piece { total, bytes: got })
            if *total == layer.size && got[..] == bytes[at..at + PIECE as usize])
    };
    let ask = |peer: &RawPeer, request: SyncRequest| {
        peer.ask(&node.p2p_address(), vec![request], Duration::from_secs(20))
            .remove(0)
    };

    let [first, second, third, other, insister] = [(); 5].map(|_| RawPeer::new());
    for peer in [&first, &second] {
        let answer = ask(peer, piece(&layer.digest, 0, false));
        assert!(
            is_piece(&answer, 0),
            "one of the first two askers: {}\n{}",
            describe(&answer),
            node.log()
        );
    }
    let answer = ask(&third, piece(&layer.digest, 0, false));
    let named = named_in(&answer).unwrap_or_else(|| {
        panic!(
            "the third asker is sent elsewhere: {}\n{}",
            describe(&answer),
            node.log()
        )
    });
    let mut expected = vec![first.peer_id(), second.peer_id()];
    expected.sort();
    assert_eq!(named, expected, "named exactly the two it sent piece 0 to");

    let answer = ask(&third, piece(&layer.digest, 0, true));
    assert!(
        is_piece(&answer, 0),
        "insisting, it is served: {}",
        describe(&answer)
    );
    let answer = ask(&other, piece(&layer.digest, 1, false));
    assert!(
        is_piece(&answer, 1),
        "another piece is not redirected: {}",
        describe(&answer)
    );
    for round in 0..3 {
        let answer = ask(&insister, piece(&layer.digest, 0, true));
        assert!(
            is_piece(&answer, 0),
            "round {round}: an asker that insists is always served: {}",
            describe(&answer)
        );
    }

    assert_none_struck(&node, [&first, &second, &third, &other, &insister]);
}

/// Asserts the node struck none of `peers` (asking, redirected or not, is no misbehaviour).
fn assert_none_struck<'a>(node: &Node, peers: impl IntoIterator<Item = &'a RawPeer>) {
    let log = node.log();
    for peer in peers {
        assert!(
            !log.lines()
                .any(|l| l.contains("peer misbehaved") && l.contains(&peer.peer_id())),
            "{} was struck for asking\n{log}",
            peer.peer_id()
        );
    }
}

/// The peer ids an `Elsewhere` answer names, sorted.
fn named_in(answer: &Result<SyncResponse, String>) -> Option<Vec<String>> {
    let Ok(SyncResponse::Elsewhere(named)) = answer else {
        return None;
    };
    let mut named: Vec<String> = named
        .iter()
        .map(|id| {
            libp2p::PeerId::from_bytes(id)
                .expect("a peer id")
                .to_string()
        })
        .collect();
    named.sort();
    Some(named)
}

#[test]
fn askers_sent_elsewhere_are_named_in_turn_so_no_holder_is_named_to_more_than_two() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, node, layer, _bytes) = node_storing_a_layer(work.path());
    let ask = |peer: &RawPeer| {
        peer.ask(
            &node.p2p_address(),
            vec![piece(&layer.digest, 0, false)],
            Duration::from_secs(20),
        )
        .remove(0)
    };
    let peers: Vec<RawPeer> = (0..7).map(|_| RawPeer::new()).collect();
    let sorted = |which: [usize; 2]| {
        let mut ids = which.map(|i| peers[i].peer_id()).to_vec();
        ids.sort();
        ids
    };
    for first in &peers[..2] {
        let answer = ask(first);
        assert!(
            matches!(answer, Ok(SyncResponse::Piece { .. })),
            "the first two askers are served: {}\n{}",
            describe(&answer),
            node.log()
        );
    }
    // Peers 2 and 3 are named the two recipients; each recipient has then been named twice,
    // so peers 4 and 5 are named the askers before them (fetching it from the recipients),
    // and peer 6 the askers before it: a tree, not every asker sent to the first two.
    for (asker, expected) in [
        (2, [0, 1]),
        (3, [0, 1]),
        (4, [2, 3]),
        (5, [2, 3]),
        (6, [4, 5]),
    ] {
        let answer = ask(&peers[asker]);
        assert_eq!(
            named_in(&answer),
            Some(sorted(expected)),
            "asker {asker}: {}\n{}",
            describe(&answer),
            node.log()
        );
    }
    assert_none_struck(&node, &peers);
}

#[test]
fn a_node_of_the_previous_build_is_served_every_piece_and_never_sent_elsewhere() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, node, layer, bytes) = node_storing_a_layer(work.path());
    // Three askers speaking only `/pyrsia/sync/1` (no `insist`, no `Elsewhere`) ask for piece
    // 0 one after the other: each gets the bytes (a v1 request is served as insisting), and
    // what they hold answers as before.
    let old = [(); 3].map(|_| RawPeer::new().speaking(LOG_SYNC_PROTOCOL_V1));
    for (i, peer) in old.iter().enumerate() {
        let answers = peer.ask(
            &node.p2p_address(),
            vec![
                piece(&layer.digest, 0, false),
                SyncRequest::Have {
                    digest: *layer.digest.as_bytes(),
                },
            ],
            Duration::from_secs(20),
        );
        assert!(
            matches!(&answers[0], Ok(SyncResponse::Piece { total, bytes: got })
                if *total == layer.size && got[..] == bytes[..PIECE as usize]),
            "v1 asker {i}: {}\n{}",
            describe(&answers[0]),
            node.log()
        );
        assert!(
            matches!(&answers[1], Ok(SyncResponse::Have { total, .. }) if *total == layer.size),
            "v1 asker {i}: {:?}",
            answers[1]
        );
    }
    // A current asker after them is sent to two of them: they are the piece's latest
    // recipients, whatever version they speak.
    let answer = RawPeer::new()
        .ask(
            &node.p2p_address(),
            vec![piece(&layer.digest, 0, false)],
            Duration::from_secs(20),
        )
        .remove(0);
    assert!(
        matches!(answer, Ok(SyncResponse::Elsewhere(ref named)) if named.len() == 2),
        "{}",
        describe(&answer)
    );
    assert_none_struck(&node, &old);
}
