//! The operator's limits on what a node gives the network, against real node processes:
//! `--max-upload-rate` on the node that holds a blob and `--max-download-rate` on the node
//! that fetches it each hold an 8 MiB transfer between them to the rate (measured: the
//! transfer cannot finish sooner than the rate allows after its one-second burst), and the
//! blob still arrives whole and verified; `--max-peers 1` refuses a second peer's connection, the
//! refused peer backs off its dials, and connects once a place frees.
//! The limits show in `/status` (and so on the status page).

use std::process::Command;
use std::time::{Duration, Instant};

use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

const BLOB: u64 = 8 << 20;
const RATE: u64 = 2 << 20;

/// Fetches `url` with curl until it answers 200 (a node answers 503 until its peer's
/// provider record arrives); returns how long the successful transfer took and its size.
fn fetch_when_available(url: &str, context: &dyn Fn() -> String) -> (Duration, u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = Instant::now();
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
            ])
            .arg(url)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace();
        if words.next() == Some("200") {
            let size = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            return (started.elapsed(), size);
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered 200 ({text})\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The least time `BLOB` bytes take at `RATE` after a one-second burst, with 10% slack for
/// clock granularity.
fn least_time() -> Duration {
    Duration::from_secs_f64((BLOB - RATE) as f64 / RATE as f64 * 0.9)
}

#[test]
fn upload_and_download_rates_and_max_peers_hold_between_real_nodes() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), BLOB);
    let layer = image.layers[0].blob.digest.to_string();
    let rate = RATE.to_string();
    let holder = Node::start(
        &work.path().join("holder"),
        &["--upstream", &registry.url(), "--max-upload-rate", &rate],
    );
    let status: serde_json::Value = serde_json::from_str(
        &pyrsia_tests::http::get(&format!("{}/status", holder.url()))
            .unwrap()
            .small_body,
    )
    .unwrap();
    assert_eq!(
        status["network"]["limits"]["max_upload_rate"], RATE,
        "{status}"
    );
    let (took, size) = fetch_when_available(
        &format!("{}/v2/library/large/blobs/{layer}", holder.url()),
        &|| holder.log(),
    );
    assert_eq!(size, image.layers[0].blob.size);
    assert!(took < least_time(), "the upstream is not limited: {took:?}");
    registry.stop();

    // The holder serves its peer no faster than --max-upload-rate.
    let fetcher = Node::start(
        &work.path().join("fetcher"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &holder.p2p_address(),
        ],
    );
    fetcher.wait_connected(&holder.peer_id());
    let (took, size) = fetch_when_available(
        &format!("{}/v2/library/large/blobs/{layer}", fetcher.url()),
        &|| fetcher.log(),
    );
    assert_eq!(size, image.layers[0].blob.size, "the blob arrived whole");
    pyrsia_tests::process::wait_until(
        "the fetcher logs the blob as fetched from peers",
        Duration::from_secs(5),
        &|| fetcher.log(),
        || {
            fetcher
                .log()
                .contains("blob fetched from peers and verified")
        },
    );
    assert!(
        took >= least_time(),
        "8 MiB at 2 MiB/s after a 2 MiB burst took only {took:?}"
    );
    eprintln!(
        "upload-limited transfer: {took:?} ({:.2} MiB/s)",
        BLOB as f64 / 1048576.0 / took.as_secs_f64()
    );

    // A fetcher with --max-download-rate takes no faster from an unlimited holder.
    let holder = holder.restart(
        &work.path().join("holder"),
        &["--upstream", &registry.url()],
    );
    let limited = Node::start(
        &work.path().join("limited"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &holder.p2p_address(),
            "--max-download-rate",
            &rate,
        ],
    );
    limited.wait_connected(&holder.peer_id());
    let (took, size) = fetch_when_available(
        &format!("{}/v2/library/large/blobs/{layer}", limited.url()),
        &|| limited.log(),
    );
    assert_eq!(size, image.layers[0].blob.size, "the blob arrived whole");
    assert!(
        took >= least_time(),
        "8 MiB under --max-download-rate 2M took only {took:?}"
    );
    eprintln!(
        "download-limited transfer: {took:?} ({:.2} MiB/s)",
        BLOB as f64 / 1048576.0 / took.as_secs_f64()
    );

    // --max-peers 1: the first peer connects, the second is refused.
    let guarded = Node::start(
        &work.path().join("guarded"),
        &["--upstream", &registry.url(), "--max-peers", "1"],
    );
    let mut first = Node::start(
        &work.path().join("first"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &guarded.p2p_address(),
        ],
    );
    first.wait_connected(&guarded.peer_id());
    let second = Node::start(
        &work.path().join("second"),
        &[
            "--upstream",
            &registry.url(),
            "--peer",
            &guarded.p2p_address(),
        ],
    );
    // The second node dials at start and again every 5 s; give it two tries.
    std::thread::sleep(Duration::from_secs(6));
    let peers = guarded.connected_peers();
    assert_eq!(
        peers,
        vec![first.peer_id()],
        "--max-peers 1 admits one peer:\n{}",
        guarded.log()
    );
    assert!(
        !second.connected_peers().contains(&guarded.peer_id()),
        "the second peer was refused"
    );

    // The refused node holds back its dials (core's redial back-off): it says so, and the guarded
    // node is not dialled once per try of every subsystem (before: two connections every 5 s).
    let second_log = second.log();
    let attempts = second_log
        .lines()
        .filter(|line| line.contains("peer connected") && line.contains(&guarded.peer_id()))
        .count();
    assert!(
        second_log.contains("not dialling it again for a while"),
        "the refused node backs off:\n{second_log}"
    );
    assert!(
        (1..=3).contains(&attempts),
        "{attempts} accepted-then-closed connections in 6 s:\n{second_log}"
    );

    // Back-off never locks a peer out: once the guarded node has a free place, the second connects
    // (bootstrap redial every 5 s, the back-off's wait is at most 30 s and here still 2 s).
    first.kill();
    guarded.wait_connected(&second.peer_id());
}
