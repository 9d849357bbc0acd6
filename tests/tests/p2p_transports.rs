//! QUIC next to TCP (issue 19, item 2; the data path of issue 18, item 4), between node
//! processes on 127.0.0.1: a node listens on TCP and on QUIC at the same port number; with
//! `--quic-on-lan` it dials a bootstrap peer given by its TCP address over QUIC, and by
//! default a peer on its own network (loopback here) over TCP; a node started with
//! `--no-quic` still exchanges blobs with it over TCP. Blobs cross both transports verified, with the
//! upstream down. A raw libp2p client over QUIC gets pieces like one over TCP, and its
//! malformed frames get it blocked just the same; a `--no-quic` node takes no QUIC
//! connection at all. A bootstrap peer can be named by DNS (`/dns4/localhost/...`: the
//! system resolver, no query leaves the machine), over either transport. Over TCP, nodes
//! secure their connections with TLS and still connect to a peer that speaks only noise.

use std::process::Command;
use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::raw_peer::{RawPeer, Security};
use pyrsia_tests::registry::Registry;

const SIZE: u64 = 8 << 20;

/// GETs the blob through `node` into `dir` and returns the SHA-256 of what came.
fn pull_blob(node: &Node, digest: &Digest, dir: &std::path::Path) -> Digest {
    let body = dir.join(format!("blob-{}", node.port));
    let out = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&body)
        .arg(format!("{}/v2/library/large/blobs/{digest}", node.url()))
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET the blob failed\n{}", node.log());
    Digest::sha256(&std::fs::read(&body).expect("body"))
}

/// What one QUIC socket asks for (`pyrsia-net`'s `udp_buffers::QUIC_SOCKET_BUFFER`).
const QUIC_SOCKET_BUFFER: u64 = 4 << 20;

/// The receive and send buffers, as the kernel reports them (`ss -m`: twice what was granted),
/// of process `pid`'s UDP socket bound to `port`, if it has one.
fn udp_socket_buffers(pid: u32, port: u16) -> Option<(u64, u64)> {
    let out = Command::new("ss")
        .args(["-H", "-u", "-a", "-n", "-m", "-p"])
        .arg(format!("sport = :{port}"))
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let owner = format!("pid={pid},");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if !line.contains(&owner) {
            continue;
        }
        // The socket's memory is on the line after it: skmem:(r0,rb…,t0,tb…,…).
        let memory = lines.next()?;
        let field = |name: &str| {
            memory
                .split(['(', ',', ')'])
                .find_map(|f| f.trim().strip_prefix(name)?.parse::<u64>().ok())
        };
        return Some((field("rb")?, field("tb")?));
    }
    None
}

