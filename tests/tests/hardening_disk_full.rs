//! Issue 14, item 5 (PROTOCOL case 26): a full disk. The node's data dir is a 128 MiB tmpfs.
//! An upstream whose blob body is endless (chunked, no length) makes the download stop short
//! of the disk's reserve: the pull fails cleanly and `tmp/` is left empty. With the disk all
//! but full (a filler file), pulls fail cleanly too; once the filler is gone, the node stores
//! and commits again, without a restart.

use std::io::Read;
use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::fs::Tmpfs;
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::{free_port, wait_until};
use pyrsia_tests::registry::Registry;

/// Bytes without end.
struct Endless;

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        buf.fill(b'x');
        Ok(buf.len())
    }
}

/// An upstream that answers `/v2/` and sends every blob as an endless chunked body.
fn endless_upstream() -> u16 {
    let port = free_port();
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("endless upstream");
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            std::thread::spawn(move || {
                if request.url().contains("/blobs/") {
                    let response = tiny_http::Response::new(
                        tiny_http::StatusCode(200),
                        Vec::new(),
                        Endless,
                        None,
                        None,
                    );
                    let _ = request.respond(response);
                } else {
                    let _ = request.respond(tiny_http::Response::from_string("{}"));
                }
            });
        }
    });
    port
}

fn wait_tmp_empty(node: &Node) {
    wait_until(
        "tmp/ is emptied of the partial download",
        Duration::from_secs(10),
        &|| node.log(),
        || node.temp_files() == 0,
    );
}

#[test]
fn a_full_disk_fails_pulls_cleanly_and_the_node_stores_again_once_space_returns() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let (small, multi) = (&images[0], &images[1]);
    let endless = format!("endless.example=http://127.0.0.1:{}", endless_upstream());
    let node_dir = work.path().join("node");
    let tmpfs = Tmpfs::mount(&node_dir, "128m");
    let node = Node::start(
        &node_dir,
        &["--upstream", &registry.url(), "--upstream", &endless],
    );
    let out = skopeo_copy(&node.authority(), &small.reference, &work.path().join("c1"));
    assert_succeeded(&out, "a pull before the disk fills", &node.log());
    assert!(
        node.wait_committed("docker.io/library/small", &small.digest)
            .is_some()
    );

    // An endless body: the download stops short of the reserve, the client sees a failure.
    let url = format!(
        "{}/v2/library/endless/blobs/{}?ns=endless.example",
        node.url(),
        Digest::sha256(b"endless")
    );
    let started = Instant::now();
    let endless_pull = get(&url).expect("GET");
    assert!(
        endless_pull.status != 200 || endless_pull.body_error.is_some(),
        "an endless body must not be served as the blob: {endless_pull:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    wait_tmp_empty(&node);
    assert!(
        tmpfs.available() > 64 << 20,
        "the partial download's space came back: {} bytes free",
        tmpfs.available()
    );
    assert!(
        node.log().contains("the disk is nearly full"),
        "the download was stopped for the disk\n{}",
        node.log()
    );

    // The disk all but full: a pull fails cleanly.
    let filler = node_dir.join("filler");
    let fill = tmpfs.available().saturating_sub(4 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).unwrap();
    let out = skopeo_copy(&node.authority(), &multi.reference, &work.path().join("c2"));
    assert!(!out.status.success(), "a pull with no room must fail");
    wait_tmp_empty(&node);
    let health = get(&format!("{}/healthz", node.url())).expect("GET /healthz");
    assert_eq!(health.status, 200, "the node stays up");

    // Space returns: the same pull succeeds and is committed, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let out = skopeo_copy(&node.authority(), &multi.reference, &work.path().join("c3"));
    assert_succeeded(&out, "the pull once space returned", &node.log());
    assert!(
        node.wait_committed("docker.io/team/multi", &multi.digest)
            .is_some(),
        "committed again\n{}",
        node.log()
    );
    drop(node);
    drop(tmpfs);
}
