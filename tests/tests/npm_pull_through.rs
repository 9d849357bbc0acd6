//! Issue 15, npm: `npm install` through the node's `/npm/` with only `--registry` changed.
//! The upstream is verdaccio with no uplink; a scoped package and a package that depends on
//! it are published there by the npm CLI. Phases: online; upstream down; node restarted
//! `--offline`. An upstream whose tarball fails its integrity, or gives only a sha1, gets
//! nothing stored.

use pyrsia_core::package::npm_registry::NPM_ABBREVIATED;
use pyrsia_tests::http::{get, get_full};
use pyrsia_tests::node::Node;
use pyrsia_tests::npm::{Verdaccio, locked_integrity, npm_install, write_package};

fn assert_installed(out: &std::process::Output, what: &str, logs: &dyn Fn() -> String) {
    assert!(
        out.status.success(),
        "{what}: npm install failed\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
}

/// A project that depends on `demo-app@1.0.0`.
fn project(dir: &std::path::Path) -> std::path::PathBuf {
    write_package(dir, "consumer", "0.0.0", &[("demo-app", "1.0.0")]);
    dir.to_path_buf()
}

#[test]
fn npm_installs_through_the_node_online_upstream_down_and_offline() {
    let work = tempfile::tempdir().unwrap();
    let mut upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let lib = work.path().join("src/lib");
    write_package(&lib, "@demo/lib", "1.0.0", &[]);
    upstream.publish(&lib);
    let app = work.path().join("src/app");
    write_package(&app, "demo-app", "1.0.0", &[("@demo/lib", "1.0.0")]);
    upstream.publish(&app);
    // What the upstream says the tarballs' integrity is.
    let upstream_integrity = |name: &str| {
        let doc: serde_json::Value = serde_json::from_str(
            &get(&format!("{}{}", upstream.url(), name.replace('/', "%2f")))
                .unwrap()
                .small_body,
        )
        .unwrap();
        doc["versions"]["1.0.0"]["dist"]["integrity"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (lib_integrity, app_integrity) = (
        upstream_integrity("@demo/lib"),
        upstream_integrity("demo-app"),
    );

    let node_dir = work.path().join("node");
    let upstream_url = upstream.url();
    // Every packument request asks the upstream (no --index-ttl), so that its outage shows.
    let args = ["--npm-upstream", upstream_url.as_str(), "--index-ttl", "0"];
    let node = Node::start(&node_dir, &args);
    let registry = format!("{}/npm/", node.url());
    let verdaccio_log = upstream.log_file();
    let logs = || {
        let upstream = std::fs::read_to_string(&verdaccio_log).unwrap_or_default();
        format!("{}\n----- verdaccio\n{upstream}", node.log())
    };

    // Online.
    let first = project(&work.path().join("p1"));
    let out = npm_install(&registry, &first, &work.path().join("cache1"));
    assert_installed(&out, "online", &logs);
    assert!(first.join("node_modules/@demo/lib/index.js").exists());
    assert!(first.join("node_modules/demo-app/index.js").exists());
    // The lockfile's integrity is the upstream's; the tarballs resolved through the node.
    assert_eq!(locked_integrity(&first, "@demo/lib"), lib_integrity);
    assert_eq!(locked_integrity(&first, "demo-app"), app_integrity);
    let lock = std::fs::read_to_string(first.join("package-lock.json")).unwrap();
    assert!(
        lock.contains(&format!("{registry}@demo%2flib/-/lib-1.0.0.tgz")),
        "{lock}"
    );

    // The packument: abbreviated by Accept, scoped names with %2f, tarballs on the node.
    let doc = get_full(
        &node.authority(),
        "/npm/@demo%2flib",
        &[("Accept", NPM_ABBREVIATED)],
    );
    assert!(
        doc.contains(&format!("Content-Type: {NPM_ABBREVIATED}")),
        "{doc}"
    );
    assert!(doc.contains(&lib_integrity), "{doc}");
    let missing = get(&format!("{registry}no-such-package")).unwrap();
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.small_body.contains("\"error\""), "{missing:?}");

    // The upstream goes down: the last packuments seen, marked stale, and the stored tarballs.
    upstream.stop();
    let second = project(&work.path().join("p2"));
    let out = npm_install(&registry, &second, &work.path().join("cache2"));
    assert_installed(&out, "upstream down", &logs);
    let stale = get_full(&node.authority(), "/npm/demo-app", &[]);
    assert!(stale.starts_with("HTTP/1.1 200"), "{stale}");
    assert!(stale.contains("Warning: 110"), "{stale}");

    // Restarted --offline.
    let mut offline = args.to_vec();
    offline.push("--offline");
    let node = node.restart(&node_dir, &offline);
    let third = project(&work.path().join("p3"));
    let out = npm_install(
        &format!("{}/npm/", node.url()),
        &third,
        &work.path().join("cache3"),
    );
    assert_installed(&out, "offline", &|| node.log());
    assert_eq!(locked_integrity(&third, "@demo/lib"), lib_integrity);
}

#[test]
fn a_tarball_that_fails_its_integrity_is_refused_and_never_stored() {
    let work = tempfile::tempdir().unwrap();
    // The packument's integrity is of other bytes than the tarball served.
    let served = b"not the tarball that was published".to_vec();
    let (server, port) = pyrsia_tests::http::test_server();
    // Version 0.9.0 has only a sha1, which is not trusted.
    let packument = format!(
        r#"{{"name":"evil","dist-tags":{{"latest":"1.0.0"}},"versions":{{
            "1.0.0":{{"name":"evil","version":"1.0.0","dist":{{"tarball":"http://127.0.0.1:{port}/evil/-/evil-1.0.0.tgz","integrity":"sha512-{}"}}}},
            "0.9.0":{{"name":"evil","version":"0.9.0","dist":{{"tarball":"http://127.0.0.1:{port}/evil/-/evil-0.9.0.tgz","shasum":"{}","integrity":"sha1-AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}}}
        }}}}"#,
        "A".repeat(86) + "==",
        "0".repeat(40)
    );
    let body = served.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let response = if request.url().ends_with(".tgz") {
                tiny_http::Response::from_data(body.clone())
            } else {
                tiny_http::Response::from_data(packument.clone().into_bytes())
            };
            let _ = request.respond(response);
        }
    });
    let upstream = format!("http://127.0.0.1:{port}/");
    let node = Node::start(&work.path().join("node"), &["--npm-upstream", &upstream]);
    write_package(
        &work.path().join("p"),
        "consumer",
        "0.0.0",
        &[("evil", "1.0.0")],
    );
    let out = npm_install(
        &format!("{}/npm/", node.url()),
        &work.path().join("p"),
        &work.path().join("cache"),
    );
    assert!(!out.status.success(), "npm must not install tampered bytes");
    let tarball = get(&format!("{}/npm/evil/-/evil-1.0.0.tgz", node.url())).unwrap();
    assert_eq!(tarball.status, 502, "{tarball:?}");
    assert!(tarball.small_body.contains("integrity"), "{tarball:?}");
    let sha1_only = get(&format!("{}/npm/evil/-/evil-0.9.0.tgz", node.url())).unwrap();
    assert_eq!(sha1_only.status, 502, "{sha1_only:?}");
    assert!(
        sha1_only
            .small_body
            .contains("no sha512 or sha256 integrity"),
        "{sha1_only:?}"
    );
    let digest = pyrsia_core::digest::Digest::sha256(&served);
    assert!(!node.stored_blobs().contains(&digest.hex().to_string()));
    assert_eq!(node.temp_files(), 0);
}

