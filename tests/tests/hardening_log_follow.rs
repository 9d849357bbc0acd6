//! Issue 14, item 9 (`--log-from`): a follower checks a checkpoint's quorum before it fetches
//! anything the checkpoint names. A hostile parent serves a real checkpoint whose size it
//! raised (its signatures no longer verify) and counts the entry requests it gets: none.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::{free_port, wait_until};
use pyrsia_tests::registry::Registry;

/// A parent that serves `checkpoint` and counts requests for entries.
fn hostile_parent(checkpoint: String) -> (String, Arc<AtomicUsize>) {
    let port = free_port();
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("hostile parent");
    let entry_requests = Arc::new(AtomicUsize::new(0));
    let counted = entry_requests.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            if request.url().starts_with("/pyrsia/log/entries") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let body = if request.url() == "/pyrsia/log/checkpoint" {
                checkpoint.clone()
            } else {
                String::new()
            };
            let _ = request.respond(tiny_http::Response::from_string(body));
        }
    });
    (format!("http://127.0.0.1:{port}"), entry_requests)
}

#[test]
fn a_follower_fetches_nothing_for_a_checkpoint_without_a_quorum() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let full = Node::start(&work.path().join("full"), &["--upstream", &registry.url()]);
    let out = skopeo_copy(
        &full.authority(),
        &images[0].reference,
        &work.path().join("c"),
    );
    assert_succeeded(&out, "a pull that commits", &full.log());
    full.wait_committed("docker.io/library/small", &images[0].digest)
        .expect("committed");
    let genesis = work.path().join("genesis.bin");
    full.save_genesis(&genesis);

    // The real checkpoint with its size raised by a thousand (within what a follower fetches in
    // one go): its signatures no longer verify.
    let real = get(&format!("{}/pyrsia/log/checkpoint", full.url()))
        .expect("checkpoint")
        .small_body;
    let mut lines: Vec<String> = real.lines().map(str::to_string).collect();
    let size: u64 = lines[1].parse().expect("the size line");
    lines[1] = (size + 1_000).to_string();
    let forged = lines.join("\n") + "\n";
    let (parent, entry_requests) = hostile_parent(forged);

    let lite = Node::start_binary(
        "pyrsia-lite",
        &work.path().join("lite"),
        free_port(),
        &[
            "--genesis",
            genesis.to_str().unwrap(),
            "--log-from",
            &parent,
        ],
    );
    wait_until(
        "the follower judges the checkpoint",
        Duration::from_secs(30),
        &|| lite.log(),
        || lite.log().contains("could not follow the parent's log"),
    );
    assert_eq!(
        entry_requests.load(Ordering::SeqCst),
        0,
        "entries were fetched for a forged checkpoint\n{}",
        lite.log()
    );
    assert!(
        lite.log().contains("checkpoint refused, nothing fetched"),
        "{}",
        lite.log()
    );
}
