//! Helpers for the reach lab (issue 19), shared by `tests/reach_nat.rs` and
//! `pyrsia-bench-reach`: relays, circuit addresses and what `/peers` says of reachability
//! and paths.

use std::time::Duration;

use crate::netns::Host;
use crate::node::Node;
use crate::process::{free_port, wait_until};

/// The node's reachability as `/peers` reports it.
pub fn reachability(node: &Node) -> serde_json::Value {
    node.peers_status()["reachability"].clone()
}

/// The peer `peer_id` as `node`'s `/peers` lists it.
pub fn peer_entry(node: &Node, peer_id: &str) -> serde_json::Value {
    node.peers_status()["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer_id"] == peer_id)
        .cloned()
        .unwrap_or_default()
}

/// Starts a `--relay-server` node on `host` with `transport_args` and `extra`. A relay serves
/// only once it knows it is public: its operator says where (AutoNAT could not tell, as its
/// only peers are private and cannot dial it back).
pub fn start_relay(
    host: &Host,
    dir: &std::path::Path,
    transport_args: &[&str],
    extra: &[&str],
) -> Node {
    let port = free_port();
    let tcp = format!("/ip4/{}/tcp/{port}", host.ip);
    let quic = format!("/ip4/{}/udp/{port}/quic-v1", host.ip);
    let mut args = vec!["--relay-server", "--external-addr", &tcp];
    if !transport_args.contains(&"--no-quic") {
        args.extend(["--external-addr", &quic]);
    }
    args.extend_from_slice(transport_args);
    args.extend_from_slice(extra);
    Node::start_on_port(host, dir, port, &args)
}

/// Waits until `node` holds a reservation on `relay` and returns its circuit address through
/// it, ready to dial (`…/p2p/<relay>/p2p-circuit/p2p/<node>`).
pub fn circuit_address(node: &Node, relay: &Node, logs: &dyn Fn() -> String) -> String {
    let relay_id = relay.peer_id();
    wait_until(
        "a private node holds a reservation on the relay",
        Duration::from_secs(60),
        logs,
        || {
            reachability(node)["relays"]
                .as_array()
                .is_some_and(|r| r.iter().any(|id| *id == relay_id.as_str()))
        },
    );
    let listening = node.peers_status()["listen_addresses"].clone();
    let circuit = listening
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("/p2p-circuit"))
        .unwrap_or_else(|| panic!("no circuit address in {listening}"))
        .to_string();
    let own = format!("/p2p/{}", node.peer_id());
    if circuit.ends_with(&own) {
        circuit
    } else {
        format!("{circuit}{own}")
    }
}

/// Starts a `--relay-server` node on `host` of `lab` with `extra` (as [`start_relay`]), names
/// it `name` in every lab host, and returns it with its bootstrap address by that name
/// (`/dns4/<name>/tcp/…/p2p/<id>`).
pub fn start_named_relay(
    lab: &mut crate::netns::Lab,
    host: &Host,
    dir: &std::path::Path,
    transport_args: &[&str],
    extra: &[&str],
    name: &str,
) -> (Node, String) {
    let relay = start_relay(host, dir, transport_args, extra);
    lab.name(name, &host.ip);
    let bootstrap =
        relay
            .p2p_address()
            .replacen(&format!("/ip4/{}/", host.ip), &format!("/dns4/{name}/"), 1);
    (relay, bootstrap)
}

/// The node key (`<dir>/data/node.key`, the 32-byte seed of its libp2p identity) for a lab
/// node started in `dir`, chosen among seeds derived from `label` so that `accept` holds for
/// its peer id; written before the node starts, and the peer id returned. Tests choose who
/// is nearest a digest this way (the claimant order depends on peer ids alone).
pub fn plant_node_key(dir: &std::path::Path, label: &str, accept: impl Fn(&str) -> bool) -> String {
    for attempt in 0u32..10_000 {
        let seed = *pyrsia_core::digest::Digest::sha256(format!("{label}/{attempt}").as_bytes())
            .as_bytes();
        let peer_id = libp2p::identity::Keypair::ed25519_from_bytes(seed)
            .expect("an ed25519 seed")
            .public()
            .to_peer_id()
            .to_string();
        if accept(&peer_id) {
            std::fs::create_dir_all(dir.join("data")).expect("the data dir");
            std::fs::write(dir.join("data").join("node.key"), seed).expect("the node key");
            return peer_id;
        }
    }
    panic!("no seed in 10,000 gives a peer id that satisfies the condition");
}
