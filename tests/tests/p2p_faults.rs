//! Faulty peers cost time, not the pull: a provider frozen mid-flight (SIGSTOP: its
//! connections stay open and silent), a provider killed (SIGKILL) while another node pulls
//! from them, and a provider whose copy rotted on disk, caught piece by piece against the piece
//! root the log committed. The pull completes from the remaining peer within bounded time.

use std::time::{Duration, Instant};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::registry::Registry;

fn signal(node: &Node, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_frozen_and_a_killed_provider_do_not_fail_the_pull() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 24 << 20);
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let b = Node::start(
        &work.path().join("b"),
        &["--upstream", &registry.url(), "--peer", &a.p2p_address()],
    );
    let mut providers = [a, b];
    wait_mesh(&[&providers[0], &providers[1]]);
    for node in &providers {
        let out = skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join("copy"),
        );
        assert_succeeded(&out, "providers pull", &node.log());
        assert!(node.wait_stored(&image.layers[0].blob.digest));
    }
    // Only the providers can serve it now.
    registry.stop();
    let peers: Vec<String> = providers.iter().map(Node::p2p_address).collect();
    let c = Node::start(
        &work.path().join("c"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &peers[0],
            "--peer",
            &peers[1],
        ],
    );
    wait_mesh(&[&providers[0], &providers[1], &c]);

    // A freezes: its connections stay open, its answers never come.
    signal(&providers[0], "-STOP");
    let started = Instant::now();
    // By digest: the upstream is gone, and C never observed the tag.
    let by_digest = format!("library/large@{}", image.digest);
    let out = skopeo_copy(&c.authority(), &by_digest, &work.path().join("copy-c"));
    assert_succeeded(&out, "pull through C with a frozen provider", &c.log());
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        c.log().contains("stalled"),
        "the frozen peer was asked (what it holds, or for a piece) and dropped\n{}",
        c.log()
    );
    signal(&providers[0], "-CONT");

    // D pulls while B is killed: A (thawed) finishes it.
    let d = Node::start(
        &work.path().join("d"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &peers[0],
            "--peer",
            &peers[1],
        ],
    );
    wait_mesh(&[&providers[0], &providers[1], &d]);
    let started = Instant::now();
    let (authority, dest, reference) =
        (d.authority(), work.path().join("copy-d"), by_digest.clone());
    let pull = std::thread::spawn(move || skopeo_copy(&authority, &reference, &dest));
    std::thread::sleep(Duration::from_millis(150));
    providers[1].kill();
    assert_succeeded(
        &pull.join().unwrap(),
        "pull through D with a killed provider",
        &d.log(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "took {:?}",
        started.elapsed()
    );
    assert!(d.wait_stored(&image.layers[0].blob.digest));
}

#[test]
fn a_provider_with_rotten_bytes_is_caught_by_the_committed_piece_root() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), 12 << 20);
    let layer = image.layers[0].blob.digest;
    // A founds the network and commits the image, piece roots included.
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let out = skopeo_copy(
        &a.authority(),
        &image.reference,
        &work.path().join("copy-a"),
    );
    assert_succeeded(&out, "A pulls", &a.log());
    a.wait_committed("docker.io/library/large", &image.digest)
        .expect("A committed it");
    let genesis = work.path().join("genesis.bin");
    a.save_genesis(&genesis);
    let upstream = registry.url();
    let follower = |name: &str, peers: &[String]| {
        let mut args = vec![
            "--upstream".to_string(),
            upstream.clone(),
            "--genesis".to_string(),
            genesis.display().to_string(),
        ];
        for peer in peers {
            args.extend(["--peer".to_string(), peer.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Node::start(&work.path().join(name), &args)
    };
    // B follows A's log and holds the blob too, until its copy rots on disk (same size).
    let b = follower("b", &[a.p2p_address()]);
    let by_digest = format!("library/large@{}", image.digest);
    let out = skopeo_copy(&b.authority(), &by_digest, &work.path().join("copy-b"));
    assert_succeeded(&out, "B pulls", &b.log());
    assert!(b.wait_stored(&layer));
    let path = b.data_dir.join("blobs/sha256").join(layer.hex().as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    for piece in bytes.chunks_mut(1 << 20) {
        piece[7] ^= 0x40;
    }
    std::fs::write(&path, &bytes).unwrap();
    registry.stop();

    // C follows the log, so it knows the committed piece root, and asks both.
    let c = follower("c", &[a.p2p_address(), b.p2p_address()]);
    wait_mesh(&[&a, &b, &c]);
    c.wait_committed("docker.io/library/large", &image.digest)
        .expect("C replicated the commit");
    // By tag: C never observed it and the upstream is gone; the log's observation resolves it.
    let out = skopeo_copy(
        &c.authority(),
        &image.reference,
        &work.path().join("copy-c"),
    );
    assert_succeeded(&out, "C pulls with a rotten provider around", &c.log());
    assert!(
        c.log().contains("tag resolved from the transparency log"),
        "{}",
        c.log()
    );
    assert!(c.wait_stored(&layer));
    let served = std::fs::read(c.data_dir.join("blobs/sha256").join(layer.hex().as_str())).unwrap();
    assert_eq!(pyrsia_core::digest::Digest::sha256(&served), layer);
    let log = c.log();
    assert!(
        log.contains("peer misbehaved")
            && log.contains(&b.p2p_address().rsplit('/').next().unwrap().to_string()),
        "B was caught and penalised\n{log}"
    );
}
