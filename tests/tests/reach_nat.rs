//! Issue 19, items 1 and 3, in network namespaces on this machine (`pyrsia_tests::netns`):
//! nodes join by the bootstrap node's DNS name (in `/etc/hosts`, and as a `/dnsaddr` TXT
//! record the lab's DNS server answers); nodes on a public segment and nodes alone
//! behind NAT routers (nftables masquerade, one endpoint-independent, one symmetric) learn
//! from AutoNAT v2 whether peers can dial them, over TCP and over QUIC, and `pyrsia status`
//! says so. A peer dials the address it saw the node at, from a new port: through a NAT that
//! is refused, because only replies to flows the private host opened are let in. An operator
//! who knows the node's public address gives it with `--external-addr`, and the node is
//! public at once.
//!
//! Items 4 and 5: private nodes reserve a slot on a `--relay-server` relay, meet through it,
//! and hole-punch a direct connection (DCUtR) where both NATs keep a flow's port for every
//! peer; behind the symmetric NAT the hole punch fails and the pair stays relayed, no blob
//! byte crosses the circuit, and (item 6) the relay bridges what the far end holds or, as the
//! node nearest a fresh blob, fetches for the network once.

use std::time::Duration;

use pyrsia_tests::netns::{Lab, Nat};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::reach::{
    circuit_address, peer_entry, plant_node_key, reachability, start_named_relay, start_relay,
};

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

/// The transport arguments of the `over_quic_` tests. The lab's public segment
/// (`10.77.0.0/24`) and the NATs' private ones are private address ranges, which a node by
/// default takes for its own network and dials over TCP first; `--quic-on-lan` makes the nodes
/// dial them as they would the internet's, over QUIC first.
const QUIC_FIRST: &[&str] = &["--quic-on-lan"];

/// Runs the lab with every node given `transport_args` (`--no-quic` for TCP alone,
/// [`QUIC_FIRST`] for QUIC); `wire`
/// is how the transport shows in a multiaddr (`/tcp/` or `/quic-v1`).
fn public_and_private_nodes_learn_which_they_are(transport_args: &[&str], wire: &str) {
    let work = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let boot_host = lab.public_host("boot", 10);
    let public_host = lab.public_host("pub", 11);
    let cone_host = lab.private_host("cone", Nat::EndpointIndependent);
    let symmetric_host = lab.private_host("sym", Nat::Symmetric);

    let boot = Node::start_on(&boot_host, &work.path().join("boot"), transport_args);
    // Every node joins by the bootstrap node's DNS name (issue 19, item 1).
    lab.name("boot.pyrsia.test", &boot_host.ip);
    let bootstrap = boot.p2p_address().replacen(
        &format!("/ip4/{}/", boot_host.ip),
        "/dns4/boot.pyrsia.test/",
        1,
    );
    assert!(
        bootstrap.starts_with("/dns4/boot.pyrsia.test/tcp/"),
        "{bootstrap}"
    );
    let start = |host, name: &str, extra: &[&str]| {
        start_joined(
            host,
            &work.path().join(name),
            &bootstrap,
            &[transport_args, extra],
        )
    };
    // The operator of `public` knows its address; the others learn theirs from AutoNAT.
    let operator_address = format!("/ip4/{}/tcp/44000", public_host.ip);
    let public = start(&public_host, "pub", &["--external-addr", &operator_address]);
    let cone = start(&cone_host, "cone", &[]);
    let symmetric = start(&symmetric_host, "sym", &[]);
    let everyone = [&boot, &public, &cone, &symmetric];
    let logs = || logs_of(&everyone);

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
    // Peers report the address they dialled: the bootstrap node's name, or its lab address.
    let at_boot = |a: &str| {
        a.starts_with(&format!("/ip4/{}/", boot_host.ip))
            || a.starts_with("/dns4/boot.pyrsia.test/")
    };
    assert!(
        confirmed.iter().any(|a| at_boot(a)),
        "boot confirmed at {confirmed:?}"
    );
    let line = status_line(&boot);
    assert!(
        line.starts_with("reachable: public at ")
            && line["reachable: public at ".len()..]
                .split(", ")
                .any(at_boot),
        "{line}"
    );

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
    public_and_private_nodes_learn_which_they_are(QUIC_FIRST, "/quic-v1");
}

