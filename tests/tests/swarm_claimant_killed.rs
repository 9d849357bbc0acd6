//! The node fetching a blob from the upstream for the network (the claimant) is killed in the
//! middle of the fetch. The node next in line resumes from the upstream at the offset it had
//! reached (a `Range` request), the others follow it, every pull completes, and the bytes of
//! the blob that crossed the upstream link stay within 1.1× its size. The upstream is behind
//! a proxy that limits it to a WAN-like rate (so the kill lands mid-fetch) and counts the
//! bytes it passes on.

use std::time::{Duration, Instant};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::proxy::throttled_upstream;
use pyrsia_tests::raw_peer::claimant_order;

const LAYER: u64 = 48 << 20;
const NODES: usize = 4;
/// The upstream link: the layer takes about 12 s over it, slow enough that the nodes (debug
/// builds in CI, on two shared cores) keep up with the claimant as its bytes arrive.
const UPSTREAM_RATE: u64 = 4 << 20;

#[test]
fn a_killed_claimant_is_taken_over_at_the_offset_it_reached() {
    let work = tempfile::tempdir().unwrap();
    let (registry, image, proxy) = throttled_upstream(work.path(), LAYER, UPSTREAM_RATE);
    let layer = image.layers[0].blob.digest;

    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let mut args = vec!["--upstream".to_string(), proxy.url()];
        for earlier in &nodes {
            args.extend(["--peer".to_string(), earlier.p2p_address()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&work.path().join(format!("node{i}")), &args));
    }
    wait_mesh(&nodes.iter().collect::<Vec<_>>());
    let ids: Vec<String> = nodes.iter().map(Node::peer_id).collect();
    let order = claimant_order(&layer, &ids);
    let (claimant, next) = (order[0], order[1]);

    // Every node but the claimant pulls; the claimant fetches for them.
    let pulls: Vec<_> = (0..NODES)
        .filter(|&i| i != claimant)
        .map(|i| {
            let (authority, dest) = (nodes[i].authority(), work.path().join(format!("copy{i}")));
            let reference = image.reference.clone();
            (
                i,
                std::thread::spawn(move || skopeo_copy(&authority, &reference, &dest)),
            )
        })
        .collect();

    // Kill it once a quarter of the layer has crossed the upstream link.
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.blob_bytes_sent(&layer.to_string()) < LAYER / 4 {
        assert!(
            Instant::now() < deadline,
            "the claimant never fetched the layer\n{}",
            nodes[claimant].log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nodes[claimant].kill();
    let at_kill = proxy.blob_bytes_sent(&layer.to_string());
    assert!(
        at_kill < LAYER,
        "the claimant was killed mid-fetch ({at_kill} of {LAYER} bytes had crossed)"
    );

    let logs = |nodes: &[Node]| {
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| format!("--- node {i} ---\n{}", n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (i, pull) in pulls {
        assert_succeeded(
            &pull.join().unwrap(),
            &format!("pull through node {i}"),
            &logs(&nodes),
        );
    }
    for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != claimant) {
        assert!(
            node.wait_stored(&layer),
            "node {i} stored the verified layer"
        );
    }
    let upstream_bytes = proxy.blob_bytes_sent(&layer.to_string());
    println!(
        "claimant killed after {} MiB; {} MiB of the {} MiB layer crossed the upstream link in all",
        at_kill >> 20,
        upstream_bytes >> 20,
        LAYER >> 20
    );
    assert!(
        upstream_bytes * 10 <= LAYER * 11,
        "the upstream bytes stay within 1.1x the layer: {upstream_bytes}\n{}",
        logs(&nodes)
    );
    let resumed = nodes[next].log();
    assert!(
        resumed.contains("resuming from the upstream at the offset reached"),
        "the node next in line resumed from the upstream where it stood\n{}",
        logs(&nodes)
    );
    assert!(
        registry.blob_gets(&layer.to_string()) >= 2,
        "the claimant's fetch and the resumption both reached the upstream"
    );
}
