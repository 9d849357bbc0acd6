//! Issue 15, PyPI: pip installs through the node's `/pypi/simple/` with only its
//! `--index-url` changed. The upstream is pypiserver on 127.0.0.1. The packages are wheels
//! built by the test: one of them depends on the other.
//!
//! The phases, in order: online; with `--require-hashes`; with the upstream down; with the
//! node restarted `--offline`. An upstream that lies about a file's hash gets nothing
//! stored.

use std::time::Duration;

use pyrsia_core::package::simple::SIMPLE_JSON;
use pyrsia_tests::http::{get, get_full};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::free_port;
use pyrsia_tests::pypi::{PypiServer, make_wheel, pip_install, sha256_hex};

fn assert_installed(out: &std::process::Output, what: &str, logs: &dyn Fn() -> String) {
    assert!(
        out.status.success(),
        "{what}: pip failed\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
}

#[test]
fn pip_installs_through_the_node_online_with_hashes_upstream_down_and_offline() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let dep = make_wheel(&packages, "demo-dep", "1.0", &[]);
    let pkg = make_wheel(&packages, "demo-pkg", "1.0", &["demo-dep>=1.0"]);
    let mut upstream = PypiServer::start(&packages, work.path());
    let node_dir = work.path().join("node");
    let args = ["--pypi-upstream".to_string(), upstream.simple_url()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = Node::start(&node_dir, &args);
    let index = format!("{}/pypi/simple/", node.url());
    let pypi_log = upstream.log_file();
    let logs = || {
        let pypi = std::fs::read_to_string(&pypi_log).unwrap_or_default();
        format!("{}\n----- pypiserver\n{pypi}", node.log())
    };

    // Online: the package and its dependency, from the upstream through the node.
    let first = work.path().join("t1");
    let out = pip_install(&index, &first, &["demo-pkg"]);
    assert_installed(&out, "online", &logs);
    for module in ["demo_pkg", "demo_dep"] {
        let init = std::fs::read_to_string(first.join(module).join("__init__.py")).unwrap();
        assert_eq!(init, "VERSION = '1.0'\n");
    }

    // The page: JSON by Accept with the upstream's hashes and the node's URLs; HTML
    // otherwise; one URL per project (redirects to the normalised name).
    let page = get_full(
        &node.authority(),
        "/pypi/simple/demo-pkg/",
        &[("Accept", SIMPLE_JSON)],
    );
    assert!(
        page.contains(&format!("Content-Type: {SIMPLE_JSON}")),
        "{page}"
    );
    assert!(page.contains("Vary: Accept"), "{page}");
    let json: serde_json::Value =
        serde_json::from_str(page.split_once("\r\n\r\n").unwrap().1).unwrap();
    let file = &json["files"][0];
    assert_eq!(file["filename"], "demo_pkg-1.0-py3-none-any.whl");
    assert_eq!(file["hashes"]["sha256"], sha256_hex(&pkg));
    assert_eq!(
        file["url"],
        "/pypi/files/demo-pkg/demo_pkg-1.0-py3-none-any.whl"
    );
    let html = get_full(&node.authority(), "/pypi/simple/demo-pkg/", &[]);
    assert!(html.contains("text/html"), "{html}");
    assert!(
        html.contains(&format!(
            "href=\"/pypi/files/demo-pkg/demo_pkg-1.0-py3-none-any.whl#sha256={}\"",
            sha256_hex(&pkg)
        )),
        "{html}"
    );
    let moved = get_full(&node.authority(), "/pypi/simple/Demo_Pkg/", &[]);
    assert!(moved.starts_with("HTTP/1.1 301"), "{moved}");
    assert!(
        moved.contains("Location: /pypi/simple/demo-pkg/"),
        "{moved}"
    );
    let missing = get(&format!("{index}no-such-project/")).unwrap();
    assert_eq!(missing.status, 404, "{missing:?}");

    // With --require-hashes: the hashes pip checks are the upstream's.
    let requirements = work.path().join("requirements.txt");
    std::fs::write(
        &requirements,
        format!(
            "demo-pkg==1.0 --hash=sha256:{}\ndemo-dep==1.0 --hash=sha256:{}\n",
            sha256_hex(&pkg),
            sha256_hex(&dep)
        ),
    )
    .unwrap();
    let out = pip_install(
        &index,
        &work.path().join("t2"),
        &["--require-hashes", "-r", requirements.to_str().unwrap()],
    );
    assert_installed(&out, "--require-hashes", &logs);
    // Each file crossed the upstream link once, however many installs.
    let fetches = |file: &str| {
        std::fs::read_to_string(&pypi_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /packages/") && l.contains(file))
            .count()
    };
    assert_eq!(fetches("demo_pkg-1.0-py3-none-any.whl"), 1, "{}", logs());
    assert_eq!(fetches("demo_dep-1.0-py3-none-any.whl"), 1, "{}", logs());

    // The upstream goes down: the last pages seen, marked stale, and the stored files.
    upstream.stop();
    let out = pip_install(&index, &work.path().join("t3"), &["demo-pkg"]);
    assert_installed(&out, "upstream down", &logs);
    let stale = get_full(&node.authority(), "/pypi/simple/demo-pkg/", &[]);
    assert!(stale.starts_with("HTTP/1.1 200"), "{stale}");
    assert!(stale.contains("Warning: 110"), "{stale}");

    // Restarted --offline: the same, without ever asking the upstream.
    let mut offline_args = args.clone();
    offline_args.push("--offline");
    let node = node.restart(&node_dir, &offline_args);
    let out = pip_install(
        &format!("{}/pypi/simple/", node.url()),
        &work.path().join("t4"),
        &["--require-hashes", "-r", requirements.to_str().unwrap()],
    );
    assert_installed(&out, "offline", &|| node.log());
    let root = get_full(
        &node.authority(),
        "/pypi/simple/",
        &[("Accept", SIMPLE_JSON)],
    );
    assert!(root.contains("\"name\":\"demo-dep\""), "{root}");
    assert!(root.contains("\"name\":\"demo-pkg\""), "{root}");
}

/// An upstream whose page gives the hash of one wheel and whose file URL serves another.
fn lying_upstream(advertised: &str, served: Vec<u8>) -> String {
    let port = free_port();
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("lying upstream");
    let page = format!(
        "<html><body>\
         <a href=\"/files/evil-1.0-py3-none-any.whl#sha256={advertised}\">evil-1.0-py3-none-any.whl</a>\
         <a href=\"/files/evil-0.9-py3-none-any.whl\">evil-0.9-py3-none-any.whl</a>\
         </body></html>"
    );
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let response = if request.url().starts_with("/simple/evil") {
                tiny_http::Response::from_data(page.clone().into_bytes())
            } else if request.url().starts_with("/files/") {
                tiny_http::Response::from_data(served.clone())
            } else {
                tiny_http::Response::from_data(Vec::new()).with_status_code(404)
            };
            let _ = request.respond(response);
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

#[test]
fn files_that_do_not_match_or_lack_their_index_hash_are_refused_and_never_stored() {
    let work = tempfile::tempdir().unwrap();
    let honest = make_wheel(&work.path().join("honest"), "evil", "1.0", &[]);
    let tampered = make_wheel(
        &work.path().join("tampered"),
        "evil",
        "1.0",
        &["os-backdoor"],
    );
    let (advertised, served) = (sha256_hex(&honest), std::fs::read(&tampered).unwrap());
    let served_hex = sha256_hex(&tampered);
    assert_ne!(advertised, served_hex);
    let upstream = lying_upstream(&advertised, served);
    let node = Node::start(&work.path().join("node"), &["--pypi-upstream", &upstream]);

    let out = pip_install(
        &format!("{}/pypi/simple/", node.url()),
        &work.path().join("t"),
        &["evil==1.0"],
    );
    assert!(!out.status.success(), "pip must not install tampered bytes");
    assert!(!work.path().join("t/evil").exists());
    let file = get(&format!(
        "{}/pypi/files/evil/evil-1.0-py3-none-any.whl",
        node.url()
    ))
    .unwrap();
    assert_eq!(file.status, 502, "{file:?}");
    assert!(
        file.small_body.contains("does not match the sha256"),
        "{file:?}"
    );
    let unhashed = get(&format!(
        "{}/pypi/files/evil/evil-0.9-py3-none-any.whl",
        node.url()
    ))
    .unwrap();
    assert_eq!(unhashed.status, 502, "{unhashed:?}");
    assert!(unhashed.small_body.contains("no sha256"), "{unhashed:?}");
    std::thread::sleep(Duration::from_millis(200));
    let stored = node.stored_blobs();
    assert!(
        !stored.contains(&advertised),
        "nothing under the advertised hash"
    );
    assert!(!stored.contains(&served_hex), "nor the tampered bytes");
    assert_eq!(node.temp_files(), 0);
    assert!(
        node.log().contains("does not match the sha256"),
        "{}",
        node.log()
    );
}
