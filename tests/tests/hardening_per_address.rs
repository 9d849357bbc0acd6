//! Issue 14, item 7 (connections per IP address): one host cannot hold more than its share of
//! a node's connections. 80 raw libp2p identities from 127.0.0.1 connect to a node at once and
//! stay: at most 64 are kept; once they leave, a new one is welcome again. The same with half
//! of them over QUIC and half over TCP: the share counts both transports together.

use std::time::Duration;

use pyrsia_tests::node::Node;
use pyrsia_tests::raw_peer::RawPeer;

const PER_ADDRESS: usize = 64;
const HOLDERS: usize = 80;

#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let work = tempfile::tempdir().unwrap();
    let node = Node::start(&work.path().join("node"), &[]);
    hold_from_one_address(&node, &[node.p2p_address()]);
}

#[test]
fn the_share_counts_quic_and_tcp_connections_together() {
    let work = tempfile::tempdir().unwrap();
    let node = Node::start(&work.path().join("node"), &[]);
    hold_from_one_address(&node, &[node.quic_address(), node.p2p_address()]);
}

/// [`HOLDERS`] identities connect to `node` at once, taking turns among `addresses`, and stay
/// six seconds: at most [`PER_ADDRESS`] are kept; then a newcomer is welcome again.
fn hold_from_one_address(node: &Node, addresses: &[String]) {
    let holders: Vec<_> = (0..HOLDERS)
        .map(|i| {
            let address = addresses[i % addresses.len()].clone();
            std::thread::spawn(move || RawPeer::new().hold(&address, Duration::from_secs(6)))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let connected_midway = node.connected_peers().len();
    let kept = holders
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&kept| kept)
        .count();
    eprintln!("{kept} of {HOLDERS} connections kept; the node listed {connected_midway} midway");
    assert!(
        kept <= PER_ADDRESS,
        "{kept} connections from one address kept"
    );
    assert!(
        kept >= PER_ADDRESS / 2,
        "only {kept} kept: the limit is too tight"
    );
    assert!(
        connected_midway <= PER_ADDRESS,
        "{connected_midway} peers listed"
    );
    assert!(
        node.log().contains("peer connected"),
        "the node saw the connections\n{}",
        node.log()
    );

    // They are gone: a newcomer from the same address is welcome again.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        RawPeer::new().hold(&addresses[0], Duration::from_secs(2)),
        "a newcomer was refused after the others left\n{}",
        node.log()
    );
}
