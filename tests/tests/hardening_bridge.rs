//! Issue 19, item 6: a relay bridges a blob only for a peer whose circuit it carries (core's
//! `reach::honours_bridge`). A raw libp2p stranger (its own identity, the node's own wire
//! protocol, no circuit through the node) asks a node with an upstream to bridge a layer the
//! upstream holds, and even one the node would fetch for the network (the stranger ground its
//! identity so that the node is nearest the digest): every answer is `Missing`, the upstream
//! sees no request for the layer, and nothing is stored.

use std::time::Duration;

use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::raw_peer::{RawPeer, node_wins};
use pyrsia_tests::registry::Registry;

#[test]
fn a_stranger_without_a_circuit_cannot_make_a_node_bridge_a_blob() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let small = images
        .iter()
        .find(|i| i.reference == "library/small:small")
        .expect("the small image");
    let layer = small.layers[0].blob.digest;
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--relay-server"],
    );
    let node_id = node.peer_id();
    let stranger = RawPeer::grind(|id| node_wins(&layer, &node_id, &[id]));
    let bridge = |host: &str| SyncRequest::BridgePiece {
        digest: *layer.as_bytes(),
        offset: 0,
        len: 1 << 20,
        host: host.to_string(),
        repository: "library/small".to_string(),
    };
    let answers = stranger.ask(
        &node.p2p_address(),
        // docker.io is the host the node fetches from (`--upstream` maps it to the registry).
        vec![bridge("docker.io"), bridge("docker.io")],
        Duration::from_secs(10),
    );
    for answer in &answers {
        assert_eq!(
            answer.as_ref().ok(),
            Some(&SyncResponse::Missing),
            "{answers:?}\n{}",
            node.log()
        );
    }
    assert_eq!(
        registry.blob_gets(&layer.to_string()),
        0,
        "the node fetched what a stranger named\n{}",
        node.log()
    );
    assert!(node.stored_blobs().is_empty(), "{:?}", node.stored_blobs());
    // Not a refusal for being a stranger: the same peer's piece request with a fetch hint,
    // which the node honours as the one nearest the digest, starts a fetch.
    let answers = stranger.ask(
        &node.p2p_address(),
        vec![SyncRequest::Piece {
            digest: *layer.as_bytes(),
            offset: 0,
            len: 1 << 20,
            fetch: Some(("docker.io".to_string(), "library/small".to_string())),
            insist: true,
        }],
        Duration::from_secs(10),
    );
    assert!(
        matches!(answers[0], Ok(SyncResponse::Piece { .. })),
        "{answers:?}\n{}",
        node.log()
    );
    assert_eq!(registry.blob_gets(&layer.to_string()), 1);
}
