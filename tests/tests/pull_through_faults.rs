//! A bad upstream costs nothing: corrupted blobs, transfers that die mid-blob, malformed or
//! mismatched manifests, hostile paths, a kill -9 mid-download, and a crowd of clients asking
//! for the same cold blob at once.

use std::sync::Arc;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::{get, get_with, raw};
use pyrsia_tests::image::{push_large_image, push_standard_images};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::proxy::{Fault, FaultProxy};
use pyrsia_tests::registry::Registry;

#[test]
fn corrupted_blob_fails_the_client_and_nothing_is_cached() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let proxy = FaultProxy::start(&registry.url());
    let node = Node::start(&work.path().join("node"), &["--upstream", &proxy.url()]);
    let multi = &images[1];
    let layer = &multi.layers[0].blob;
    let blob_url = format!("{}/v2/team/multi/blobs/{}", node.url(), layer.digest);

    proxy.set_fault(Fault::FlipByte(layer.size / 2));
    // A raw client sees the transfer aborted (a small blob may not even get its headers out
    // before the abort), not a complete body and not a hang.
    match get(&blob_url) {
        Err(aborted) => assert!(
            aborted.contains("disconnected") || aborted.contains("closed"),
            "{aborted}"
        ),
        Ok(fetched) => {
            assert!(
                fetched.body_error.is_some() || fetched.status >= 500,
                "must not complete: {fetched:?}"
            );
            assert!(
                fetched.body_len < layer.size,
                "the last byte is held back until verified"
            );
        }
    }
    // skopeo fails too.
    let out = skopeo_copy(
        &node.authority(),
        &multi.reference,
        &work.path().join("copy"),
    );
    assert!(
        !out.status.success(),
        "skopeo must fail on a corrupted layer"
    );
    assert!(
        !node
            .stored_blobs()
            .contains(&layer.digest.hex().to_string()),
        "nothing cached"
    );
    assert_eq!(node.temp_files(), 0, "no partial left behind");
    assert!(
        node.log().contains("does not match its digest"),
        "{}",
        node.log()
    );

    // The next good fetch works and is cached.
    proxy.set_fault(Fault::None);
    let out = skopeo_copy(
        &node.authority(),
        &multi.reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo after the fault", &node.log());
    let fetched = get(&blob_url).unwrap();
    assert_eq!((fetched.status, fetched.body_digest), (200, layer.digest));
    assert!(node.wait_stored(&layer.digest));
}

/// A registry holding a 20 MiB image, a fault proxy in front of it, and a node behind that.
fn large_setup(
    work: &std::path::Path,
) -> (
    Registry,
    FaultProxy,
    Node,
    pyrsia_tests::image::Blob,
    String,
) {
    let registry = Registry::start(&work.join("registry"));
    let layer = push_large_image(work, &registry.authority(), 20 << 20).layers[0]
        .blob
        .clone();
    let proxy = FaultProxy::start(&registry.url());
    let node = Node::start(&work.join("node"), &["--upstream", &proxy.url()]);
    let blob_url = format!("{}/v2/library/large/blobs/{}", node.url(), layer.digest);
    (registry, proxy, node, layer, blob_url)
}

#[test]
fn upstream_dying_mid_blob_fails_cleanly_and_ranges_wait_for_verification() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, node, layer, blob_url) = large_setup(work.path());

    // Every upstream transfer dies after 1 MiB: three attempts cannot finish 20 MiB.
    proxy.set_fault(Fault::CutAfter(1 << 20));
    let fetched = get(&blob_url).unwrap();
    assert!(
        fetched.body_error.is_some() || fetched.status >= 500,
        "{fetched:?}"
    );
    assert!(
        !node
            .stored_blobs()
            .contains(&layer.digest.hex().to_string())
    );
    assert_eq!(node.temp_files(), 0);

    // A range of a cold blob is served only once the whole blob has been verified.
    proxy.set_fault(Fault::None);
    let ranged = get_with(&blob_url, &[("Range", "bytes=1000-1999")]).unwrap();
    assert_eq!((ranged.status, ranged.body_len), (206, 1000), "{ranged:?}");
    assert!(node.wait_stored(&layer.digest));
    let whole = get(&blob_url).unwrap();
    assert_eq!((whole.status, whole.body_digest), (200, layer.digest));
}

