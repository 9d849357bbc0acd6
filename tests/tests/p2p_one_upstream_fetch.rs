//! Five node processes in a full mesh pull the same large image at the same moment: the
//! rendezvous winner for each blob fetches it from the upstream once and the other four fetch
//! it from that node as its bytes arrive. The upstream's access log is the judge.

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::registry::Registry;

/// Big enough for many pieces (1 MiB each) in flight at once, small enough for a 2-core CI.
const LAYER: u64 = 48 << 20;
const NODES: usize = 5;

#[test]
fn five_nodes_pulling_at_once_fetch_each_blob_from_the_upstream_once() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), LAYER);
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let addresses: Vec<String> = nodes.iter().map(Node::p2p_address).collect();
        let mut args = vec!["--upstream".to_string(), registry.url()];
        for address in addresses {
            args.extend(["--peer".to_string(), address]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&work.path().join(format!("node{i}")), &args));
    }
    wait_mesh(&nodes.iter().collect::<Vec<_>>());

    let pulls: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (authority, dest) = (node.authority(), work.path().join(format!("copy{i}")));
            let reference = image.reference.clone();
            std::thread::spawn(move || skopeo_copy(&authority, &reference, &dest))
        })
        .collect();
    for (i, pull) in pulls.into_iter().enumerate() {
        assert_succeeded(
            &pull.join().unwrap(),
            &format!("pull through node {i}"),
            &nodes[i].log(),
        );
    }
    let layer = image.layers[0].blob.digest;
    for node in &nodes {
        assert!(
            node.wait_stored(&layer),
            "every node stored the verified layer"
        );
    }
    assert_eq!(
        registry.blob_gets(&layer.to_string()),
        1,
        "the layer crossed the upstream link once\n{}",
        nodes
            .iter()
            .map(Node::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let from_peers = nodes
        .iter()
        .filter(|n| {
            n.log().contains(&format!(
                "blob fetched from peers and verified digest={layer}"
            ))
        })
        .count();
    assert_eq!(from_peers, NODES - 1, "the other nodes got it from peers");
}
