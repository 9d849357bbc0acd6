//! Content between node processes over libp2p on 127.0.0.1: nodes provide what they hold on
//! the DHT and fetch misses from each other in pieces (a cold blob from the upstream once, by
//! the rendezvous winner); once the upstream is gone, another node serves the images by digest
//! to skopeo and podman from its peers, each blob verified before it is stored or completed.

use pyrsia_tests::clients::{Podman, assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;

use std::time::Duration;

#[test]
fn with_the_upstream_down_peers_serve_what_one_node_pulled() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let a_address = a.p2p_address();
    let a_id = a_address.rsplit('/').next().unwrap().to_string();
    let b = Node::start(
        &work.path().join("b"),
        &["--upstream", &registry.url(), "--peer", &a_address],
    );
    let c = Node::start(
        &work.path().join("c"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &a_address,
            "--peer",
            &b.p2p_address(),
        ],
    );
    for node in [&b, &c] {
        node.wait_connected(&a_id);
    }

    // A pulls the images from the upstream; its builder fetches every blob of them too.
    for image in &images[..2] {
        let out = skopeo_copy(&a.authority(), &image.reference, &work.path().join("copy"));
        assert_succeeded(&out, &image.reference, &a.log());
        a.wait_committed(
            &format!("docker.io/{}", image.reference.split(':').next().unwrap()),
            &image.digest,
        )
        .expect("A verified the image");
    }
    let upstream_gets_before = registry.blob_gets(&images[1].layers[0].blob.digest.to_string());
    registry.stop();

    // C, which never saw the upstream copy, serves both by digest from its peers, once A's
    // provider records (announced on the DHT as A stores, every 200 ms) reached the network:
    // right after A's commit they may not have, and C answers 503 until then.
    // Both images' manifests: their records are announced one after the other (CI saw the
    // second one missing when only the first was waited for).
    for (path, image) in [("library/small", &images[0]), ("team/multi", &images[1])] {
        let manifest = format!("{}/v2/{path}/manifests/{}", c.url(), image.digest);
        wait_until(
            "C finds the manifest on its peers",
            Duration::from_secs(20),
            &|| c.log(),
            || pyrsia_tests::http::get(&manifest).is_ok_and(|r| r.status == 200),
        );
    }
    let small = format!("library/small@{}", images[0].digest);
    let out = skopeo_copy(&c.authority(), &small, &work.path().join("copy"));
    assert_succeeded(&out, "skopeo by digest through C, upstream down", &c.log());
    let podman = Podman::new(&work.path().join("podman"), &c.authority());
    let multi = format!("team/multi@{}", images[1].digest);
    assert_succeeded(
        &podman.pull(&multi),
        "podman by digest through C, upstream down",
        &c.log(),
    );
    for layer in images[..2].iter().flat_map(|i| &i.layers) {
        assert!(
            c.wait_stored(&layer.blob.digest),
            "C stored {} verified",
            layer.blob.digest
        );
    }
    // Blobs A pulled while C was the rendezvous winner were fetched by C for the network and
    // are local to it now; the rest, and the manifests, came from peers.
    assert!(c.metric("peer_fetches") >= 2, "{}", c.log());
    assert!(c.metric("peer_bytes") > 0);
    assert!(
        c.log().contains("fetched manifest from peers"),
        "{}",
        c.log()
    );
    for layer in images[..2].iter().flat_map(|i| &i.layers) {
        assert_eq!(
            registry.blob_gets(&layer.blob.digest.to_string()),
            1,
            "{} crossed the upstream link once for the three nodes\n===== A\n{}\n===== B\n{}\n===== C\n{}",
            layer.blob.digest,
            a.log(),
            b.log(),
            c.log()
        );
    }
    assert_eq!(
        registry.blob_gets(&images[1].layers[0].blob.digest.to_string()),
        upstream_gets_before,
        "nothing went to the upstream after it stopped"
    );
}
