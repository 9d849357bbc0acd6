//! Issue 19, item 3, in network namespaces on this machine (`pyrsia_tests::netns`): nodes on a
//! public segment and nodes alone behind NAT routers (nftables masquerade, one
//! endpoint-independent, one symmetric) learn from AutoNAT v2 whether peers can dial them,
//! over TCP and over QUIC, and `pyrsia status` says so. A peer dials the address it saw the
//! node at, from a new port: through a NAT that is refused, because only replies to flows the
//! private host opened are let in. An operator who knows the node's public address gives it
//! with `--external-addr`, and the node is public at once.

use std::time::Duration;

use pyrsia_tests::netns::{Lab, Nat};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;

/// The node's reachability as `/peers` reports it.
fn reachability(node: &Node) -> serde_json::Value {
    node.peers_status()["reachability"].clone()
}

fn addresses(node: &Node, list: &str) -> Vec<String> {
    reachability(node)[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// `pyrsia status`'s reachability line for `node`.
fn status_line(node: &Node) -> String {
    let out = pyrsia_tests::pyrsia(&["status", "--node", &node.url()]);
    assert!(out.status.success(), "pyrsia status: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("reachable:"))
        .unwrap_or_default()
        .to_string()
}

/// Runs the lab with every node given `transport_args` (`--no-quic` for TCP alone); `wire`
/// is how the transport shows in a multiaddr (`/tcp/` or `/quic-v1`).
fn public_and_private_nodes_learn_which_they_are(transport_args: &[&str], wire: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let boot_host = lab.public_host("boot", 10);
    let public_host = lab.public_host("pub", 11);
    let cone_host = lab.private_host("cone", Nat::EndpointIndependent);
    let symmetric_host = lab.private_host("sym", Nat::Symmetric);

    let boot = Node::start_on(&boot_host, &work.path().join("boot"), transport_args);
    let bootstrap = boot.p2p_address();
    let with_boot = |extra: &[&str]| {
        let mut args = vec!["--peer", &bootstrap];
        args.extend_from_slice(transport_args);
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let start = |host, name: &str, extra: &[&str]| {
        let args = with_boot(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start_on(host, &work.path().join(name), &args)
    };
    // The operator of `public` knows its address; the others learn theirs from AutoNAT.
    let operator_address = format!("/ip4/{}/tcp/44000", public_host.ip);
    let public = start(&public_host, "pub", &["--external-addr", &operator_address]);
    let cone = start(&cone_host, "cone", &[]);
    let symmetric = start(&symmetric_host, "sym", &[]);
    let everyone = [&boot, &public, &cone, &symmetric];
    let logs = || {
        everyone
            .iter()
            .map(|n| format!("{}\n{}\n", n.url(), n.log()))
            .collect::<String>()
    };

    // The operator's address counts at once, untested.
    assert!(
        addresses(&public, "confirmed").contains(&operator_address),
        "{}",
        reachability(&public)
    );

    // The bootstrap node is dialled back at its lab address by a peer that reached it.
    wait_until(
        "the bootstrap node learns it is public",
        Duration::from_secs(60),
        &logs,
        || reachability(&boot)["state"] == "public",
    );
    let confirmed = addresses(&boot, "confirmed");
    assert!(
        confirmed
            .iter()
            .any(|a| a.starts_with(&format!("/ip4/{}/", boot_host.ip))),
        "boot confirmed at {confirmed:?}"
    );
    assert!(status_line(&boot).starts_with("reachable: public at /ip4/10.77.0.10/"));

    // Both private nodes joined through their NAT and learn that peers cannot dial them at
    // the address they were seen at (their router's); nothing of theirs is confirmed.
    for (node, host) in [(&cone, &cone_host), (&symmetric, &symmetric_host)] {
        wait_until(
            "a node behind a NAT learns it is private",
            Duration::from_secs(60),
            &logs,
            || reachability(node)["state"] == "private",
        );
        assert!(
            node.connected_peers().contains(&boot.peer_id()),
            "{} dialled out to the bootstrap node",
            host.ns
        );
        let unreachable = addresses(node, "unreachable");
        let router = host.public_ip.as_deref().unwrap();
        // Seen at its router's address, over the transport it dialled out on (QUIC first,
        // when on), and not reachable there.
        assert!(
            unreachable
                .iter()
                .all(|a| a.starts_with(&format!("/ip4/{router}/")))
                && unreachable.iter().any(|a| a.contains(wire)),
            "{}: unreachable {unreachable:?}, router {router}",
            host.ns
        );
        // The lab's NATs are what they say (libp2p reports a NAT'd address with the
        // listening port, whatever the router chose, so the router's table is asked): the
        // endpoint-independent one keeps the port the node sends from, the symmetric one
        // picks another for every flow.
        let mappings = host.nat_mappings();
        let kept = |m: &(String, u16, u16)| m.1 == m.2;
        if host.ns.ends_with("cone") {
            assert!(
                !mappings.is_empty() && mappings.iter().all(kept),
                "{mappings:?}"
            );
        } else {
            assert!(
                !mappings.is_empty() && !mappings.iter().any(kept),
                "{mappings:?}"
            );
        }
        assert!(addresses(node, "confirmed").is_empty(), "{}", host.ns);
        let line = status_line(node);
        assert!(
            line.starts_with("reachable: private") && line.contains(router),
            "{line}"
        );
    }
    // The operator's word stands, whatever AutoNAT tested since.
    assert_eq!(reachability(&public)["state"], "public");
}

#[test]
fn over_tcp_public_and_private_nodes_learn_which_they_are() {
    public_and_private_nodes_learn_which_they_are(&["--no-quic"], "/tcp/");
}

#[test]
fn over_quic_public_and_private_nodes_learn_which_they_are() {
    public_and_private_nodes_learn_which_they_are(&[], "/quic-v1");
}
