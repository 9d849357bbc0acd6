//! A peer that comes back as a new process while its old one still holds connections open (a
//! machine that hung: SIGSTOP keeps its sockets open and silent) is told apart by the boot id
//! in its identify agent string: the node closes the old process's connection as soon as the
//! new one identifies, although the new process listens on another port (the rule for peers
//! without boot ids, same remote address, would not catch it). Pieces then go only to the live
//! process: a pull that only that peer can serve completes without a stalled request.

use std::time::{Duration, Instant};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;

/// The port in a `/ip4/…/tcp/<port>/…` or `/ip4/…/udp/<port>/…` address.
fn port_of(address: &str) -> Option<u16> {
    let parts: Vec<&str> = address.split('/').collect();
    parts
        .windows(2)
        .find(|w| w[0] == "tcp" || w[0] == "udp")
        .and_then(|w| w[1].parse().ok())
}

#[test]
fn a_peer_back_as_a_new_process_on_another_port_replaces_its_frozen_one_at_once() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let a_address = a.p2p_address();
    let old = Node::start(
        &work.path().join("old"),
        &["--upstream", &registry.url(), "--peer", &a_address],
    );
    wait_mesh(&[&a, &old]);
    let peer = old.peer_id();
    let old_port = old.p2p_port.unwrap();
    assert!(
        a.peer_addresses(&peer)
            .iter()
            .all(|address| port_of(address) == Some(old_port)),
        "A reaches the peer on its first process's port: {:?}",
        a.peer_addresses(&peer)
    );

    // The peer's machine hangs: its process holds its connections open and answers nothing.
    old.signal("STOP");
    // The peer comes back as a new process with the same key, on another port.
    let new_data = work.path().join("new").join("data");
    std::fs::create_dir_all(&new_data).unwrap();
    std::fs::copy(old.data_dir.join("node.key"), new_data.join("node.key")).unwrap();
    let restarted = Node::start(
        &work.path().join("new"),
        &["--upstream", &registry.url(), "--peer", &a_address],
    );
    assert_eq!(restarted.peer_id(), peer, "the same key, the same peer id");
    let new_port = restarted.p2p_port.unwrap();
    assert_ne!(new_port, old_port);

    // A closes the frozen process's connection once the new one identifies: within seconds,
    // not at a timeout, and keeps the new one.
    let started = Instant::now();
    loop {
        let addresses = a.peer_addresses(&peer);
        let ports: Vec<Option<u16>> = addresses.iter().map(|a| port_of(a)).collect();
        if !ports.is_empty() && ports.iter().all(|p| *p != Some(old_port)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "A still holds the frozen process's connection: {addresses:?}\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        a.log()
            .contains("closing a connection of the peer's process that restarted since"),
        "{}",
        a.log()
    );

    // Only the live process holds the image; with the upstream gone, a pull through A must
    // take every piece from it, and none is asked of the frozen process.
    let out = skopeo_copy(
        &restarted.authority(),
        &image.reference,
        &work.path().join("copy-new"),
    );
    assert_succeeded(&out, "the new process pulls", &restarted.log());
    assert!(restarted.wait_stored(&image.layers[0].blob.digest));
    registry.stop();
    // The new process announces what it stored at its event loop's next tick (every 200 ms);
    // until then A's lookup for the manifest finds no one and A answers 503 (a race CI once
    // lost). Wait for A to find it on its peers, as p2p_content does.
    let manifest = format!("{}/v2/library/large/manifests/{}", a.url(), image.digest);
    wait_until(
        "A finds the manifest on the new process",
        Duration::from_secs(10),
        &|| a.log(),
        || pyrsia_tests::http::get(&manifest).is_ok_and(|r| r.status == 200),
    );
    let by_digest = format!("library/large@{}", image.digest);
    let pulled = Instant::now();
    let out = skopeo_copy(&a.authority(), &by_digest, &work.path().join("copy-a"));
    assert_succeeded(&out, "A pulls from the peer's new process", &a.log());
    assert!(a.wait_stored(&image.layers[0].blob.digest));
    assert!(
        pulled.elapsed() < Duration::from_secs(5),
        "no request waited for the frozen process: {:?}\n{}",
        pulled.elapsed(),
        a.log()
    );
    assert!(
        !a.log().contains("stalled"),
        "no request went to the frozen process\n{}",
        a.log()
    );
    // The live connection stayed up through all of it.
    assert!(a.connected_peers().contains(&peer));
    old.signal("KILL");
}
