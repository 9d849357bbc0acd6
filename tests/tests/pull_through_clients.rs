//! The node as a registry mirror for real clients, with a real upstream: skopeo, podman and
//! ctr pull through it; then the upstream goes away and they pull again from the cache; then
//! the node restarts offline and they pull once more.

use std::path::Path;

use pyrsia_tests::clients::{Containerd, Podman, assert_succeeded, remote_digest, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

const REFERENCES: [&str; 3] = [
    "library/small:small",
    "team/multi:multi",
    "library/multiarch:multiarch",
];

/// Pulls every test image through `node` with skopeo, podman and ctr, each starting from an
/// empty local store, so the node must serve everything.
fn pull_with_every_client(
    node: &Node,
    podman: &Podman,
    containerd: &Containerd,
    work: &Path,
    phase: &str,
) {
    podman.remove_all();
    for reference in REFERENCES {
        containerd.remove(reference);
        let out = skopeo_copy(&node.authority(), reference, &work.join("copy"));
        assert_succeeded(&out, &format!("{phase}: skopeo {reference}"), &node.log());
        assert_succeeded(
            &podman.pull(reference),
            &format!("{phase}: podman {reference}"),
            &node.log(),
        );
        assert_succeeded(
            &containerd.pull(reference),
            &format!("{phase}: ctr {reference}"),
            &node.log(),
        );
    }
}

#[test]
fn skopeo_podman_and_ctr_pull_through_then_offline() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let node_dir = work.path().join("node");
    let node = Node::start(&node_dir, &["--upstream", &registry.url()]);

    // skopeo straight at the node: every image, same digests as upstream.
    for image in &images {
        let out = skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join("copy"),
        );
        assert_succeeded(&out, &format!("skopeo {}", image.reference), &node.log());
        assert_eq!(
            remote_digest(&node.authority(), &image.reference),
            image.digest,
            "{}",
            image.reference
        );
    }
    // Every layer skopeo pulled (the first two images; the index's layers come later) is
    // now in the node's store, verified.
    for layer in images[..2].iter().flat_map(|i| &i.layers) {
        assert!(
            node.wait_stored(&layer.blob.digest),
            "layer {} stored",
            layer.blob.digest
        );
    }

    // podman with a registries.conf mirror; ctr with hosts.toml.
    let podman = Podman::new(&work.path().join("podman"), &node.authority());
    let containerd = Containerd::start(&work.path().join("containerd"), &node.authority());
    pull_with_every_client(&node, &podman, &containerd, work.path(), "online");

    // The upstream goes down: everything pulled before still pulls, with each client.
    registry.stop();
    pull_with_every_client(&node, &podman, &containerd, work.path(), "upstream down");
    assert!(
        node.log().contains("serving the last observed digest"),
        "tags resolved from observations"
    );

    // Something never pulled is a clear OCI error, not a hang.
    let out = skopeo_copy(
        &node.authority(),
        "library/never:1",
        &work.path().join("copy"),
    );
    assert!(!out.status.success());

    // Restart the node with --offline: still serves it all.
    let node = node.restart(&node_dir, &["--offline"]);
    pull_with_every_client(
        &node,
        &podman,
        &containerd,
        work.path(),
        "restarted offline",
    );
}

#[test]
fn the_ns_parameter_selects_the_upstream_mapped_for_that_host() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let dead = format!("http://127.0.0.1:{}", pyrsia_tests::process::free_port());
    let ghcr = format!("ghcr.io={}", registry.url());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &dead, "--upstream", &ghcr],
    );

    // containerd names the registry in ?ns=: ghcr.io is mapped to the live registry.
    let url = format!("{}/v2/library/small/manifests/small?ns=ghcr.io", node.url());
    let fetched = pyrsia_tests::http::get(&url).unwrap();
    assert_eq!(
        (fetched.status, fetched.body_digest),
        (200, images[0].digest),
        "{fetched:?}"
    );
    // docker.io (the default) is mapped to a dead upstream: a clear 503, not a hang.
    let fetched =
        pyrsia_tests::http::get(&format!("{}/v2/library/small/manifests/small", node.url()))
            .unwrap();
    assert_eq!(fetched.status, 503, "{fetched:?}");
    assert!(
        fetched.small_body.contains("\"code\":\"UNAVAILABLE\""),
        "{fetched:?}"
    );
}
