//! A ~200 MiB image through the node with skopeo and podman; what `pyrsia status` and
//! `/metrics` then report; and the lite mirror (no libp2p) chained behind the node.

use pyrsia_tests::clients::{Podman, assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::{push_large_image, push_standard_images};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::free_port;
use pyrsia_tests::pyrsia;
use pyrsia_tests::registry::Registry;

#[test]
fn large_image_then_status_metrics_and_a_lite_mirror_behind_the_node() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let large = push_large_image(work.path(), &registry.authority(), 200 << 20);
    let images = push_standard_images(work.path(), &registry.authority());
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);

    let out = skopeo_copy(
        &node.authority(),
        &large.reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo large image", &node.log());
    let copied = std::fs::read_dir(work.path().join("copy")).unwrap().count();
    assert!(copied >= 3, "manifest, config and layer copied");
    let podman = Podman::new(&work.path().join("podman"), &node.authority());
    let out = podman.pull(&large.reference);
    assert_succeeded(&out, "podman large image", &node.log());
    assert_eq!(
        registry.blob_gets(&large.layers[0].blob.digest.to_string()),
        1,
        "the layer crossed the upstream link once"
    );

    // pyrsia status talks to the node over HTTP.
    let status = pyrsia(&["status", "--node", &node.url()]);
    assert!(status.status.success(), "{status:?}");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("(up)") && text.contains("upstream:  up"),
        "{text}"
    );
    assert!(
        text.contains("200.") && text.contains("MiB"),
        "cache size shown: {text}"
    );
    let down = pyrsia(&[
        "status",
        "--node",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert!(
        !down.status.success(),
        "a node that is not running is reported as such"
    );

    let metrics = get(&format!("{}/metrics", node.url())).unwrap();
    assert_eq!(metrics.status, 200);
    for name in [
        "pyrsia_cache_hits_total",
        "pyrsia_cache_misses_total",
        "pyrsia_upstream_fetches_total",
        "pyrsia_store_bytes",
    ] {
        assert!(
            metrics.small_body.contains(name),
            "{name} in {}",
            metrics.small_body
        );
    }
    let hits_line = metrics
        .small_body
        .lines()
        .find(|l| l.starts_with("pyrsia_cache_hits_total"))
        .unwrap();
    let hits: u64 = hits_line
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        hits >= 2,
        "podman's pull after skopeo's was served from the cache: {hits_line}"
    );

    // The lite mirror, with the node as its upstream.
    let lite = Node::start_binary(
        "pyrsia-lite",
        &work.path().join("lite"),
        free_port(),
        &["--upstream", &node.url()],
    );
    let out = skopeo_copy(
        &lite.authority(),
        "library/small:small",
        &work.path().join("copy-lite"),
    );
    assert_succeeded(&out, "skopeo through the lite mirror", &lite.log());
    let small_layer = images[0].layers[0].blob.digest;
    assert!(lite.wait_stored(&small_layer), "the lite mirror caches too");
}
