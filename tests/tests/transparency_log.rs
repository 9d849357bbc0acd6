//! The transparency log end to end, on a standalone node (n = 1): pulling through it commits
//! what it mirrors; `pyrsia verify` checks it as a light client and refuses what was never
//! committed or was altered on disk; the log survives a restart; `--verified-only` serves only
//! committed artifacts.

use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::{output_text, pyrsia, verify_image};

#[test]
fn pulls_are_committed_and_verify_checks_them() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let node_dir = work.path().join("node");
    let node = Node::start(&node_dir, &["--upstream", &registry.url()]);

    // Before any pull, nothing is committed: verify refuses and says why.
    let out = verify_image(&node, "library/small:small", &[]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("never observed"),
        "{}",
        output_text(&out)
    );

    // skopeo pulls the single-platform image and the index (one platform of it).
    for image in [&images[0], &images[2]] {
        let out = skopeo_copy(
            &node.authority(),
            &image.reference,
            &work.path().join("copy"),
        );
        assert_succeeded(&out, &image.reference, &node.log());
    }
    let small = node
        .wait_committed("docker.io/library/small", &images[0].digest)
        .unwrap_or_else(|| panic!("small committed\n{}", node.log()));
    node.wait_committed("docker.io/library/multiarch", &images[2].digest)
        .unwrap_or_else(|| panic!("multiarch committed\n{}", node.log()));

    // verify: checkpoint, tag observation, commit, every manifest and blob hashed.
    let out = verify_image(&node, "library/small:small", &[]);
    let report = output_text(&out);
    assert!(out.status.success(), "{report}\n{}", node.log());
    assert!(report.contains("trust on first use"), "{report}");
    assert!(report.contains(&format!("entry #{small}")), "{report}");
    assert!(
        report.contains(&format!("{} ", images[0].layers[0].blob.digest)),
        "{report}"
    );
    assert!(report.contains("VERIFIED"), "{report}");
    // The index: both platforms were fetched and committed by the node's builder, although
    // skopeo pulled one.
    let out = verify_image(&node, "library/multiarch:multiarch", &[]);
    let report = output_text(&out);
    assert!(out.status.success(), "{report}");
    for layer in &images[2].layers {
        assert!(report.contains(&layer.blob.digest.to_string()), "{report}");
    }
    assert_eq!(report.matches("manifest    ").count(), 3, "{report}");

    // Pinned genesis: the node's own, saved to a file, then a foreign one is refused.
    let genesis = work.path().join("genesis.bin");
    node.save_genesis(&genesis);
    let pinned = verify_image(
        &node,
        "library/small:small",
        &["--genesis", genesis.to_str().unwrap()],
    );
    assert!(pinned.status.success(), "{}", output_text(&pinned));
    assert!(
        output_text(&pinned).contains("pinned from"),
        "{}",
        output_text(&pinned)
    );
    let mut foreign = std::fs::read(&genesis).unwrap();
    let last = foreign.len() - 1;
    foreign[last] ^= 0x01; // another creation time: another network's genesis
    std::fs::write(&genesis, &foreign).unwrap();
    let out = verify_image(
        &node,
        "library/small:small",
        &["--genesis", genesis.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("genesis inclusion proof"),
        "{}",
        output_text(&out)
    );

    // A never-pulled image is not committed.
    let out = verify_image(&node, "team/multi:multi", &[]);
    assert!(!out.status.success(), "{}", output_text(&out));

    // `log checkpoint` prints a signed note; `inspect-log` lists the image's entries.
    let url = node.url();
    let out = pyrsia(&["log", "checkpoint", "--node", &url]);
    assert!(out.status.success(), "{}", output_text(&out));
    let note = SignedCheckpoint::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    // Genesis + 2 × (request, commit, tag): the child manifest skopeo pulled by digest is
    // part of the index's commit, not a commit of its own.
    assert_eq!(note.checkpoint.size, 7, "{note}");
    assert_eq!(note.cosignatures.len(), 1);
    let out = pyrsia(&[
        "inspect-log",
        "docker",
        "--image",
        "library/small:small",
        "--format",
        "json",
        "--node",
        &url,
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["build-request", "commit", "tag-observation"],
        "{rows}"
    );
    assert_eq!(rows[2]["digest"], images[0].digest.to_string());
    let out = pyrsia(&[
        "inspect-log",
        "docker",
        "--image",
        "library/small:small",
        "--format",
        "csv",
        "--fields",
        "index,kind,build_type",
        "--latest",
        "--node",
        &url,
    ]);
    let csv = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(csv.starts_with("index,kind,build_type\n"), "{csv}");
    assert!(
        csv.contains(&format!("{small},commit,docker-fetch/v1")),
        "{csv}"
    );

    // The log survives a restart, size and all.
    let node = node.restart(&node_dir, &["--upstream", &registry.url()]);
    let out = pyrsia(&["log", "checkpoint", "--node", &url]);
    let after = SignedCheckpoint::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(
        (after.checkpoint.size, after.checkpoint.root),
        (note.checkpoint.size, note.checkpoint.root)
    );
    assert!(
        verify_image(&node, "library/small:small", &[])
            .status
            .success()
    );

    // A blob altered on disk (same size) is caught by the hash, and verify says which.
    let layer = images[0].layers[0].blob.digest;
    let path = node
        .data_dir
        .join("blobs/sha256")
        .join(layer.hex().as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let out = verify_image(&node, "library/small:small", &[]);
    let report = output_text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(
        report.contains(&format!("blob {layer}: the bytes served hash to")),
        "{report}"
    );
}

#[test]
fn verified_only_serves_committed_artifacts_only() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--verified-only"],
    );
    // The first request for an artifact: not verified yet, refused with the OCI error, and
    // verification requested (which commits it a moment later).
    let manifest = pyrsia_tests::http::get(&format!(
        "{}/v2/library/small/manifests/{}",
        node.url(),
        images[0].digest
    ))
    .unwrap();
    assert_eq!(manifest.status, 404, "{manifest:?}");
    assert!(
        manifest.small_body.contains("MANIFEST_UNKNOWN"),
        "{manifest:?}"
    );
    assert!(
        manifest.small_body.contains("verification was requested"),
        "{manifest:?}"
    );
    let blob = pyrsia_tests::http::get(&format!(
        "{}/v2/team/multi/blobs/{}",
        node.url(),
        images[1].layers[0].blob.digest
    ))
    .unwrap();
    assert_eq!(blob.status, 404, "{blob:?}");
    assert!(blob.small_body.contains("BLOB_UNKNOWN"), "{blob:?}");

    // A client's first pull of another image fails the same way.
    let out = skopeo_copy(
        &node.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert!(!out.status.success(), "served before it was committed");

    // Once committed, it is served.
    node.wait_committed("docker.io/library/small", &images[0].digest)
        .unwrap_or_else(|| panic!("small committed\n{}", node.log()));
    let out = skopeo_copy(
        &node.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small after commit", &node.log());
    let status = pyrsia(&["status", "--node", &node.url()]);
    assert!(
        output_text(&status).contains("serving verified content only"),
        "{}",
        output_text(&status)
    );

    // `pyrsia build` asks for an image nobody pulled yet and waits until it is committed.
    let url = node.url();
    let build = |image: &str| {
        pyrsia(&[
            "build",
            "docker",
            "--image",
            image,
            "--node",
            &url,
            "--timeout",
            "120",
        ])
    };
    let out = build("library/multiarch:multiarch");
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        node.log()
    );
    assert!(
        output_text(&out).contains("requested"),
        "{}",
        output_text(&out)
    );
    assert!(
        output_text(&out).contains(&format!(
            "committed    docker.io/library/multiarch@{}",
            images[2].digest
        )),
        "{}",
        output_text(&out)
    );
    let again = build("library/multiarch:multiarch");
    assert!(
        again.status.success() && output_text(&again).contains("(already)"),
        "{}",
        output_text(&again)
    );
    let absent = build("library/absent:1");
    assert!(!absent.status.success(), "{}", output_text(&absent));
    assert!(
        output_text(&absent).contains("could not fetch the manifest"),
        "{}",
        output_text(&absent)
    );
}

#[test]
fn a_lite_mirror_verifies_through_a_full_node() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let full = Node::start(&work.path().join("full"), &["--upstream", &registry.url()]);
    let out = skopeo_copy(
        &full.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through the full node", &full.log());
    full.wait_committed("docker.io/library/small", &images[0].digest)
        .unwrap_or_else(|| panic!("committed\n{}", full.log()));

    // The lite mirror: the full node is its upstream and its log's source; it trusts only the
    // genesis file and serves only what that log committed.
    let genesis = work.path().join("genesis.bin");
    full.save_genesis(&genesis);
    let lite = Node::start_binary(
        "pyrsia-lite",
        &work.path().join("lite"),
        pyrsia_tests::process::free_port(),
        &[
            "--upstream",
            &full.url(),
            "--genesis",
            genesis.to_str().unwrap(),
            "--log-from",
            &full.url(),
            "--verified-only",
        ],
    );
    lite.wait_committed("docker.io/library/small", &images[0].digest)
        .unwrap_or_else(|| panic!("replicated to the lite mirror\n{}", lite.log()));
    let out = skopeo_copy(
        &lite.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through the lite mirror", &lite.log());
    let out = verify_image(
        &lite,
        "library/small:small",
        &["--genesis", genesis.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        lite.log()
    );
    // The full node would pass team/multi through; the lite mirror refuses it: not committed.
    let out = skopeo_copy(
        &lite.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert!(
        !out.status.success(),
        "uncommitted image served in verified mode"
    );
    // The full node commits it when it passes through there; the lite mirror follows.
    let out = skopeo_copy(
        &full.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "multi through the full node", &full.log());
    lite.wait_committed("docker.io/team/multi", &images[1].digest)
        .unwrap_or_else(|| panic!("multi replicated\n{}", lite.log()));
    let out = skopeo_copy(
        &lite.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert_succeeded(
        &out,
        "multi through the lite mirror after its commit",
        &lite.log(),
    );
}