/// Every node's URL and log, for a failure message.
fn logs_of(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}\n{}\n", n.url(), n.log()))
        .collect()
}

/// Waits until DCUtR between `a` and `b` gave up (either side says so).
fn wait_for_failed_hole_punch(a: &Node, b: &Node, logs: &dyn Fn() -> String) {
    wait_until(
        "the hole punch through the symmetric NAT fails",
        Duration::from_secs(90),
        logs,
        || a.log().contains("hole punching failed") || b.log().contains("hole punching failed"),
    );
}

/// Item 1, `/dnsaddr`: a network publishes its bootstrap list as a name whose
/// `_dnsaddr.` TXT records hold the bootstrap node's addresses (the lab's DNS server, dnsmasq,
/// on the public segment). A node behind a NAT is given only `/dnsaddr/<name>/p2p/<id>`: it
/// asks the DNS server for the TXT record and connects to the bootstrap node.
fn a_node_joins_through_a_dnsaddr_name(transport_args: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let boot_host = lab.public_host("boot", 10);
    let dns_host = lab.public_host("dns", 53);
    let cone_host = lab.private_host("cone", Nat::EndpointIndependent);
    let boot = Node::start_on(&boot_host, &work.path().join("boot"), transport_args);
    let address = if transport_args.contains(&"--no-quic") {
        boot.p2p_address()
    } else {
        boot.quic_address()
    };
    let name = "boot.pyrsia.test";
    let dns_log = work.path().join("dnsmasq.log");
    lab.serve_txt(
        &dns_host,
        &[(&format!("_dnsaddr.{name}"), &format!("dnsaddr={address}"))],
        &dns_log,
    );
    let bootstrap = format!("/dnsaddr/{name}/p2p/{}", boot.peer_id());
    let cone = start_joined(
        &cone_host,
        &work.path().join("cone"),
        &bootstrap,
        &[transport_args],
    );
    let logs = || {
        format!(
            "{}\n{}",
            logs_of(&[&boot, &cone]),
            std::fs::read_to_string(&dns_log).unwrap_or_default()
        )
    };
    wait_until(
        "the node joins through the /dnsaddr name",
        Duration::from_secs(30),
        &logs,
        || cone.connected_peers().contains(&boot.peer_id()),
    );
    let queried = std::fs::read_to_string(&dns_log).unwrap_or_default();
    assert!(
        queried.contains(&format!("query[TXT] _dnsaddr.{name}")),
        "the node did not ask the DNS server for the TXT record\n{queried}"
    );
    let wire = if transport_args.contains(&"--no-quic") {
        "/tcp/"
    } else {
        "/quic-v1"
    };
    // The node reports the address it dialled (the name); the bootstrap node, where the
    // connection came from, over which transport.
    let addresses = boot.peer_addresses(&cone.peer_id());
    assert!(
        addresses.iter().any(|a| a.contains(wire)),
        "connected over {addresses:?}"
    );
}

#[test]
fn over_tcp_a_node_joins_through_a_dnsaddr_name() {
    a_node_joins_through_a_dnsaddr_name(&["--no-quic"]);
}

#[test]
fn over_quic_a_node_joins_through_a_dnsaddr_name() {
    a_node_joins_through_a_dnsaddr_name(QUIC_FIRST);
}

/// Starts a node on `host` that joins through `bootstrap`, with the arguments in `args`.
fn start_joined(
    host: &pyrsia_tests::netns::Host,
    dir: &std::path::Path,
    bootstrap: &str,
    args: &[&[&str]],
) -> Node {
    let mut all = vec!["--peer", bootstrap];
    all.extend(args.iter().flat_map(|a| a.iter().copied()));
    Node::start_on(host, dir, &all)
}

