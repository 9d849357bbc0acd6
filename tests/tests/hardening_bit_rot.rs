//! Issue 14, item 10 (PROTOCOL case 36): bit rot in the store. A byte of a stored, verified
//! layer is flipped on disk; the node's scrubber finds it, quarantines the file, and the node
//! never serves those bytes as that digest again: with the upstream down the layer is
//! unavailable (not rotten), and once the upstream is back it is fetched and served intact.

use std::time::Duration;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;

#[test]
fn a_rotten_stored_blob_is_quarantined_and_never_served_again() {
    let work = tempfile::tempdir().unwrap();
    let registry_dir = work.path().join("registry");
    let mut registry = Registry::start(&registry_dir);
    let port = registry.port;
    let images = push_standard_images(work.path(), &registry.authority());
    let small = images
        .iter()
        .find(|i| i.reference == "library/small:small")
        .expect("the small image");
    let layer = small.layers[0].blob.digest;
    let node = Node::start(
        &work.path().join("node"),
        &[
            "--upstream",
            &registry.url(),
            "--scrub-every",
            "1",
            "--scrub-rate",
            "64M",
        ],
    );
    let out = skopeo_copy(
        &node.authority(),
        &small.reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "first pull", &node.log());
    assert!(node.wait_stored(&layer));

    // Rot: one bit of the stored layer flips.
    let path = node
        .data_dir
        .join("blobs/sha256")
        .join(layer.hex().as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    registry.stop();

    wait_until(
        "the scrubber finds the rotten layer",
        Duration::from_secs(20),
        &|| node.log(),
        || node.metric("scrub_quarantined") > 0,
    );
    assert!(
        node.log().contains(&format!(
            "a stored blob no longer matches its digest (bit rot); quarantined, it will be fetched again digest={layer}"
        )),
        "{}",
        node.log()
    );
    assert!(!path.exists(), "the rotten file left the store");
    let quarantined = std::fs::read_dir(node.data_dir.join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 1, "kept for inspection");

    // Upstream down: the layer is unavailable, never the rotten bytes.
    let url = format!("{}/v2/library/small/blobs/{layer}", node.url());
    let down = get(&url).expect("GET");
    assert_ne!(down.status, 200, "{down:?}");
    assert!(
        down.small_body.contains("\"errors\""),
        "an OCI error: {down:?}"
    );

    // Upstream back: fetched again, verified, served intact.
    let _registry = Registry::start_on(&registry_dir, port);
    let back = get(&url).expect("GET");
    assert_eq!(back.status, 200, "{back:?}\n{}", node.log());
    assert_eq!(back.body_digest, layer, "the intact layer");
    assert!(node.wait_stored(&layer));
    assert_eq!(
        std::fs::read(&path)
            .map(|b| pyrsia_core::digest::Digest::sha256(&b))
            .ok(),
        Some(layer),
        "the store holds the intact layer again"
    );
    assert_eq!(node.metric("scrub_quarantined"), 1);
}
