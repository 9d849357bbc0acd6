//! The status page at `GET /`, rendered by headless Chromium (Debian's) against a real node:
//! after skopeo pulls an image through it, the page shows the pull with its source and
//! verification state, the cache against --max-disk, the upstream, a connected peer, the
//! transparency log; after the upstream goes away, a failed pull shows among the errors and
//! the upstream as down. A screenshot is kept in `target/test-artifacts/status-page.png`.

use std::path::Path;
use std::process::Command;

use pyrsia_tests::clients::{assert_succeeded, remote_digest, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

/// Chromium's DOM of `url` after its scripts ran for a few seconds of virtual time, and a
/// screenshot of it at `screenshot` when given.
fn render(url: &str, screenshot: Option<&Path>) -> String {
    let mut command = Command::new("chromium");
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--virtual-time-budget=3000",
        "--window-size=1280,1100",
    ]);
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let out = command.arg(url).output().expect("chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        pyrsia_tests::output_text(&out)
    );
    // What the page shows, without its script (whose text holds every label).
    let dom = String::from_utf8_lossy(&out.stdout);
    dom.split("<script>").next().unwrap_or_default().to_string()
}

/// The rendered rows of the table body `id`.
fn table<'d>(dom: &'d str, id: &str) -> &'d str {
    let start = dom
        .find(&format!("<tbody id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id}:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tbody>").unwrap_or(rest.len())]
}

#[test]
fn status_page_shows_the_nodes_real_state_in_chromium() {
    let work = tempfile::tempdir().unwrap();
    let mut registry = Registry::start(&work.path().join("registry"));
    push_standard_images(work.path(), &registry.authority());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--max-disk", "1G"],
    );
    let peer = Node::start(
        &work.path().join("peer"),
        &["--upstream", &registry.url(), "--peer", &node.p2p_address()],
    );
    node.wait_connected(&peer.peer_id());

    let out = skopeo_copy(
        &node.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo team/multi", &node.log());
    let digest = remote_digest(&registry.authority(), "team/multi:multi").to_string();

    let page = format!("{}/", node.url());
    let dom = render(&page, None);
    assert!(dom.contains(">live<"), "the script fetched /status:\n{dom}");
    let pulls = table(&dom, "pulls-body");
    for expected in [
        ">team/multi<", // the pull's repository
        &digest[..19],  // its manifest digest, shortened
        ">digest ✓",    // its verification state
    ] {
        assert!(
            pulls.contains(expected),
            "the pulls lack {expected:?}:\n{pulls}"
        );
    }
    assert!(
        pulls.contains(">upstream<") || pulls.contains(">peers<"),
        "a first pull names where its bytes came from:\n{pulls}"
    );
    for expected in [
        "of 1.0 GiB (--max-disk)",          // cache use against the budget
        "1 (standalone), this node is one", // the log's members
    ] {
        assert!(
            dom.contains(expected),
            "the page lacks {expected:?}:\n{dom}"
        );
    }
    assert!(
        table(&dom, "upstreams-body").contains(&registry.url()),
        "{dom}"
    );
    assert!(table(&dom, "peers-body").contains(&peer.peer_id()), "{dom}");

    // The same blob again comes from the cache; the upstream gone, an uncached image fails.
    let out = skopeo_copy(
        &node.authority(),
        "team/multi:multi",
        &work.path().join("copy2"),
    );
    assert_succeeded(&out, "skopeo team/multi again", &node.log());
    registry.stop();
    let failed = skopeo_copy(
        &node.authority(),
        "library/small:small",
        &work.path().join("copy3"),
    );
    assert!(
        !failed.status.success(),
        "an uncached image cannot be pulled with the upstream down"
    );
    let dom = render(&page, None);
    assert!(
        table(&dom, "pulls-body").contains(">cache<"),
        "a cache hit is shown: {dom}"
    );
    assert!(
        dom.contains("down — serving from cache and peers"),
        "upstream down: {dom}"
    );
    assert!(
        table(&dom, "errors-body").contains("/v2/library/small/manifests/small"),
        "the failed pull is among the recent errors:\n{dom}\n{}",
        node.log()
    );

    let artifacts = pyrsia_tests::target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("status-page.png");
    render(&page, Some(&screenshot));
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "the screenshot is missing or empty ({size} bytes)"
    );
}