/// A relay on the public segment; a node behind each of two endpoint-independent NATs and
/// one behind a symmetric NAT, all private and holding a reservation on the relay. The
/// second cone node and the symmetric one are told only the first cone node's circuit
/// address: both reach it through the relay, the cone one then directly by hole punching
/// (DCUtR), over which the layer of an image both cone nodes pull crosses, the symmetric one
/// never (its router picks a new port for every flow).
fn private_nodes_meet_through_a_relay_and_punch_holes_where_the_nat_allows(
    transport_args: &[&str],
) {
    let work = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let relay_host = lab.public_host("relay", 10);
    let registry_host = lab.public_host("reg", 20);
    let first_host = lab.private_host("cone", Nat::EndpointIndependent);
    let second_host = lab.private_host("cone2", Nat::EndpointIndependent);
    let symmetric_host = lab.private_host("sym", Nat::Symmetric);
    let registry =
        pyrsia_tests::registry::Registry::start_in(&work.path().join("registry"), &registry_host);
    let image = pyrsia_tests::image::push_large_image(work.path(), &registry.authority(), 8 * MIB);
    let upstream = registry.lab_url(&registry_host);

    // The relay fetches nothing for anyone: blob bytes cross only between the private nodes.
    let (relay, bootstrap) = start_named_relay(
        &mut lab,
        &relay_host,
        &work.path().join("relay"),
        transport_args,
        &["--offline"],
        "relay.pyrsia.test",
    );
    let start = |host, name: &str, extra: &[&str]| {
        start_joined(
            host,
            &work.path().join(name),
            &bootstrap,
            &[transport_args, &["--upstream", upstream.as_str()], extra],
        )
    };
    let first = start(&first_host, "cone", &[]);
    let logs = || logs_of(&[&relay, &first]);
    let circuit = circuit_address(&first, &relay, &logs);
    assert!(
        circuit.starts_with(&format!("/ip4/{}/", relay_host.ip))
            || circuit.starts_with("/dns4/relay.pyrsia.test/"),
        "{circuit}"
    );
    let line = status_line(&first);
    assert!(
        line.contains("reached through relay") && line.contains(&relay.peer_id()),
        "{line}"
    );

    let second = start(&second_host, "cone2", &["--peer", &circuit]);
    let symmetric = start(&symmetric_host, "sym", &["--peer", &circuit]);
    let logs = || logs_of(&[&relay, &first, &second, &symmetric]);
    let first_id = first.peer_id();

    // Behind two endpoint-independent NATs: relayed first, then a direct connection to the
    // first node's router, and the relayed connection closed.
    let first_router = first_host.public_ip.as_deref().unwrap();
    let direct_only = |entry: &serde_json::Value| {
        entry["addresses"].as_array().is_some_and(|addresses| {
            addresses.iter().all(|a| {
                a.as_str()
                    .is_some_and(|a| a.starts_with(&format!("/ip4/{first_router}/")))
            })
        })
    };
    wait_until(
        "the two cone nodes hole-punch a direct connection and close the relayed one",
        Duration::from_secs(60),
        &logs,
        || {
            let entry = peer_entry(&second, &first_id);
            entry["path"] == "hole-punched" && direct_only(&entry)
        },
    );

    // Blob bytes cross the hole-punched connection: both cone nodes pull the image, and
    // whichever fetched the layer (from the upstream, or for the network) served it to the
    // other over that connection, which stayed direct.
    for (node, name) in [(&first, "copy-first"), (&second, "copy-second")] {
        let out = pyrsia_tests::clients::skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join(name),
        );
        assert!(out.status.success(), "{out:?}\n{}", logs());
    }
    let entry = peer_entry(&second, &first_id);
    let exchanged =
        entry["bytes_sent"].as_u64().unwrap_or(0) + entry["bytes_received"].as_u64().unwrap_or(0);
    assert!(
        exchanged >= image.layers[0].blob.size,
        "{exchanged} bytes between the cone nodes\n{entry}\n{}",
        logs()
    );
    assert!(
        entry["path"] == "hole-punched" && direct_only(&entry),
        "{entry}"
    );

    // Behind the symmetric NAT: the hole punch fails and the path stays relayed.
    wait_for_failed_hole_punch(&symmetric, &first, &logs);
    let entry = peer_entry(&symmetric, &first_id);
    assert_ne!(entry["path"], "hole-punched", "{entry}");
    assert_ne!(entry["path"], "direct", "{entry}");
}

#[test]
fn over_tcp_private_nodes_meet_through_a_relay_and_punch_holes_where_the_nat_allows() {
    private_nodes_meet_through_a_relay_and_punch_holes_where_the_nat_allows(&["--no-quic"]);
}

#[test]
fn over_quic_private_nodes_meet_through_a_relay_and_punch_holes_where_the_nat_allows() {
    private_nodes_meet_through_a_relay_and_punch_holes_where_the_nat_allows(QUIC_FIRST);
}