#[test]
fn hostile_package_paths_are_refused_without_contacting_the_upstream() {
    let work = tempfile::tempdir().unwrap();
    // The upstream never answers and counts connections: none may be made.
    let sentinel = pyrsia_tests::tarpit::Tarpit::start();
    let node = Node::start(
        &work.path().join("node"),
        &[
            "--npm-upstream",
            &sentinel.url(),
            "--pypi-upstream",
            &format!("{}/simple/", sentinel.url()),
        ],
    );
    for path in [
        "/npm/..%2f..%2fetc%2fpasswd",
        "/npm/.hidden",
        "/npm/@scope",
        "/npm/a%20b",
        "/npm/node_modules",
        "/npm/x/-/..%2fescape.tgz",
        "/npm/x/-/not-a-tarball.txt",
        "/npm/x/-/a/b.tgz",
        "/pypi/simple/..%2f..%2fetc/",
        "/pypi/simple/-bad-/",
        "/pypi/simple/a%00b/",
        "/pypi/files/x/",
        "/pypi/files/x/a/b.whl",
        "/pypi/files/-x-/f.whl",
        "/pypi/files/x/..%2fx-1.0.tar.gz",
        "/pypi/files/x/other-1.0.tar.gz",
        "/pypi/files/x/x-1.0.exe",
        "/pypi/nothing-here",
    ] {
        let answer = get(&format!("{}{path}", node.url())).unwrap();
        assert_eq!(answer.status, 404, "{path}: {answer:?}");
    }
    // Writes are refused on both APIs.
    for path in ["/npm/x", "/pypi/simple/x/"] {
        let (status, _) =
            pyrsia_tests::http::raw(&node.authority(), &format!("PUT {path} HTTP/1.1"));
        assert_eq!(status, 405, "PUT {path}");
    }
    assert_eq!(
        sentinel.connections(),
        0,
        "no hostile path reached the upstream"
    );
    assert!(node.stored_blobs().is_empty());
    assert!(!node.log().contains("panicked"), "{}", node.log());
}