#[test]
fn transfers_cut_mid_blob_are_resumed_with_range_requests() {
    let work = tempfile::tempdir().unwrap();
    let (_registry, proxy, node, layer, blob_url) = large_setup(work.path());
    // Transfers die after 8 MiB: the node resumes with Range requests and completes.
    proxy.set_fault(Fault::CutAfter(8 << 20));
    let fetched = get(&blob_url).unwrap();
    assert_eq!(
        (fetched.status, fetched.body_digest, fetched.body_error),
        (200, layer.digest, None)
    );
    assert!(
        node.log().contains("resuming blob download"),
        "{}",
        node.log()
    );
    assert!(node.wait_stored(&layer.digest));
}

#[test]
fn malformed_and_mismatched_manifests_are_refused_and_not_cached() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let proxy = FaultProxy::start(&registry.url());
    let node = Node::start(&work.path().join("node"), &["--upstream", &proxy.url()]);
    let small = &images[0];
    let tag_url = format!("{}/v2/library/small/manifests/small", node.url());
    let digest_url = format!("{}/v2/library/small/manifests/{}", node.url(), small.digest);

    // Malformed JSON, no digest to check against: refused as malformed.
    proxy.set_fault(Fault::GarbleManifests { keep_digest: false });
    let fetched = get(&tag_url).unwrap();
    assert_eq!(fetched.status, 502, "{fetched:?}");
    assert!(
        fetched.small_body.contains("\"errors\""),
        "{}",
        fetched.small_body
    );
    assert!(node.log().contains("malformed"), "{}", node.log());
    // Bytes that do not match the requested digest: refused (PROTOCOL case 22).
    proxy.set_fault(Fault::GarbleManifests { keep_digest: true });
    let fetched = get(&digest_url).unwrap();
    assert_eq!(fetched.status, 502, "{fetched:?}");
    assert!(
        node.log().contains("does not match its digest"),
        "{}",
        node.log()
    );
    assert!(
        node.stored_blobs().is_empty(),
        "nothing stored: {:?}",
        node.stored_blobs()
    );

    proxy.set_fault(Fault::None);
    let fetched = get(&digest_url).unwrap();
    assert_eq!((fetched.status, fetched.body_digest), (200, small.digest));
}