/// The lab of the bridge tests: a relay host and a registry (with a fresh image of `size`) on
/// the public segment, one host behind an endpoint-independent NAT and one behind a symmetric
/// NAT. Fields drop in order: the registry, then the namespaces and the work directory.
struct TwoNats {
    registry: pyrsia_tests::registry::Registry,
    image: pyrsia_tests::image::PushedImage,
    upstream: String,
    relay_host: pyrsia_tests::netns::Host,
    cone_host: pyrsia_tests::netns::Host,
    symmetric_host: pyrsia_tests::netns::Host,
    _lab: Lab,
    work: tempfile::TempDir,
}

impl TwoNats {
    fn new(size: u64) -> TwoNats {
        let work = tempfile::tempdir().unwrap();
        let mut lab = Lab::new();
        let relay_host = lab.public_host("relay", 10);
        let registry_host = lab.public_host("reg", 20);
        let cone_host = lab.private_host("cone", Nat::EndpointIndependent);
        let symmetric_host = lab.private_host("sym", Nat::Symmetric);
        let registry = pyrsia_tests::registry::Registry::start_in(
            &work.path().join("registry"),
            &registry_host,
        );
        let image = pyrsia_tests::image::push_large_image(work.path(), &registry.authority(), size);
        let upstream = registry.lab_url(&registry_host);
        TwoNats {
            registry,
            image,
            upstream,
            relay_host,
            cone_host,
            symmetric_host,
            _lab: lab,
            work,
        }
    }

    /// Where node `name` of this lab keeps its data and log.
    fn dir(&self, name: &str) -> std::path::PathBuf {
        self.work.path().join(name)
    }
}

/// A relay and a registry on the public segment, a cone node that holds a 64 MiB image
/// pulled through it, and a node behind the symmetric NAT that reaches the cone node only
/// through the relay (the hole punch failed). The relay fetches nothing for anyone
/// (`--offline`) unless `relay_bridges`. Fields drop in order: the nodes, then the lab.
struct RelayedPair {
    symmetric: Node,
    cone: Node,
    relay: Node,
    lab: TwoNats,
}

impl RelayedPair {
    fn start(transport_args: &[&str], relay_bridges: bool) -> RelayedPair {
        let lab = TwoNats::new(64 * MIB);
        let (registry, image) = (&lab.registry, &lab.image);
        let from_upstream = ["--upstream", lab.upstream.as_str()];
        let relay_role: &[&str] = if relay_bridges {
            &from_upstream
        } else {
            &["--offline"]
        };
        let relay = start_relay(
            &lab.relay_host,
            &lab.dir("relay"),
            transport_args,
            relay_role,
        );
        let bootstrap = relay.p2p_address();
        let start = |host, name: &str, extra: &[&str]| {
            let args = [transport_args, &from_upstream[..], extra];
            start_joined(host, &lab.dir(name), &bootstrap, &args)
        };
        // The cone node pulls the image first, alone (so that it, not the relay, holds it),
        // then joins through the relay.
        let mut alone = Node::start_on(
            &lab.cone_host,
            &lab.dir("cone"),
            &[transport_args, &from_upstream[..]].concat(),
        );
        let out = pyrsia_tests::clients::skopeo_copy(
            &alone.authority(),
            &image.reference,
            &lab.dir("copy-cone"),
        );
        assert!(out.status.success(), "{out:?}\n{}", alone.log());
        assert_eq!(
            registry.blob_gets(&image.layers[0].blob.digest.to_string()),
            1
        );
        assert!(alone.terminate(), "{}", alone.log());
        let cone = start(&lab.cone_host, "cone", &[]);
        let logs = || logs_of(&[&relay, &cone]);
        let circuit = circuit_address(&cone, &relay, &logs);

        let symmetric = start(&lab.symmetric_host, "sym", &["--peer", &circuit]);
        let logs = || logs_of(&[&relay, &cone, &symmetric]);
        wait_for_failed_hole_punch(&symmetric, &cone, &logs);
        assert_eq!(peer_entry(&symmetric, &cone.peer_id())["path"], "relayed");
        assert_eq!(
            peer_entry(&symmetric, &cone.peer_id())["relay"],
            relay.peer_id().as_str()
        );
        RelayedPair {
            symmetric,
            cone,
            relay,
            lab,
        }
    }

    fn logs(&self) -> String {
        logs_of(&[&self.relay, &self.cone, &self.symmetric])
    }

