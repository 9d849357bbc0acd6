//! PROTOCOL case 23: an upstream tag moves. What was verified is pinned by digest: the first
//! digest's commit and tag observation stay as they were; the tag's new digest is verified
//! and committed on its own, with a separate tag observation; `verify` follows the tag to the
//! latest observation and still verifies the first digest by digest.

use std::path::Path;

use pyrsia_core::digest::Digest;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::{Layout, OCI_MANIFEST};
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::{output_text, pyrsia, verify_image};

const NAME: &str = "docker.io/library/moving";
const TAGGED: &str = "library/moving:latest";

/// Pushes a one-layer image with `contents` as `library/moving:latest`; returns its digest.
fn push_as_latest(work: &Path, registry: &str, contents: &str) -> Digest {
    let mut layout = Layout::new(&work.join(format!("layout-{contents}")));
    let layer = layout.gzip_layer(&[("version.txt", contents.as_bytes().to_vec())]);
    let manifest = layout.manifest(std::slice::from_ref(&layer), "amd64");
    layout.tag(&manifest, OCI_MANIFEST, "latest");
    layout.push("latest", registry, "library/moving", None);
    manifest.digest
}

#[test]
fn a_moved_tag_gets_its_own_commit_and_observation_and_the_first_stays_pinned() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);

    let first = push_as_latest(work.path(), &registry.authority(), "one");
    let out = skopeo_copy(&node.authority(), TAGGED, &work.path().join("c1"));
    assert_succeeded(&out, "the pull of the first digest", &node.log());
    node.wait_committed(NAME, &first)
        .unwrap_or_else(|| panic!("the first digest committed\n{}", node.log()));

    // The tag moves upstream.
    let second = push_as_latest(work.path(), &registry.authority(), "two");
    assert_ne!(first, second);
    let out = skopeo_copy(&node.authority(), TAGGED, &work.path().join("c2"));
    assert_succeeded(&out, "the pull after the tag moved", &node.log());
    node.wait_committed(NAME, &second)
        .unwrap_or_else(|| panic!("the second digest committed\n{}", node.log()));

    // Two commits, two separate tag observations, in order.
    let out = pyrsia(&[
        "inspect-log",
        "docker",
        "--image",
        TAGGED,
        "--format",
        "json",
        "--node",
        &node.url(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let observations: Vec<&str> = rows
        .iter()
        .filter(|r| r["kind"] == "tag-observation")
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        observations,
        [first.to_string(), second.to_string()],
        "{rows:?}"
    );
    let commits = rows.iter().filter(|r| r["kind"] == "commit").count();
    assert_eq!(commits, 2, "{rows:?}");

    // The tag verifies as its latest observation; the first digest still verifies pinned.
    let out = verify_image(&node, TAGGED, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains(&format!("-> {second}")),
        "the tag follows its latest observation: {}",
        output_text(&out)
    );
    let out = verify_image(&node, &format!("library/moving@{first}"), &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("VERIFIED"),
        "{}",
        output_text(&out)
    );
}
