//! Issue 15, PyPI: pip installs through the node's `/pypi/simple/` with only its
//! `--index-url` changed. The upstream is pypiserver on 127.0.0.1. The packages are wheels
//! built by the test: one of them depends on the other.
//!
//! The phases, in order: online; with `--require-hashes` (the page answered from memory
//! within `--index-ttl`); with the upstream down; with the node restarted `--offline` (stored
//! pages, marked stale). An upstream that lies about a file's hash gets nothing
//! stored.

use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_core::package::simple::SIMPLE_JSON;
use pyrsia_tests::http::{get, get_full};
use pyrsia_tests::node::Node;
use pyrsia_tests::pypi::{PypiServer, make_wheel, pip_install, sha256_hex};
use pyrsia_tests::tarpit::Tarpit;

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
    // Within --index-ttl (60 s by default) the page is not asked for again either.
    let page_fetches = std::fs::read_to_string(&pypi_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET /simple/demo-pkg/"))
        .count();
    assert_eq!(page_fetches, 1, "{}", logs());

    // The upstream goes down: the pages seen and the stored files.
    upstream.stop();
    let out = pip_install(&index, &work.path().join("t3"), &["demo-pkg"]);
    assert_installed(&out, "upstream down", &logs);

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
    let stale = get_full(&node.authority(), "/pypi/simple/demo-pkg/", &[]);
    assert!(stale.starts_with("HTTP/1.1 200"), "{stale}");
    assert!(
        stale.contains("Warning: 110"),
        "the stored page is marked stale: {stale}"
    );
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
    let (server, port) = pyrsia_tests::http::test_server();
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

#[test]
fn a_tarpit_file_host_gets_one_connection_and_cannot_take_every_worker() {
    let work = tempfile::tempdir().unwrap();
    let good = make_wheel(&work.path().join("good"), "slow", "0.9", &[]);
    let good_bytes = std::fs::read(&good).unwrap();
    let tarpit = Tarpit::start();
    // The page lists one file served at once and one on a host that never answers.
    let (server, port) = pyrsia_tests::http::test_server();
    let page = format!(
        "<a href=\"/files/slow-0.9-py3-none-any.whl#sha256={}\">slow-0.9-py3-none-any.whl</a>\
         <a href=\"{}/slow-1.0-py3-none-any.whl#sha256={}\">slow-1.0-py3-none-any.whl</a>",
        sha256_hex(&good),
        tarpit.url(),
        "ab".repeat(32)
    );
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let body = if request.url().starts_with("/files/") {
                good_bytes.clone()
            } else {
                page.clone().into_bytes()
            };
            let _ = request.respond(tiny_http::Response::from_data(body));
        }
    });
    let upstream = format!("http://127.0.0.1:{port}/simple/");
    let node = Node::start(
        &work.path().join("node"),
        &["--pypi-upstream", &upstream, "--http-workers", "8"],
    );
    let file_url = |name: &str| format!("{}/pypi/files/slow/{name}", node.url());
    let cached = get(&file_url("slow-0.9-py3-none-any.whl")).unwrap();
    assert_eq!(cached.status, 200, "{cached:?}");

    // 16 clients ask for the file on the tarpit at once (released together, so that thread
    // start-up on a loaded machine does not spread them out); each notes when it was answered.
    let started = std::time::Instant::now();
    let together = std::sync::Arc::new(std::sync::Barrier::new(16));
    let stuck: Vec<_> = (0..16)
        .map(|_| {
            let url = file_url("slow-1.0-py3-none-any.whl");
            let together = together.clone();
            std::thread::spawn(move || {
                together.wait();
                let status = get(&url).map(|f| f.status).unwrap_or(0);
                (status, started.elapsed().as_millis())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The node still answers, at once: health, and a cached file.
    for url in [
        format!("{}/healthz", node.url()),
        file_url("slow-0.9-py3-none-any.whl"),
    ] {
        let started = std::time::Instant::now();
        let answer = get(&url).unwrap();
        assert_eq!(answer.status, 200, "{url}: {answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{url} took {:?}",
            started.elapsed()
        );
    }
    let answered: Vec<(u16, u128)> = stuck.into_iter().map(|t| t.join().unwrap()).collect();
    let statuses: Vec<u16> = answered.iter().map(|(s, _)| *s).collect();
    // What a failure needs to be understood: each answer and when (ms), the tarpit's
    // connections, the node's log.
    let context = || {
        format!(
            "answers (status, ms): {answered:?}\ntarpit connections: {}\n{}",
            tarpit.connections(),
            node.log()
        )
    };
    // None got bytes: each request was refused at once (429) or failed when the upstream
    // read timed out (503).
    assert!(
        statuses.iter().all(|&s| s == 429 || s == 503),
        "{}",
        context()
    );
    // At most 7 of the 8 workers ever wait on the download at once (one is kept for other
    // requests). Measured by the node itself: each answer's log line gives when it ended and
    // how long its worker held it, so the overlap of those spans is how many workers waited
    // together. (Client-side times cannot tell: requests no worker had picked up yet, queued
    // while a worker sat on an idle kept-alive connection, get the download's failure the
    // instant it fails, in the same moment as the workers that waited.)
    let waited: Vec<(f64, f64)> = node
        .log()
        .lines()
        .filter(|l| l.contains("target=/pypi/files/slow/slow-1.0") && l.contains("status=503"))
        .filter_map(|line| {
            let time = line.split_whitespace().next()?;
            let clock = time.split_once('T')?.1.trim_end_matches('Z');
            let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
            let end = parts.next()?? * 3600.0 + parts.next()?? * 60.0 + parts.next()??;
            let ms: f64 = line
                .split("ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((end - ms / 1000.0, end))
        })
        .filter(|(start, end)| end - start >= 0.5)
        .collect();
    assert!(
        !waited.is_empty(),
        "no worker waited on the download\n{}",
        context()
    );
    let most_at_once = waited
        .iter()
        .map(|(at, _)| waited.iter().filter(|(s, e)| s <= at && at < e).count())
        .max()
        .unwrap_or(0);
    assert!(
        most_at_once <= 7,
        "{most_at_once} workers waited on the download at once: {waited:?}\n{}",
        context()
    );
    assert_eq!(
        tarpit.connections(),
        1,
        "one download per file, however many ask\n{}",
        context()
    );
}

#[test]
fn pep_658_metadata_is_offered_with_its_hash_and_checked() {
    let work = tempfile::tempdir().unwrap();
    let metadata = b"Metadata-Version: 2.1\nName: meta\nVersion: 1.0\n".to_vec();
    let good = Digest::sha256(&metadata).hex().as_str().to_string();
    let (server, port) = pyrsia_tests::http::test_server();
    // Two wheels advertise metadata; the second's metadata bytes do not match its hash.
    let page = format!(
        "<a href=\"/files/meta-1.0-py3-none-any.whl#sha256={h}\" data-dist-info-metadata=\"sha256={good}\">meta-1.0-py3-none-any.whl</a>\
         <a href=\"/files/meta-0.9-py3-none-any.whl#sha256={h}\" data-core-metadata=\"sha256={bad}\">meta-0.9-py3-none-any.whl</a>\
         <a href=\"/files/meta-0.8-py3-none-any.whl#sha256={h}\" data-core-metadata=\"true\">meta-0.8-py3-none-any.whl</a>",
        h = "cd".repeat(32),
        bad = "ef".repeat(32),
    );
    let served = metadata.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let body = if request.url().ends_with(".metadata") {
                served.clone()
            } else {
                page.clone().into_bytes()
            };
            let _ = request.respond(tiny_http::Response::from_data(body));
        }
    });
    let upstream = format!("http://127.0.0.1:{port}/simple/");
    let node = Node::start(&work.path().join("node"), &["--pypi-upstream", &upstream]);

    let page = get_full(
        &node.authority(),
        "/pypi/simple/meta/",
        &[("Accept", SIMPLE_JSON)],
    );
    let json: serde_json::Value =
        serde_json::from_str(page.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(json["files"][0]["core-metadata"]["sha256"], good.as_str());
    assert_eq!(
        json["files"][0]["dist-info-metadata"]["sha256"],
        good.as_str()
    );
    // Metadata whose hash the upstream does not give is not offered: it could not be checked.
    assert!(json["files"][2].get("core-metadata").is_none(), "{page}");

    let files = format!("{}/pypi/files/meta", node.url());
    let fetched = get(&format!("{files}/meta-1.0-py3-none-any.whl.metadata")).unwrap();
    assert_eq!(fetched.status, 200, "{fetched:?}");
    assert_eq!(fetched.body_digest, Digest::sha256(&metadata));
    let mismatched = get(&format!("{files}/meta-0.9-py3-none-any.whl.metadata")).unwrap();
    assert_eq!(mismatched.status, 502, "{mismatched:?}");
    let unhashed = get(&format!("{files}/meta-0.8-py3-none-any.whl.metadata")).unwrap();
    assert_eq!(unhashed.status, 404, "{unhashed:?}");
    assert!(!node.stored_blobs().contains(&"ef".repeat(32)));
}