    fn layer(&self) -> String {
        self.lab.image.layers[0].blob.digest.to_string()
    }

    /// The symmetric node pulls the image; returns the bytes its pull moved over the
    /// relay's link.
    fn symmetric_pulls(&self) -> u64 {
        let before = self.lab.relay_host.lab_link_bytes();
        let out = pyrsia_tests::clients::skopeo_copy(
            &self.symmetric.authority(),
            &self.lab.image.reference,
            &self.lab.dir("copy-sym"),
        );
        assert!(out.status.success(), "{out:?}\n{}", self.logs());
        let moved = self.lab.relay_host.lab_link_bytes() - before;
        let layer = self.layer();
        let pulled = std::fs::read(
            self.lab
                .dir("copy-sym")
                .join(layer.trim_start_matches("sha256:")),
        )
        .expect("the layer in skopeo's copy");
        assert_eq!(pulled.len() as u64, self.lab.image.layers[0].blob.size);
        assert_eq!(
            pyrsia_core::digest::Digest::sha256(&pulled).to_string(),
            layer
        );
        moved
    }

    /// Bytes the cone node sent the symmetric one (all over the relay's circuit).
    fn cone_sent_symmetric(&self) -> u64 {
        peer_entry(&self.cone, &self.symmetric.peer_id())["bytes_sent"]
            .as_u64()
            .unwrap_or(0)
    }
}

const MIB: u64 = 1 << 20;

/// Item 5: a node behind the symmetric NAT, reached from a cone node only through the relay,
/// pulls a 64 MiB image the cone node holds. No blob byte crosses the relay: the cone node
/// serves it none, the relay's link carries under 1 MiB, and with a relay that fetches
/// nothing for anyone (`--offline`, so it cannot bridge) the symmetric node fetches the
/// layer from the upstream itself.
fn no_blob_bytes_cross_a_relay(transport_args: &[&str]) {
    let pair = RelayedPair::start(transport_args, false);
    let relayed = pair.symmetric_pulls();
    assert!(
        relayed < MIB,
        "{relayed} bytes crossed the relay's link during a 64 MiB pull"
    );
    let served = pair.cone_sent_symmetric();
    assert!(
        served < MIB,
        "the cone node sent {served} bytes over the relay"
    );
    assert_eq!(
        pair.lab.registry.blob_gets(&pair.layer()),
        2,
        "{}",
        pair.logs()
    );
}

/// Item 6: the same pair, with a relay that fetches for its clients: the symmetric node
/// reaches the holder only through the relay, so it asks the relay to bridge the blob
/// (core's `reach`). The relay fetches it from the cone node over its direct connection,
/// checks and stores it, and serves it on over its direct connection to the symmetric node:
/// the upstream still sees the layer once, and still no byte crosses the circuit.
fn a_relay_bridges_what_a_relay_only_peer_holds(transport_args: &[&str]) {
    let pair = RelayedPair::start(transport_args, true);
    let size = pair.lab.image.layers[0].blob.size;
    let moved = pair.symmetric_pulls();
    assert_eq!(
        pair.lab.registry.blob_gets(&pair.layer()),
        1,
        "the upstream saw the layer again\n{}",
        pair.logs()
    );
    let served = pair.cone_sent_symmetric();
    assert!(
        served < MIB,
        "the cone node sent {served} bytes over the relay"
    );
    // The relay took the layer from the cone node and passed it on, as a peer: twice the
    // layer crossed its link, and the symmetric node received it from the relay.
    assert!(moved >= 2 * size, "{moved} bytes on the relay's link");
    let from_relay = peer_entry(&pair.symmetric, &pair.relay.peer_id())["bytes_received"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        from_relay >= size,
        "the symmetric node received {from_relay} bytes from the relay\n{}",
        pair.logs()
    );
    assert!(
        pair.relay
            .wait_stored(&pair.lab.image.layers[0].blob.digest),
        "the relay keeps what it bridged, checked"
    );
    assert!(
        pair.symmetric.log().contains("that relay bridges it"),
        "{}",
        pair.logs()
    );
}