#[test]
fn nodes_speak_quic_beyond_the_lan_tcp_on_it_and_with_peers_without_quic() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), SIZE);
    let (digest, size) = (image.layers[0].blob.digest, image.layers[0].blob.size);

    // A fetches the blob from the upstream alone, then the upstream goes away.
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    assert_eq!(pull_blob(&a, &digest, work.path()), digest);
    assert!(a.wait_stored(&digest));
    registry.stop();
    let a_id = a.peer_id();

    // B, told to dial peers on its own network over QUIC first too, is given A's TCP
    // address and connects over QUIC; C speaks TCP only; D (the defaults) dials a peer on
    // loopback over TCP first, and stays there.
    let b = Node::start(
        &work.path().join("b"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &a.p2p_address(),
            "--quic-on-lan",
        ],
    );
    let d = Node::start(
        &work.path().join("d"),
        &["--upstream", &registry.url(), "--peer", &a.p2p_address()],
    );
    let c = Node::start(
        &work.path().join("c"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &a.p2p_address(),
            "--no-quic",
        ],
    );
    b.wait_connected(&a_id);
    c.wait_connected(&a_id);
    d.wait_connected(&a_id);

    // A's QUIC socket got buffers for fast and long links (the tests run as root, which may
    // go past the system's cap); C, without QUIC, has no UDP socket on its port.
    let (receive, send) = udp_socket_buffers(a.pid(), a.p2p_port.expect("P2P on"))
        .unwrap_or_else(|| panic!("no QUIC socket of A on its port\n{}", a.log()));
    assert!(
        receive >= 2 * QUIC_SOCKET_BUFFER && send >= 2 * QUIC_SOCKET_BUFFER,
        "A's QUIC socket: receive {receive}, send {send} bytes as the kernel reports them\n{}",
        a.log()
    );
    assert!(a.log().contains("QUIC socket buffers sized"), "{}", a.log());
    assert_eq!(
        udp_socket_buffers(c.pid(), c.p2p_port.expect("P2P on")),
        None
    );
    let b_to_a = b.peer_addresses(&a_id);
    assert!(
        !b_to_a.is_empty()
            && b_to_a
                .iter()
                .all(|x| x.contains("/udp/") && x.contains("/quic-v1")),
        "B reaches A over QUIC only: {b_to_a:?}"
    );
    let c_to_a = c.peer_addresses(&a_id);
    assert!(
        !c_to_a.is_empty() && c_to_a.iter().all(|x| x.contains("/tcp/")),
        "C reaches A over TCP: {c_to_a:?}"
    );
    // D dialled TCP first and, connected within the head start, never dials QUIC; nor does
    // a later dial (Kademlia's), since A's QUIC address is left out of what D keeps from
    // identify. Two seconds give a stray QUIC connection time to show.
    std::thread::sleep(Duration::from_secs(2));
    let d_to_a = d.peer_addresses(&a_id);
    assert!(
        !d_to_a.is_empty() && d_to_a.iter().all(|x| x.contains("/tcp/")),
        "D reaches A on loopback over TCP: {d_to_a:?}\n{}",
        d.log()
    );

    // All get the blob from their peers, verified, the upstream down.
    for node in [&b, &c, &d] {
        wait_until(
            "the node finds the blob on its peers",
            Duration::from_secs(20),
            &|| node.log(),
            || {
                get(&format!("{}/v2/library/large/blobs/{digest}", node.url()))
                    .is_ok_and(|r| r.status == 200)
            },
        );
        assert_eq!(pull_blob(node, &digest, work.path()), digest);
        assert!(node.wait_stored(&digest));
        assert!(
            node.metric("peer_bytes") >= size,
            "the blob came from peers\n{}",
            node.log()
        );
    }
    assert_eq!(registry.blob_gets(&digest.to_string()), 1);

    // Nodes of this build secure TCP with TLS (AES-GCM where the CPU has it), never noise.
    for (name, node) in [("C", &c), ("D", &d)] {
        let (tls, noise) = node.secured_connections();
        assert!(
            tls >= 1 && noise == 0,
            "{name}'s TCP connections: {tls} TLS, {noise} noise"
        );
    }

    // A raw client over QUIC is served a piece, byte for byte what the blob holds.
    let piece = SyncRequest::Piece {
        digest: *digest.as_bytes(),
        offset: 0,
        len: 1 << 20,
        fetch: None,
        insist: true,
    };
    let answers = RawPeer::new().ask(
        &a.quic_address(),
        vec![piece.clone()],
        Duration::from_secs(10),
    );
    let Some(Ok(SyncResponse::Piece { total, bytes })) = answers.first() else {
        panic!("no piece over QUIC: {answers:?}\n{}", a.log());
    };
    assert_eq!(*total, size);
    let blob = std::fs::read(work.path().join(format!("blob-{}", a.port))).unwrap();
    assert!(bytes[..] == blob[..bytes.len()] && bytes.len() == 1 << 20);

    // Over TCP, a peer that speaks only noise (a node of a build before TLS was offered)
    // and one that speaks only TLS are each served the same piece.
    let (tls_before, noise_before) = a.secured_connections();
    for security in [Security::Noise, Security::Tls] {
        let answers = RawPeer::new().securing_with(security).ask(
            &a.p2p_address(),
            vec![piece.clone()],
            Duration::from_secs(10),
        );
        assert!(
            matches!(answers.first(), Some(Ok(SyncResponse::Piece { bytes: b, .. })) if b[..] == bytes[..]),
            "a peer speaking {security:?} only: {answers:?}\n{}",
            a.log()
        );
    }
    let (tls_after, noise_after) = a.secured_connections();
    assert!(
        tls_after > tls_before && noise_after == noise_before + 1,
        "A's TCP connections secured: TLS {tls_before} to {tls_after}, noise {noise_before} to {noise_after}"
    );

    // A node started with --no-quic takes no QUIC connection.
    let answers = RawPeer::new().ask(&c.quic_address(), vec![piece], Duration::from_secs(5));
    assert!(
        matches!(answers.first(), Some(Err(_))),
        "C answered over QUIC: {answers:?}"
    );

    // Malformed frames over QUIC: the sender is blocked, as over TCP.
    let junk = RawPeer::new();
    let frames = pyrsia_tests::raw_peer::malformed_frames();
    let _ = junk.send_raw(&a.quic_address(), frames, Duration::from_secs(2));
    wait_until(
        "the sender of malformed frames over QUIC is blocked",
        Duration::from_secs(10),
        &|| a.log(),
        || a.blocked_peers().contains(&junk.peer_id()),
    );
    for honest in [&b, &c] {
        assert!(!a.blocked_peers().contains(&honest.peer_id()));
    }
}

#[test]
fn a_bootstrap_peer_named_by_dns_is_reached_over_quic_and_over_tcp() {
    let work = tempfile::tempdir().unwrap();
    let a = Node::start(&work.path().join("a"), &[]);
    let a_id = a.peer_id();
    let by_name = a
        .p2p_address()
        .replacen("/ip4/127.0.0.1/", "/dns4/localhost/", 1);
    assert!(by_name.starts_with("/dns4/localhost/tcp/"), "{by_name}");
    let b = Node::start(&work.path().join("b"), &["--peer", &by_name]);
    let c = Node::start(&work.path().join("c"), &["--peer", &by_name, "--no-quic"]);
    b.wait_connected(&a_id);
    c.wait_connected(&a_id);
    let (b_to_a, c_to_a) = (b.peer_addresses(&a_id), c.peer_addresses(&a_id));
    assert!(
        !b_to_a.is_empty() && b_to_a.iter().all(|x| x.contains("/quic-v1")),
        "B reached A by name over QUIC: {b_to_a:?}\n{}",
        b.log()
    );
    assert!(
        !c_to_a.is_empty() && c_to_a.iter().all(|x| x.contains("/tcp/")),
        "C reached A by name over TCP: {c_to_a:?}\n{}",
        c.log()
    );
}
