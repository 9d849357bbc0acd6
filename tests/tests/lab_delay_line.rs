//! The lab's delay line (`netns::Lab::delayed_pair`), which `pyrsia-bench-reach` measures
//! transfers across: a TCP handshake between its two hosts takes at least the round trip it
//! adds, and an HTTP download across it arrives whole.

use std::time::Duration;

use pyrsia_tests::netns::Lab;

#[test]
fn the_delayed_pair_adds_its_round_trip_and_carries_a_download() {
    let work = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let one_way = Duration::from_millis(10);
    let (a, b, _line) = lab.delayed_pair(["near", "far"], one_way);
    let registry = pyrsia_tests::registry::Registry::start_in(&work.path().join("registry"), &a);
    let image = pyrsia_tests::image::push_large_image(work.path(), &registry.authority(), 4 << 20);
    let digest = image.layers[0].blob.digest;
    let out = b
        .command("curl")
        .args(["-sf", "-o"])
        .arg(work.path().join("fetched"))
        .args(["-w", "%{time_connect}"])
        .arg(format!(
            "{}/v2/library/large/blobs/{digest}",
            registry.lab_url(&a)
        ))
        .output()
        .expect("curl");
    assert!(out.status.success(), "{out:?}");
    let connect: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        connect >= 2.0 * one_way.as_secs_f64(),
        "the handshake took {connect} s, less than the round trip the line adds"
    );
    assert!(connect < 1.0, "the handshake took {connect} s");
    let fetched = std::fs::read(work.path().join("fetched")).unwrap();
    assert_eq!(pyrsia_core::digest::Digest::sha256(&fetched), digest);
}