#[test]
fn hostile_paths_are_rejected_with_oci_errors() {
    let work = tempfile::tempdir().unwrap();
    let node = Node::start(&work.path().join("node"), &["--offline"]);
    let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let cases = [
        (
            "GET /v2/../../etc/passwd/manifests/latest HTTP/1.1",
            400,
            "NAME_INVALID",
        ),
        (
            "GET /v2/%2e%2e/%2e%2e/etc/manifests/latest HTTP/1.1",
            400,
            "NAME_INVALID",
        ),
        (
            "GET /v2/library/%2e%2e%2fx/blobs/{digest} HTTP/1.1",
            400,
            "NAME_INVALID",
        ),
        (
            "GET /v2//etc/passwd/manifests/latest HTTP/1.1",
            400,
            "NAME_INVALID",
        ),
        ("HEAD /v2/Library/Alpine/manifests/latest HTTP/1.1", 400, ""),
        (
            "GET /v2/library/alpine/blobs/sha256:..%2f..%2fetc%2fpasswd HTTP/1.1",
            400,
            "DIGEST_INVALID",
        ),
        // Matches no endpoint of the API at all.
        (
            "GET /v2/library/alpine/blobs/sha256:../../../../etc/passwd HTTP/1.1",
            404,
            "UNSUPPORTED",
        ),
        // Neither a tag nor a digest names no manifest (distribution's answer, and what the
        // OCI conformance suite expects).
        (
            "GET /v2/library/alpine/manifests/..%2f..%2fetc HTTP/1.1",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET /v2/library/alpine/manifests/.INVALID_MANIFEST_NAME HTTP/1.1",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "PUT /v2/library/alpine/manifests/latest HTTP/1.1",
            405,
            "UNSUPPORTED",
        ),
        (
            "DELETE /v2/library/alpine/blobs/{digest} HTTP/1.1",
            405,
            "UNSUPPORTED",
        ),
        (
            "GET /v2/library/alpine/manifests/latest HTTP/1.1",
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET /v2/library/alpine/blobs/{digest} HTTP/1.1",
            404,
            "BLOB_UNKNOWN",
        ),
    ];
    for (line, status, code) in cases {
        let line = line.replace("{digest}", digest);
        let (got, body) = raw(&node.authority(), &line);
        assert_eq!(got, status, "{line}: {body}");
        // HEAD answers carry no body.
        assert!(
            code.is_empty() || body.contains(&format!("\"code\":\"{code}\"")),
            "{line}: {body}"
        );
    }
    // The store holds nothing and nothing was created outside it.
    assert!(node.stored_blobs().is_empty());
}

#[test]
fn fifty_clients_on_one_cold_blob_cause_one_upstream_fetch() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let large = push_large_image(work.path(), &registry.authority(), 64 << 20);
    let layer = large.layers[0].blob.clone();
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);
    let url = Arc::new(format!(
        "{}/v2/library/large/blobs/{}",
        node.url(),
        layer.digest
    ));
    let gets_before = registry.blob_gets(&layer.digest.to_string());

    let clients: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || get(&url))
        })
        .collect();
    for client in clients {
        let fetched = client
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
        assert_eq!(
            (fetched.status, fetched.body_len, fetched.body_digest),
            (200, layer.size, layer.digest)
        );
        assert_eq!(fetched.body_error, None);
    }
    // The registry logs a GET once it has written the response's last byte, which can be
    // after the node has passed that byte on to its clients: wait for the line.
    let gets = || registry.blob_gets(&layer.digest.to_string()) - gets_before;
    wait_until(
        "the registry logs the node's fetch",
        std::time::Duration::from_secs(5),
        &|| node.log(),
        || gets() >= 1,
    );
    assert_eq!(gets(), 1, "one upstream fetch for 50 clients");
}

#[test]
fn kill_9_mid_download_leaves_no_partial_blob() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let large = push_large_image(work.path(), &registry.authority(), 64 << 20);
    let layer = large.layers[0].blob.clone();
    let proxy = FaultProxy::start(&registry.url());
    let node_dir = work.path().join("node");
    // Slow the download down: every transfer is cut, so the node keeps resuming.
    proxy.set_fault(Fault::CutAfter(4 << 20));
    let mut node = Node::start(&node_dir, &["--upstream", &proxy.url()]);
    let url = format!("{}/v2/library/large/blobs/{}", node.url(), layer.digest);
    let client = std::thread::spawn(move || get(&url));
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(node.temp_files() > 0, "a download is in progress");
    node.kill();
    let _ = client.join();
    assert!(
        !node
            .stored_blobs()
            .contains(&layer.digest.hex().to_string())
    );

    // Restart: the partial is cleaned up; the blob is fetched whole and verified.
    proxy.set_fault(Fault::None);
    let node = Node::start(&node_dir, &["--upstream", &proxy.url()]);
    assert_eq!(node.temp_files(), 0, "partial removed on start");
    let fetched = get(&format!(
        "{}/v2/library/large/blobs/{}",
        node.url(),
        layer.digest
    ))
    .unwrap();
    assert_eq!((fetched.status, fetched.body_digest), (200, layer.digest));
}
