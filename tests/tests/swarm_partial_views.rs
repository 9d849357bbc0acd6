//! Nodes see different peers: the node nearest a layer's digest, C, is held at one peer
//! (`--max-peers 1`), so other nodes' lookups cannot reach it. Roles are given by distance to
//! the digest. The upstream's access log is the judge: the layer crosses the upstream link
//! once in each test, where it crossed twice before each rule.

use std::time::Duration;

use libp2p::PeerId;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

const LAYER: u64 = 16 << 20;

/// A reaches only B, cannot see C and asks B, the nearest it knows, to fetch the layer for the
/// network. B is one of the claimants in its own view too, but C comes before it there: B asks
/// C first (core's `rendezvous::honour`), and C, pulling the same image at the same moment,
/// fetches the layer once for all three. (Before, B fetched it from the upstream as well.)
#[test]
fn a_claimant_that_knows_a_nearer_one_fetches_through_it() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), LAYER);
    let layer = image.layers[0].blob.digest;
    let upstream = registry.url();
    let by_distance = data_dirs_by_distance(work.path(), &upstream, &layer);
    let nearest = Node::start(
        &by_distance[0],
        &["--upstream", &upstream, "--max-peers", "1"],
    );
    let second = Node::start(
        &by_distance[1],
        &["--upstream", &upstream, "--peer", &nearest.p2p_address()],
    );
    nearest.wait_connected(&second.peer_id());
    let third = Node::start(
        &by_distance[2],
        &["--upstream", &upstream, "--peer", &second.p2p_address()],
    );
    second.wait_connected(&third.peer_id());
    // The third node's lookups reach the nearest, which refuses it: it is held at one peer.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        nearest.connected_peers(),
        vec![second.peer_id()],
        "the nearest node holds only its one peer\n{}",
        nearest.log()
    );
    assert!(
        !third.connected_peers().contains(&nearest.peer_id()),
        "the third node does not reach the nearest"
    );

    let pulls: Vec<_> = [&nearest, &third]
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (authority, dest) = (node.authority(), work.path().join(format!("copy{i}")));
            let reference = image.reference.clone();
            std::thread::spawn(move || skopeo_copy(&authority, &reference, &dest))
        })
        .collect();
    for (pull, node) in pulls.into_iter().zip([&nearest, &third]) {
        let output = pull.join().unwrap();
        assert_succeeded(&output, "pull through a node", &node.log());
    }
    for node in [&nearest, &third] {
        assert!(
            node.wait_stored(&layer),
            "the node stored the verified layer"
        );
    }
    let logs = assert_one_upstream_get(&registry, &layer, &[&nearest, &second, &third]);
    assert!(
        second
            .log()
            .contains("nodes nearer it are known here: asking them first"),
        "the third node asked the second, which knew the nearest\n{logs}"
    );
    assert!(
        third.metric("peer_bytes") >= LAYER,
        "the third node got the layer from its peer"
    );
}

