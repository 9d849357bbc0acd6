//! Issue 18: a peer that announces pieces it does not have costs time, not the pull. Four
//! honest node processes (each told of one or two others) pull one fresh image at once while
//! a stranger connected to each of them announces the layer on the DHT, says it holds every
//! piece of it, and answers every piece request `Missing` — or, in the second test,
//! `Elsewhere` even when the request insists, naming itself, a junk id and a node that may
//! not hold the piece. Every pull completes, the layer still crosses the upstream link once
//! (the nodes turn from the liars to the node fetching it for the network and to each
//! other), and no honest node is blamed.

use pyrsia_core::digest::Digest;
use pyrsia_core::rendezvous::CLAIMANTS;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::raw_peer::{Lie, LyingProvider, claimant_order};
use pyrsia_tests::registry::Registry;
use std::time::Duration;

const LAYER: u64 = 16 << 20;
const NODES: usize = 4;

#[test]
fn peers_claiming_pieces_they_lack_cost_time_not_the_pull() {
    pull_next_to_liars(Lie::HoldsEverything);
}

#[test]
fn peers_sending_every_request_elsewhere_cost_time_not_the_pull() {
    pull_next_to_liars(Lie::SendsElsewhere);
}

/// Four nodes pull one fresh image at once, each next to a liar lying as `lie`.
fn pull_next_to_liars(lie: Lie) {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), LAYER);
    let layer = image.layers[0].blob.clone();
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let mut args = vec!["--upstream".to_string(), registry.url()];
        for earlier in nodes.iter().rev().take(2) {
            args.extend(["--peer".to_string(), earlier.p2p_address()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&work.path().join(format!("node{i}")), &args));
    }
    // The liars' identities, drawn so that they are not all of the nodes the network asks
    // in turn to fetch the layer from the upstream: with every one of those lying, each node
    // fetches it itself (a stranger can make at most `CLAIMANTS` nodes fetch a blob for the
    // network, so the walk stops there; drawn at random, this happens in 1 run of 35). A liar
    // may still be first or second in line.
    let keys = liar_keys(&layer.digest, &nodes);
    let liars: Vec<LyingProvider> = nodes
        .iter()
        .zip(keys)
        .map(|(node, key)| {
            let liar = LyingProvider::lying_as(
                key,
                &node.p2p_address(),
                vec![(layer.digest, layer.size)],
                lie,
            );
            wait_until(
                "the liar connects",
                Duration::from_secs(10),
                &|| node.log(),
                || node.connected_peers().iter().any(|p| p == liar.peer_id()),
            );
            liar
        })
        .collect();
    // Let the liars' provider records reach the nodes.
    std::thread::sleep(Duration::from_secs(1));

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
            &format!("pull through node {i} next to a liar"),
            &nodes[i].log(),
        );
    }
    for node in &nodes {
        assert!(node.wait_stored(&layer.digest), "layer stored, verified");
    }
    let logs = nodes
        .iter()
        .map(Node::log)
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert_eq!(
        registry.blob_gets(&layer.digest.to_string()),
        1,
        "the layer crossed the upstream link once\n{logs}"
    );
    let asked_liars = liars
        .iter()
        .filter(|liar| logs.contains(liar.peer_id()))
        .count();
    assert!(
        asked_liars > 0,
        "the liars' claims reached the nodes\n{logs}"
    );
    for node in &nodes {
        let honest = node.peer_id();
        let blamed: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(&format!("peer misbehaved peer={honest}")))
            .collect();
        assert!(blamed.is_empty(), "an honest node was blamed: {blamed:?}");
    }
}

/// One identity per node for the liars, redrawn until an honest node is among the
/// `CLAIMANTS` nearest `digest` of all of them.
fn liar_keys(digest: &Digest, nodes: &[Node]) -> Vec<libp2p::identity::Keypair> {
    loop {
        let keys: Vec<_> = nodes
            .iter()
            .map(|_| libp2p::identity::Keypair::generate_ed25519())
            .collect();
        let ids: Vec<String> = nodes
            .iter()
            .map(Node::peer_id)
            .chain(keys.iter().map(|k| k.public().to_peer_id().to_string()))
            .collect();
        let in_line = &claimant_order(digest, &ids)[..CLAIMANTS];
        if in_line.iter().any(|&i| i < nodes.len()) {
            return keys;
        }
    }
}