/// Item 6, the claim: a fresh image, and the node behind the cone NAT is the one nearest
/// its layer (its node key chosen so), so the network asks it to fetch the layer from the
/// upstream. The node behind the symmetric NAT reaches it only through the relay: it asks the
/// relay to bridge, the relay asks the claimant over its direct connection, the claimant
/// fetches from the upstream once, and the layer reaches the symmetric node through the
/// relay. The cone node's own pull afterwards comes from its store: one upstream GET in all.
fn a_private_claimant_fetches_once_for_a_node_behind_a_symmetric_nat(transport_args: &[&str]) {
    let lab = TwoNats::new(16 * MIB);
    let (registry, image) = (&lab.registry, &lab.image);
    let layer = image.layers[0].blob.digest;
    let from_upstream = ["--upstream", lab.upstream.as_str()];

    let relay_id = plant_node_key(&lab.dir("relay"), "relay", |_| true);
    let sym_id = plant_node_key(&lab.dir("sym"), "sym", |_| true);
    let cone_id = plant_node_key(&lab.dir("cone"), "cone", |id| {
        let ids = [id.to_string(), relay_id.clone(), sym_id.clone()];
        pyrsia_tests::raw_peer::claimant_order(&layer, &ids)[0] == 0
    });
    let relay = start_relay(
        &lab.relay_host,
        &lab.dir("relay"),
        transport_args,
        &from_upstream,
    );
    assert_eq!(relay.peer_id(), relay_id);
    let bootstrap = relay.p2p_address();
    let start = |host, name: &str, extra: &[&str]| {
        let args = [transport_args, &from_upstream[..], extra];
        start_joined(host, &lab.dir(name), &bootstrap, &args)
    };
    let cone = start(&lab.cone_host, "cone", &[]);
    assert_eq!(cone.peer_id(), cone_id);
    let logs = || logs_of(&[&relay, &cone]);
    let circuit = circuit_address(&cone, &relay, &logs);
    let symmetric = start(&lab.symmetric_host, "sym", &["--peer", &circuit]);
    let logs = || logs_of(&[&relay, &cone, &symmetric]);
    wait_for_failed_hole_punch(&symmetric, &cone, &logs);
    assert_eq!(peer_entry(&symmetric, &cone_id)["path"], "relayed");

    let out = pyrsia_tests::clients::skopeo_copy(
        &symmetric.authority(),
        &image.reference,
        &lab.dir("copy-sym"),
    );
    assert!(out.status.success(), "{out:?}\n{}", logs());
    assert!(
        symmetric
            .log()
            .contains("fetches this blob for the network: that relay bridges it"),
        "{}",
        logs()
    );
    assert_eq!(registry.blob_gets(&layer.to_string()), 1, "{}", logs());
    assert!(cone.wait_stored(&layer), "the claimant fetched and kept it");
    assert!(relay.wait_stored(&layer), "the bridge checked and kept it");
    let served = peer_entry(&cone, &symmetric.peer_id())["bytes_sent"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        served < MIB,
        "the cone node sent {served} bytes over the relay"
    );

    let out = pyrsia_tests::clients::skopeo_copy(
        &cone.authority(),
        &image.reference,
        &lab.dir("copy-cone"),
    );
    assert!(out.status.success(), "{out:?}\n{}", logs());
    assert_eq!(registry.blob_gets(&layer.to_string()), 1, "{}", logs());
}

#[test]
fn over_tcp_a_private_claimant_fetches_once_for_a_node_behind_a_symmetric_nat() {
    a_private_claimant_fetches_once_for_a_node_behind_a_symmetric_nat(&["--no-quic"]);
}

#[test]
fn over_quic_a_private_claimant_fetches_once_for_a_node_behind_a_symmetric_nat() {
    a_private_claimant_fetches_once_for_a_node_behind_a_symmetric_nat(QUIC_FIRST);
}

#[test]
fn over_tcp_a_relay_bridges_what_a_relay_only_peer_holds() {
    a_relay_bridges_what_a_relay_only_peer_holds(&["--no-quic"]);
}

#[test]
fn over_quic_a_relay_bridges_what_a_relay_only_peer_holds() {
    a_relay_bridges_what_a_relay_only_peer_holds(QUIC_FIRST);
}

#[test]
fn over_tcp_no_blob_bytes_cross_a_relay() {
    no_blob_bytes_cross_a_relay(&["--no-quic"]);
}

#[test]
fn over_quic_no_blob_bytes_cross_a_relay() {
    no_blob_bytes_cross_a_relay(QUIC_FIRST);
}
