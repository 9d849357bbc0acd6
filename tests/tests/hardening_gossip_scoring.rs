//! Issue 14, item 7 (gossipsub peer scoring): a stranger joins a node's checkpoint topic and
//! publishes forged checkpoints (a real note with its size raised: the signatures no longer
//! verify), one every 300 ms. The first is rejected and strikes it; its score falls below the
//! graylist threshold, so the node drops the rest before checking any signature (one strike in
//! all, where each forged note would otherwise be one). An honest follower's score stays
//! positive and checkpoint gossip between the two honest nodes keeps flowing.

use std::time::{Duration, Instant};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::gossip_attacker::GossipAttacker;
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;

/// Forged checkpoints the attacker publishes.
const FORGED: usize = 6;

/// `peer`'s entry in `node`'s `/peers`.
fn peer_entry(node: &Node, peer: &str) -> serde_json::Value {
    let peers: serde_json::Value =
        serde_json::from_str(&get(&format!("{}/peers", node.url())).unwrap().small_body).unwrap();
    peers["peers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["peer_id"] == peer).cloned())
        .unwrap_or_default()
}

#[test]
fn a_peer_gossiping_forged_checkpoints_is_graylisted_after_the_first() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);
    let follower = Node::start_follower(&work.path().join("follower"), &node, &[]);
    let follower_id = follower
        .p2p_address()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    wait_until(
        "the follower connects",
        Duration::from_secs(20),
        &|| node.log(),
        || peer_entry(&node, &follower_id).is_object(),
    );

    let origin = node.log_status()["origin"].as_str().unwrap().to_string();
    let real = get(&format!("{}/pyrsia/log/checkpoint", node.url()))
        .unwrap()
        .small_body;
    let forged: Vec<Vec<u8>> = (0..FORGED)
        .map(|i| {
            let mut lines: Vec<String> = real.lines().map(str::to_string).collect();
            let size: u64 = lines[1].parse().unwrap();
            lines[1] = (size + 1_000 + i as u64).to_string();
            (lines.join("\n") + "\n").into_bytes()
        })
        .collect();
    let attacker = GossipAttacker::start(
        &node.p2p_address(),
        &format!("pyrsia/log/{origin}/checkpoints"),
        forged,
        Duration::from_millis(300),
    );
    wait_until(
        "the attacker publishes every forged checkpoint",
        Duration::from_secs(30),
        &|| node.log(),
        || attacker.published() == FORGED,
    );
    std::thread::sleep(Duration::from_secs(1));

    let entry = peer_entry(&node, attacker.peer_id());
    let score = entry["gossip_score"].as_i64().unwrap_or(0);
    assert!(
        score <= -80,
        "the attacker's score: {entry}\n{}",
        node.log()
    );
    let strikes = node
        .log()
        .lines()
        .filter(|l| l.contains("peer misbehaved") && l.contains(attacker.peer_id()))
        .count();
    assert_eq!(
        strikes,
        1,
        "{FORGED} forged checkpoints, but only the first may be checked\n{}",
        node.log()
    );

    // The honest follower keeps a non-negative score and follows the node's log.
    let out = skopeo_copy(
        &node.authority(),
        &images[0].reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "a pull that commits", &node.log());
    node.wait_committed("docker.io/library/small", &images[0].digest)
        .expect("committed");
    let size = node.log_status()["size"].as_u64().unwrap();
    let started = Instant::now();
    wait_until(
        "the follower gets the new checkpoint by gossip",
        Duration::from_secs(10),
        &|| follower.log(),
        || follower.log_status()["size"].as_u64() >= Some(size),
    );
    eprintln!("checkpoint reached the follower in {:?}", started.elapsed());
    let honest = peer_entry(&node, &follower_id);
    assert!(
        honest["gossip_score"].as_i64().is_none_or(|s| s >= 0),
        "the follower's score: {honest}"
    );
    drop(attacker);
}
