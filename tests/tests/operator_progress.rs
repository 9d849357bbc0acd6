//! Progress for long CLI work, against a real node: `pyrsia prefetch` preheats the node's
//! cache (every blob read through the node and verified), printing plain progress lines when
//! piped and drawing bars on a terminal (a pty from `script`); afterwards the upstream is
//! gone and skopeo still pulls the whole image from the node. `pyrsia verify` shows its bytes
//! hashed per blob the same way.

use std::process::{Command, Output};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::{push_large_image, push_standard_images};
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;
use pyrsia_tests::{binary, output_text};

fn pyrsia(args: &[&str]) -> Output {
    Command::new(binary("pyrsia"))
        .args(args)
        .output()
        .expect("pyrsia")
}

#[test]
fn prefetch_preheats_the_cache_with_progress_lines_or_bars() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let large = push_large_image(work.path(), &registry.authority(), 8 << 20);
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);

    // Piped: plain lines on stderr, results on stdout.
    let out = pyrsia(&[
        "prefetch",
        "docker",
        "--image",
        "library/large:large",
        "--node",
        &node.url(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("prefetched   docker.io/library/large@"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 blob(s)"),
        "the config and the layer: {stdout}"
    );
    let layer = &large.layers[0].blob;
    let label = &layer.digest.to_string()[..19];
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(label)).collect();
    assert!(
        lines.len() >= 4 && lines.last().is_some_and(|l| l.ends_with(" done")),
        "plain progress lines for the layer (each quarter, then done):\n{stderr}"
    );
    assert!(
        !stderr.contains('\r') && !stderr.contains("\u{1b}["),
        "no bar drawing when piped:\n{stderr}"
    );
    assert!(
        node.wait_stored(&layer.digest),
        "the layer is in the node's cache"
    );

    // On a terminal (a pty): bars; and --platform picks one child of an index.
    let command = format!(
        "{} prefetch docker --image library/multiarch:multiarch --platform linux/arm64 --node {}",
        binary("pyrsia").display(),
        node.url()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script");
    let shown = output_text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("prefetched   docker.io/library/multiarch@"),
        "{shown}"
    );
    assert!(
        shown.contains("\u{1b}["),
        "a terminal gets a drawn bar:\n{shown:?}"
    );
    // The index and the arm64 manifest, its config and its layer; not the amd64 ones (the
    // node's own verification of the image may fetch those, so its store is no witness).
    assert!(
        shown.contains("2 manifest(s), 2 blob(s)"),
        "--platform linux/arm64 reads one child:\n{shown}"
    );
    let arm = &images[2].layers[1].blob;
    assert!(
        node.wait_stored(&arm.digest),
        "the arm64 layer was prefetched"
    );

    // The upstream gone, the preheated image is served whole.
    registry.stop();
    let out = skopeo_copy(
        &node.authority(),
        "library/large:large",
        &work.path().join("copy"),
    );
    assert_succeeded(
        &out,
        "skopeo of the prefetched image, upstream down",
        &node.log(),
    );

    // verify shows bytes hashed per blob too.
    node.wait_committed("docker.io/library/large", &large.digest)
        .expect("the sole member commits the image");
    let out = pyrsia(&[
        "verify",
        "docker",
        "--image",
        "library/large:large",
        "--node",
        &node.url(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{label}: ")) && stderr.contains(" done"),
        "{stderr}"
    );
}
