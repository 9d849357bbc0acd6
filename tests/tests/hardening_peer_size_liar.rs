//! Issue 14, item 6: an honest peer is never blamed for a liar's claim. A stranger announces
//! an image's layers on the DHT and answers every piece request with a size larger than the
//! truth; an honest node holds the layers. Without a committed piece list nothing proves
//! which size is right, so the pulling node gives up the peers for those layers and blames
//! nobody: the pull succeeds (from the upstream) and the honest node is not struck.

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::process::wait_until;
use pyrsia_tests::raw_peer::LyingProvider;
use pyrsia_tests::registry::Registry;

#[test]
fn a_peer_lying_about_a_blob_size_gets_no_honest_peer_struck() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let multi = images
        .iter()
        .find(|i| i.reference == "team/multi:multi")
        .expect("the multi-layer image");
    let honest = Node::start(
        &work.path().join("honest"),
        &["--upstream", &registry.url()],
    );
    let out = skopeo_copy(
        &honest.authority(),
        &multi.reference,
        &work.path().join("h"),
    );
    assert_succeeded(&out, "the honest node's pull", &honest.log());
    for layer in &multi.layers {
        assert!(honest.wait_stored(&layer.blob.digest));
    }
    let victim = Node::start(
        &work.path().join("victim"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &honest.p2p_address(),
        ],
    );
    wait_mesh(&[&honest, &victim]);
    let blobs = multi
        .layers
        .iter()
        .map(|l| (l.blob.digest, l.blob.size))
        .collect();
    let liar = LyingProvider::start(&victim.p2p_address(), blobs, 4096);
    wait_until(
        "the liar connects",
        std::time::Duration::from_secs(10),
        &|| victim.log(),
        || victim.connected_peers().iter().any(|p| p == liar.peer_id()),
    );
    // Let the liar's provider records reach the victim.
    std::thread::sleep(std::time::Duration::from_secs(1));

    let out = skopeo_copy(
        &victim.authority(),
        &multi.reference,
        &work.path().join("v"),
    );
    assert_succeeded(&out, "the pull next to a liar", &victim.log());
    let log = victim.log();
    assert!(
        log.contains("peers disagree on the blob's size"),
        "the liar's size met the honest one\n{log}"
    );
    // Nothing may be held against the honest node: not the liar's claims, and not its
    // checkpoints either (two standalone nodes are two networks, which is no fault).
    let honest_id = honest.peer_id();
    let blamed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("peer misbehaved peer={honest_id}")))
        .collect();
    assert!(
        blamed.is_empty(),
        "the honest peer was blamed: {blamed:?}\n{log}"
    );
    assert!(
        victim.connected_peers().contains(&honest_id),
        "the honest peer is still connected"
    );
    for layer in &multi.layers {
        assert!(
            victim.wait_stored(&layer.blob.digest),
            "layer stored, verified"
        );
    }
}
