//! Pyrsia's getting-started setup, run for real: Debian's Docker daemon with the node as its
//! `registry-mirrors` entry pulls a busybox, a multi-layer and a multi-arch image through the
//! node from the local test registry; then again with the upstream gone; then again with the
//! node serving its mirror port over TLS, whose certificate is renewed by SIGHUP without a
//! restart (and a broken renewal changes nothing). dockerd's proxy is a dead local port, so
//! its fallback to Docker Hub cannot succeed: each pull that succeeds was served by the node.

use std::path::Path;

use pyrsia_tests::clients::remote_digest;
use pyrsia_tests::docker::DockerDaemon;
use pyrsia_tests::image::{Layout, OCI_MANIFEST, push_standard_images};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::free_port;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::tls::{TestCa, curl_with_ca};

/// What Docker pulls, as a user types it: busybox, a three-layer image and an OCI index for
/// amd64 and arm64 (Docker picks its own platform).
const PULLS: [&str; 3] = ["busybox:1.36", "team/multi:multi", "multiarch:multiarch"];

/// Each pull's repository and tag in the upstream registry, for the digest Docker must record.
const UPSTREAM: [&str; 3] = [
    "library/busybox:1.36",
    "team/multi:multi",
    "library/multiarch:multiarch",
];

/// Pushes `library/busybox:1.36` (two layers, Docker schema 2 as Docker Hub serves it).
fn push_busybox(work: &Path, registry: &str) {
    let mut layout = Layout::new(&work.join("layout-busybox"));
    let bin = layout.gzip_layer(&[("bin/busybox", b"#!/bin/sh\necho busybox\n".repeat(64))]);
    let etc = layout.gzip_layer(&[("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n".to_vec())]);
    let manifest = layout.manifest(&[bin, etc], "amd64");
    layout.tag(&manifest, OCI_MANIFEST, "1.36");
    layout.push("1.36", registry, "library/busybox", Some("v2s2"));
}

/// Pulls every image with an empty Docker image store; asserts each succeeded and recorded
/// the upstream's manifest digest, and that the node was asked for each manifest.
fn pull_all(docker: &DockerDaemon, node: &Node, digests: &[String], phase: &str) {
    docker.remove_all_images();
    for ((pull, upstream), digest) in PULLS.iter().zip(UPSTREAM).zip(digests) {
        let asked_before = manifest_requests(node, upstream);
        let out = docker.pull(pull);
        assert!(
            out.status.success(),
            "{phase}: docker pull {pull} failed:\n{}\n--- node ---\n{}\n--- dockerd ---\n{}",
            pyrsia_tests::output_text(&out),
            node.log(),
            docker.log()
        );
        let recorded = docker.repo_digests(pull);
        assert!(
            recorded.iter().any(|r| r.ends_with(&format!("@{digest}"))),
            "{phase}: {pull} recorded {recorded:?}, upstream has {digest}"
        );
        assert!(
            manifest_requests(node, upstream) > asked_before,
            "{phase}: the node never served {upstream}'s manifest:\n{}",
            node.log()
        );
    }
}

/// How many manifest requests for `repository:tag` the node logged.
fn manifest_requests(node: &Node, upstream: &str) -> usize {
    let (repository, tag) = upstream.split_once(':').expect("repository:tag");
    let target = format!("target=/v2/{repository}/manifests/{tag} ");
    node.log().matches(&target).count()
}

#[test]
fn docker_daemon_pulls_through_the_node_then_offline_then_over_tls() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    push_standard_images(work.path(), &registry.authority());
    push_busybox(work.path(), &registry.authority());
    let digests: Vec<String> = UPSTREAM
        .iter()
        .map(|r| remote_digest(&registry.authority(), r).to_string())
        .collect();

    // 1. Plain HTTP on loopback, the upstream up.
    let node_dir = work.path().join("node");
    let node = Node::start(&node_dir, &["--upstream", &registry.url()]);
    let docker = DockerDaemon::start(&work.path().join("docker"), &node.url());
    pull_all(&docker, &node, &digests, "pull-through");

    // 2. The upstream gone: the same pulls come from the node's cache.
    registry.stop();
    pull_all(&docker, &node, &digests, "upstream down");
    docker.stop();

    // 3. TLS on the mirror port (Docker's setup for a mirror that is not on loopback).
    let ca = TestCa::new(&work.path().join("ca"), "pyrsia-test-ca");
    let (cert, key) = (work.path().join("node.crt"), work.path().join("node.key"));
    ca.issue(&cert, &key);
    let port = node.port;
    drop(node);
    let node = Node::start_tls(
        &node_dir,
        port,
        (&cert, &key, &ca.pem),
        &["--upstream", &registry.url()],
    );
    let plain = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5"])
        .arg(format!("{}/v2/", node.url()))
        .output()
        .expect("curl");
    assert!(
        !plain.status.success(),
        "the TLS port answered plain HTTP: {}",
        pyrsia_tests::output_text(&plain)
    );
    let docker = DockerDaemon::start(&work.path().join("docker"), &node.https_url());
    pull_all(&docker, &node, &digests, "TLS");

    // 4. A renewed certificate from another CA, picked up on SIGHUP without a restart.
    let renewed_ca = TestCa::new(&work.path().join("ca"), "pyrsia-renewed-ca");
    renewed_ca.issue(&cert, &key);
    let pid = node.pid();
    node.signal("HUP");
    let healthz = format!("{}/healthz", node.https_url());
    pyrsia_tests::process::wait_until(
        "the renewed certificate is served",
        std::time::Duration::from_secs(10),
        &|| node.log(),
        || curl_with_ca(&healthz, &renewed_ca.pem).status.success(),
    );
    assert!(
        !curl_with_ca(&healthz, &ca.pem).status.success(),
        "the old certificate is still served after SIGHUP"
    );
    assert_eq!(node.pid(), pid, "SIGHUP must not restart the node");
    pull_all(&docker, &node, &digests, "TLS after renewal");

    // 5. A broken renewal (a key that does not fit): logged, and the node keeps the last
    // good certificate and keeps serving.
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    ca.issue(&other.join("c.pem"), &key);
    node.signal("HUP");
    pyrsia_tests::process::wait_until(
        "the bad renewal is refused in the log",
        std::time::Duration::from_secs(10),
        &|| node.log(),
        || node.log().contains("TLS certificate not reloaded"),
    );
    assert!(
        curl_with_ca(&healthz, &renewed_ca.pem).status.success(),
        "after a failed reload the node must keep serving its last good certificate:\n{}",
        node.log()
    );
    assert!(
        node.log().contains("does not fit --tls-cert"),
        "{}",
        node.log()
    );
    let _ = free_port;
}