/// The node nearest the layer, C, is again held at one peer (B), and the second nearest, A,
/// reaches only B: A's view has no node nearer than itself, but its lookup of the nodes
/// nearest the layer was refused by one, so before it fetches the layer from the upstream it
/// looks for a nearer node downloading it (the DHT's provider records). C is fetching the
/// layer (through a slow link) and B follows it; A cannot reach C, so it follows B, which
/// downloads from C, waiting for B's pieces as they come (core's
/// `rendezvous::look_again_before_upstream`, `rendezvous::nearer_downloader` and
/// `PieceSchedule::with_growing_holders`). The layer crosses the upstream link once; before,
/// A fetched it too.
#[test]
fn a_node_that_cannot_reach_the_claimant_follows_those_who_can() {
    use pyrsia_tests::proxy::throttled_upstream;
    const RATE: u64 = 8 << 20;
    let work = tempfile::tempdir().unwrap();
    let (registry, image, proxy) = throttled_upstream(work.path(), LAYER, RATE);
    let layer = image.layers[0].blob.digest;
    let upstream = proxy.url();
    let by_distance = data_dirs_by_distance(work.path(), &upstream, &layer);
    let nearest = Node::start(
        &by_distance[0],
        &["--upstream", &upstream, "--max-peers", "1"],
    );
    let third = Node::start(
        &by_distance[2],
        &["--upstream", &upstream, "--peer", &nearest.p2p_address()],
    );
    nearest.wait_connected(&third.peer_id());
    let second = Node::start(
        &by_distance[1],
        &["--upstream", &upstream, "--peer", &third.p2p_address()],
    );
    third.wait_connected(&second.peer_id());
    // The second's lookups reach the nearest, which refuses it: it is held at one peer.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !second.connected_peers().contains(&nearest.peer_id()),
        "the second node does not reach the nearest"
    );

    let pull = |node: &Node, name: &str| {
        let (authority, dest) = (node.authority(), work.path().join(name));
        let reference = image.reference.clone();
        std::thread::spawn(move || skopeo_copy(&authority, &reference, &dest))
    };
    // The nearest starts its fetch (two seconds over the slow link), the third follows it,
    // then the second asks for the layer.
    let first_pull = pull(&nearest, "copy-nearest");
    let third_pull = pull(&third, "copy-third");
    wait_log(
        &third,
        "a peer fetches this blob from the upstream for the network",
    );
    let second_pull = pull(&second, "copy-second");
    for (handle, node) in [
        (first_pull, &nearest),
        (third_pull, &third),
        (second_pull, &second),
    ] {
        let output = handle.join().unwrap();
        assert_succeeded(&output, "pull through a node", &node.log());
    }
    for node in [&nearest, &second, &third] {
        assert!(
            node.wait_stored(&layer),
            "the node stored the verified layer"
        );
    }
    let logs = assert_one_upstream_get(&registry, &layer, &[&nearest, &second, &third]);
    assert!(
        second
            .log()
            .contains("following the peers that download this blob"),
        "the second node followed the third\n{logs}"
    );
    assert!(
        second.metric("peer_bytes") >= LAYER,
        "the second node got the layer from its peer"
    );
}

/// Waits (up to 30 s) until `node`'s log contains `text`.
fn wait_log(node: &Node, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !node.log().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {text:?} in the log\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Three node data directories under `work`, nearest `digest` first: each node's key stays in
/// its data directory, so three nodes are started alone once (on `upstream`) to learn their
/// peer ids, then ranked by distance to the digest (core's `rendezvous::nearest_first`).
fn data_dirs_by_distance(
    work: &std::path::Path,
    upstream: &str,
    digest: &pyrsia_core::digest::Digest,
) -> Vec<std::path::PathBuf> {
    let dirs: Vec<_> = (0..3).map(|i| work.join(format!("node{i}"))).collect();
    let ids: Vec<Vec<u8>> = dirs
        .iter()
        .map(|dir| {
            let mut node = Node::start(dir, &["--upstream", upstream]);
            let id: PeerId = node.peer_id().parse().unwrap();
            assert!(node.terminate(), "node stopped cleanly\n{}", node.log());
            id.to_bytes()
        })
        .collect();
    let ranked =
        pyrsia_core::rendezvous::nearest_first(digest.as_bytes(), ids.iter().map(Vec::as_slice), 3);
    ranked
        .iter()
        .map(|id| dirs[ids.iter().position(|i| i == id).unwrap()].clone())
        .collect()
}

/// Asserts that the upstream served `layer` once; returns the `nodes`' logs, for the messages
/// of further assertions.
fn assert_one_upstream_get(
    registry: &Registry,
    layer: &pyrsia_core::digest::Digest,
    nodes: &[&Node],
) -> String {
    let logs = nodes
        .iter()
        .map(|n| n.log())
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert_eq!(
        registry.blob_gets(&layer.to_string()),
        1,
        "the layer crossed the upstream link once\n{logs}"
    );
    logs
}
