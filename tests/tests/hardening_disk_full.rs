//! Issue 14, item 5 (PROTOCOL case 26): a full disk. The node's data dir is a 128 MiB tmpfs.
//! An upstream whose blob body is endless (chunked, no length) makes the download stop short
//! of the disk's reserve: the pull fails cleanly and `tmp/` is left empty. With the disk all
//! but full (a filler file), pulls fail cleanly too; once the filler is gone, the node stores
//! and commits again, without a restart. And when another process fills the disk to the last
//! byte, the writes of the log's and the store's databases fail (fjall poisons them); once
//! space returns the node reopens them and writes again, without a restart.

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

/// Fills the filesystem holding `path` to the last byte; returns the filler's size.
fn fill_completely(path: &std::path::Path) -> u64 {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let mut written = 0u64;
    for chunk in [1usize << 20, 4096, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).is_ok() {
            written += chunk as u64;
        }
    }
    let _ = file.sync_all();
    written
}

#[test]
fn databases_poisoned_by_a_full_disk_are_reopened_once_space_returns() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let (small, multi) = (&images[0], &images[1]);
    let node_dir = work.path().join("node");
    // Only the data dir is on the small disk: the node's own log file stays readable.
    let tmpfs = Tmpfs::mount(&node_dir.join("data"), "64m");
    // A sole member re-signs its checkpoint every second: the log writes all the time.
    let upstream = registry.url();
    let args = ["--upstream", &upstream, "--checkpoint-refresh", "1"];
    let node = Node::start(&node_dir, &args);
    let out = skopeo_copy(&node.authority(), &small.reference, &work.path().join("c1"));
    assert_succeeded(&out, "a pull before the disk fills", &node.log());
    let small_index = node
        .wait_committed("docker.io/library/small", &small.digest)
        .expect("committed");

    // Another process fills the disk to the last byte: the databases' next writes fail.
    let filler = node_dir.join("data/filler");
    fill_completely(&filler);
    // A cached pull still answers (its access-time write fails underneath).
    let out = skopeo_copy(&node.authority(), &small.reference, &work.path().join("c2"));
    assert_succeeded(&out, "a cached pull on a full disk", &node.log());
    // Cached blobs keep being served while every access-time write fails, past the slack
    // of the journal's last page.
    let blob = format!(
        "{}/v2/library/small/blobs/{}",
        node.url(),
        small.layers[0].blob.digest
    );
    let started = Instant::now();
    while !node.log().contains("could not record blob access") {
        let cached = get(&blob).expect("GET a cached blob");
        assert_eq!(cached.status, 200, "a cached blob on a full disk");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            node.log()
        );
    }
    wait_until(
        "the log's writes fail on the full disk",
        Duration::from_secs(20),
        &|| node.log(),
        || {
            node.log()
                .contains("could not re-sign the latest checkpoint")
        },
    );
    let health = get(&format!("{}/healthz", node.url())).expect("GET /healthz");
    assert_eq!(health.status, 200, "the node stays up");
    wait_until(
        "the metrics report both databases failing",
        Duration::from_secs(10),
        &|| node.log(),
        || node.gauge("databases_failing") == Some(2),
    );

    // Space returns: the databases are reopened and the node stores and commits again.
    std::fs::remove_file(&filler).unwrap();
    wait_until(
        "the log database is reopened",
        Duration::from_secs(20),
        &|| node.log(),
        || {
            let log = node.log();
            log.contains("the log database failed a write and was reopened")
                && log.contains("the store's database failed a write and was reopened")
        },
    );
    wait_until(
        "the metrics report no database failing",
        Duration::from_secs(10),
        &|| node.log(),
        || node.gauge("databases_failing") == Some(0),
    );
    let out = skopeo_copy(&node.authority(), &multi.reference, &work.path().join("c3"));
    assert_succeeded(&out, "the pull once space returned", &node.log());
    let multi_index = node
        .wait_committed("docker.io/team/multi", &multi.digest)
        .unwrap_or_else(|| panic!("committed without a restart\n{}", node.log()));
    assert!(multi_index > small_index);

    // What was written around the failure is consistent: a restart opens the same log.
    let size = node.log_status()["size"].as_u64().expect("log size");
    let node = node.restart(&node_dir, &args);
    assert!(
        node.log_status()["size"].as_u64().expect("log size") >= size,
        "the log kept every committed entry across the restart\n{}",
        node.log()
    );
    assert_eq!(
        node.wait_committed("docker.io/team/multi", &multi.digest),
        Some(multi_index)
    );
    // The store's records survived too: with the upstream gone, both images come from cache.
    registry.stop();
    for (image, copy) in [(small, "c4"), (multi, "c5")] {
        let out = skopeo_copy(&node.authority(), &image.reference, &work.path().join(copy));
        assert_succeeded(&out, "a cached pull after the restart", &node.log());
    }
    drop(node);
    drop(tmpfs);
}
