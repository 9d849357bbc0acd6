//! Issue 15: package files travel between nodes. A PyPI file (asked for by the sha256 its
//! page gives) and an npm tarball of a committed version (asked for by the sha256 the log
//! committed, and checked against the packument's integrity as well) come from the peers that
//! hold them before the upstream is asked, so each crosses the upstream link once per
//! network, and a node whose upstream is down still installs what its peers hold. A peer
//! that serves junk for a file is struck and the file comes from the upstream. A Maven
//! release's pom and jar come from peers by the sha256 the log committed for the release.

use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_tests::http::get;
use pyrsia_tests::maven::{StaticRepo, deploy, mvn_get};
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::npm::{Verdaccio, locked_integrity, npm_install, write_package};
use pyrsia_tests::output::assert_ok;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::pypi::{PypiServer, make_wheel, pip_install, sha256_hex};
use pyrsia_tests::raw_peer::LyingProvider;

#[test]
fn pypi_files_cross_the_upstream_once_per_network_and_come_from_peers_when_it_is_down() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let dep = make_wheel(&packages, "demo-dep", "1.0", &[]);
    let pkg = make_wheel(&packages, "demo-pkg", "1.0", &["demo-dep>=1.0"]);
    let mut upstream = PypiServer::start(&packages, work.path());
    let simple = upstream.simple_url();
    let a = Node::start(&work.path().join("a"), &["--pypi-upstream", &simple]);
    let a_address = a.p2p_address();
    let b = Node::start(
        &work.path().join("b"),
        &["--pypi-upstream", &simple, "--peer", &a_address],
    );
    let c = Node::start(
        &work.path().join("c"),
        &["--pypi-upstream", &simple, "--peer", &a_address],
    );
    wait_mesh(&[&a, &b, &c]);
    let pypi_log = upstream.log_file();
    let logs = || {
        let pypi = std::fs::read_to_string(&pypi_log).unwrap_or_default();
        format!(
            "===== a\n{}\n===== b\n{}\n===== c\n{}\n----- pypiserver\n{pypi}",
            a.log(),
            b.log(),
            c.log()
        )
    };
    let index = |node: &Node| format!("{}/pypi/simple/", node.url());

    // A installs from the upstream; B installs the same afterwards: its pages come from the
    // upstream, its files from A.
    assert_ok(
        &pip_install(&index(&a), &work.path().join("ta"), &["demo-pkg"]),
        "pip install through A",
        &logs,
    );
    for wheel in [&dep, &pkg] {
        let digest = Digest::parse(&format!("sha256:{}", sha256_hex(wheel))).unwrap();
        assert!(a.wait_stored(&digest), "{}", logs());
    }
    assert_ok(
        &pip_install(&index(&b), &work.path().join("tb"), &["demo-pkg"]),
        "pip install through B",
        &logs,
    );
    let file_fetches = |file: &str| {
        std::fs::read_to_string(&pypi_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /packages/") && l.contains(file))
            .count()
    };
    for file in [
        "demo_pkg-1.0-py3-none-any.whl",
        "demo_dep-1.0-py3-none-any.whl",
    ] {
        assert_eq!(
            file_fetches(file),
            1,
            "{file} crossed the upstream once\n{}",
            logs()
        );
    }
    assert_eq!(
        b.log()
            .matches("PyPI file fetched from peers and verified")
            .count(),
        2,
        "{}",
        logs()
    );

    // C has seen the pages but none of the files; then the upstream goes down. The pages
    // are served as kept (stale), the files come from the peers.
    for project in ["demo-pkg", "demo-dep"] {
        let page = pyrsia_tests::http::get(&format!("{}{project}/", index(&c))).unwrap();
        assert_eq!(page.status, 200, "{page:?}");
    }
    upstream.stop();
    let target = work.path().join("tc");
    assert_ok(
        &pip_install(&index(&c), &target, &["demo-pkg"]),
        "pip install through C with the upstream down",
        &logs,
    );
    assert_eq!(
        std::fs::read_to_string(target.join("demo_dep/__init__.py")).unwrap(),
        "VERSION = '1.0'\n"
    );
    assert!(
        c.log()
            .contains("PyPI file fetched from peers and verified"),
        "{}",
        logs()
    );
    assert!(c.metric("peer_fetches") >= 2, "{}", logs());
}

/// A stranger that connects to `node`, announces `blobs` (digest and true size) and answers
/// every piece with junk of the right size; returned once `node` lists it as a peer.
fn connected_liar(node: &Node, blobs: Vec<(Digest, u64)>) -> LyingProvider {
    let liar = LyingProvider::start(&node.p2p_address(), blobs, 0);
    wait_until(
        "the liar connects",
        Duration::from_secs(10),
        &|| node.log(),
        || node.connected_peers().iter().any(|p| p == liar.peer_id()),
    );
    std::thread::sleep(Duration::from_secs(1));
    liar
}

/// An npm registry started in `work` that holds `@demo/lib` 1.0.0.
fn registry_with_lib(work: &std::path::Path) -> Verdaccio {
    let upstream = Verdaccio::start(&work.join("verdaccio"));
    let lib = work.join("src/lib");
    write_package(&lib, "@demo/lib", "1.0.0", &[]);
    upstream.publish(&lib);
    upstream
}

#[test]
fn npm_tarballs_of_committed_versions_come_from_peers() {
    let work = tempfile::tempdir().unwrap();
    let upstream = registry_with_lib(work.path());
    let registry = upstream.url();
    let a = Node::start(&work.path().join("a"), &["--npm-upstream", &registry]);
    let logs = |nodes: &[&Node]| {
        nodes
            .iter()
            .map(|n| n.log())
            .collect::<Vec<_>>()
            .join("\n=====\n")
    };
    let project = |dir: &str| {
        let dir = work.path().join(dir);
        write_package(&dir, "consumer", "0.0.0", &[("@demo/lib", "1.0.0")]);
        dir
    };
    let out = npm_install(
        &format!("{}/npm/", a.url()),
        &project("p1"),
        &work.path().join("cache1"),
    );
    assert_ok(&out, "npm install through A", &|| a.log());
    a.wait_package_committed("npm", "@demo/lib", "1.0.0", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not committed\n{}", a.log()));

    // B replicates A's log, so it knows the committed sha256 of the tarball and asks the
    // peers for it.
    let b = Node::start_follower(&work.path().join("b"), &a, &["--npm-upstream", &registry]);
    wait_mesh(&[&a, &b]);
    b.wait_package_committed("npm", "@demo/lib", "1.0.0", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("B did not replicate the commit\n{}", logs(&[&a, &b])));
    let out = npm_install(
        &format!("{}/npm/", b.url()),
        &project("p2"),
        &work.path().join("cache2"),
    );
    assert_ok(&out, "npm install through B", &|| logs(&[&a, &b]));
    let b_log = b.log();
    assert!(
        b_log.contains("npm tarball fetched from peers and verified"),
        "{}",
        logs(&[&a, &b])
    );
    assert!(
        !b_log.contains("npm tarball fetched from upstream"),
        "{}",
        logs(&[&a, &b])
    );
}

#[test]
fn a_node_that_never_saw_a_packument_installs_committed_versions_from_the_log_and_its_peers() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let lib = work.path().join("src/lib");
    write_package(&lib, "@demo/lib", "1.0.0", &[]);
    upstream.publish(&lib);
    let app = work.path().join("src/app");
    write_package(&app, "demo-app", "1.0.0", &[("@demo/lib", "^1.0.0")]);
    upstream.publish(&app);
    let registry = upstream.url();
    let a = Node::start(&work.path().join("a"), &["--npm-upstream", &registry]);
    let project = |dir: &str| {
        let dir = work.path().join(dir);
        write_package(&dir, "consumer", "0.0.0", &[("demo-app", "latest")]);
        dir
    };
    let p1 = project("p1");
    let out = npm_install(
        &format!("{}/npm/", a.url()),
        &p1,
        &work.path().join("cache1"),
    );
    assert_ok(&out, "npm install through A", &|| a.log());
    for name in ["@demo/lib", "demo-app"] {
        a.wait_package_committed("npm", name, "1.0.0", Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{name} not committed\n{}", a.log()));
        assert!(
            a.wait_package_tag("npm", name, "latest", "1.0.0", Duration::from_secs(60)),
            "{name}'s latest not observed\n{}",
            a.log()
        );
    }

    // B follows A's log, and its own upstream is unreachable: it never saw a packument.
    let b = Node::start_follower(
        &work.path().join("b"),
        &a,
        &["--npm-upstream", "http://127.0.0.1:9/"],
    );
    wait_mesh(&[&a, &b]);
    let logs = || format!("{}\n=====\n{}", a.log(), b.log());
    for name in ["@demo/lib", "demo-app"] {
        assert!(
            b.wait_package_tag("npm", name, "latest", "1.0.0", Duration::from_secs(60)),
            "B did not replicate {name}'s tag\n{}",
            logs()
        );
    }
    // npm installs `demo-app@latest` and its dependency through B: packuments made from the
    // log (the manifests read from the committed tarballs, which come from A), marked stale.
    let p2 = project("p2");
    let out = npm_install(
        &format!("{}/npm/", b.url()),
        &p2,
        &work.path().join("cache2"),
    );
    assert_ok(&out, "npm install through B", &logs);
    for name in ["@demo/lib", "demo-app"] {
        assert_eq!(
            locked_integrity(&p2, name),
            locked_integrity(&p1, name),
            "{name}: the integrity B computed is the registry's\n{}",
            logs()
        );
    }
    let b_log = b.log();
    assert!(
        b_log.contains("serving a packument made from the log"),
        "{}",
        logs()
    );
    assert!(
        b_log.contains("fetched from peers and verified"),
        "{}",
        logs()
    );
    let served = pyrsia_tests::http::get_full(&b.authority(), "/npm/demo-app", &[]);
    assert!(served.contains("Warning: 110"), "{served}");
    // Each packument was made once, however often npm and the tarball lookups asked for it:
    // the log did not change meanwhile.
    for name in ["@demo/lib", "demo-app"] {
        let made = b
            .log()
            .lines()
            .filter(|l| {
                l.contains("serving a packument made from the log")
                    && l.contains(&format!("name={name} "))
            })
            .count();
        assert_eq!(made, 1, "{name}\n{}", logs());
    }
    // A package the log never committed is still unavailable, not invented.
    let missing = get(&format!("{}/npm/left-pad", b.url())).unwrap();
    assert_eq!(missing.status, 503, "{}", missing.small_body);
}

#[test]
fn a_packument_is_not_made_from_junk_a_peer_serves_for_a_committed_tarball() {
    let work = tempfile::tempdir().unwrap();
    let upstream = registry_with_lib(work.path());
    let registry = upstream.url();
    let mut a = Node::start(&work.path().join("a"), &["--npm-upstream", &registry]);
    let tarball = get(&format!("{}/npm/@demo%2flib/-/lib-1.0.0.tgz", a.url())).unwrap();
    assert_eq!(tarball.status, 200, "{}", tarball.small_body);
    a.wait_package_committed("npm", "@demo/lib", "1.0.0", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("not committed\n{}", a.log()));
    let b = Node::start_follower(
        &work.path().join("b"),
        &a,
        &["--npm-upstream", "http://127.0.0.1:9/"],
    );
    b.wait_package_committed("npm", "@demo/lib", "1.0.0", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("B did not replicate the commit\n{}", b.log()));
    // The honest holder goes away; a stranger announces the committed tarball and answers
    // every piece with junk of the right size.
    a.kill();
    let liar = connected_liar(&b, vec![(tarball.body_digest, tarball.body_len)]);
    // The liar's provider record may reach B after the first ask (CI saw it once): B asks
    // its peers again on each request, and every answer must refuse the junk.
    let struck = format!("peer misbehaved peer={}", liar.peer_id());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let served = get(&format!("{}/npm/@demo%2flib", b.url())).unwrap();
        assert_eq!(served.status, 503, "{}\n{}", served.small_body, b.log());
        if b.log().contains(&struck) || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = b.log();
    assert!(log.contains(&struck), "the liar is struck\n{log}");
    assert!(
        !log.contains("serving a packument made from the log"),
        "{log}"
    );
    assert_eq!(b.temp_files(), 0, "nothing of the junk is left");
    assert!(
        !b.stored_blobs()
            .contains(&tarball.body_digest.hex().to_string())
    );
}

#[test]
fn maven_files_of_committed_releases_come_from_peers_when_the_upstream_is_down() {
    const LIB_JAR: &[u8] = b"PK\x03\x04 demo-lib's classes";
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    deploy(&root, "com.example", "demo-lib", "1.0", &[], LIB_JAR);
    deploy(
        &root,
        "com.example",
        "demo-app",
        "1.0",
        &["com.example:demo-lib:1.0"],
        b"PK\x03\x04 demo-app's classes",
    );
    let mut upstream = StaticRepo::start(&root, work.path());
    let url = upstream.url();
    let a = Node::start(&work.path().join("a"), &["--maven-upstream", &url]);
    let (out, _) = mvn_get(
        &format!("{}/maven2/", a.url()),
        &work.path().join("m1"),
        "com.example:demo-app:1.0",
    );
    assert_ok(&out, "mvn through A", &|| a.log());
    for artifact in ["com.example:demo-app", "com.example:demo-lib"] {
        a.wait_package_committed("maven", artifact, "1.0", Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{artifact} not committed\n{}", a.log()));
        assert!(
            a.wait_package_tag("maven", artifact, "release", "1.0", Duration::from_secs(60)),
            "{artifact}'s release not observed\n{}",
            a.log()
        );
    }

    // The upstream goes down. B never saw the repository; it replicates A's log, so it knows
    // the committed pom and jar of each release and asks the peers for them.
    upstream.stop();
    let b = Node::start_follower(&work.path().join("b"), &a, &["--maven-upstream", &url]);
    wait_mesh(&[&a, &b]);
    let logs = || format!("===== a\n{}\n===== b\n{}", a.log(), b.log());
    for artifact in ["com.example:demo-app", "com.example:demo-lib"] {
        b.wait_package_committed("maven", artifact, "1.0", Duration::from_secs(60))
            .unwrap_or_else(|| panic!("B did not replicate {artifact}\n{}", logs()));
    }
    let (out, local) = mvn_get(
        &format!("{}/maven2/", b.url()),
        &work.path().join("m2"),
        "com.example:demo-app:1.0",
    );
    assert_ok(&out, "mvn through B, upstream down", &logs);
    assert_eq!(
        std::fs::read(local.join("com/example/demo-lib/1.0/demo-lib-1.0.jar")).unwrap(),
        LIB_JAR
    );
    let b_log = b.log();
    assert!(
        b_log.contains("Maven artifact fetched from peers and verified against the log's commit"),
        "{}",
        logs()
    );
    assert!(!b_log.contains("fetched from upstream"), "{}", logs());
    // B never saw the artifact's metadata: it makes it from the log (committed versions, the
    // observed release), marked stale, and a version range resolves among them.
    let metadata = pyrsia_tests::http::get_full(
        &b.authority(),
        "/maven2/com/example/demo-lib/maven-metadata.xml",
        &[],
    );
    assert!(metadata.contains("Warning: 110"), "{metadata}");
    assert!(
        metadata.contains("<release>1.0</release>") && metadata.contains("<version>1.0</version>"),
        "{metadata}"
    );
    let (out, _) = mvn_get(
        &format!("{}/maven2/", b.url()),
        &work.path().join("m3"),
        "com.example:demo-lib:[1.0,)",
    );
    assert_ok(&out, "mvn resolves a range through B, upstream down", &logs);
    assert!(
        b.log().contains("serving Maven metadata made from the log"),
        "{}",
        logs()
    );
    // Its checksum files are made from the bytes the commit covers (the upstream's are out
    // of reach) and agree with the upstream's.
    let sha1 = get(&format!(
        "{}/maven2/com/example/demo-lib/1.0/demo-lib-1.0.jar.sha1",
        b.url()
    ))
    .unwrap();
    assert_eq!(
        (sha1.status, sha1.small_body.as_str()),
        (
            200,
            std::fs::read_to_string(root.join("com/example/demo-lib/1.0/demo-lib-1.0.jar.sha1"))
                .unwrap()
                .as_str()
        )
    );
    // A classifier no commit covers is not asked of the peers.
    let sources = get(&format!(
        "{}/maven2/com/example/demo-lib/1.0/demo-lib-1.0-sources.jar",
        b.url()
    ))
    .unwrap();
    assert_eq!(sources.status, 503, "{sources:?}");
}

#[test]
fn a_peer_serving_junk_for_a_committed_maven_release_is_struck_and_nothing_is_stored() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    let jar = deploy(
        &root,
        "com.example",
        "demo-lib",
        "1.0",
        &[],
        b"PK honest classes",
    );
    let pom = root.join("com/example/demo-lib/1.0/demo-lib-1.0.pom");
    let mut upstream = StaticRepo::start(&root, work.path());
    let url = upstream.url();
    let mut a = Node::start(&work.path().join("a"), &["--maven-upstream", &url]);
    let jar_path = "/maven2/com/example/demo-lib/1.0/demo-lib-1.0.jar";
    let served = get(&format!("{}{jar_path}", a.url())).unwrap();
    assert_eq!(served.status, 200, "{served:?}");
    a.wait_package_committed(
        "maven",
        "com.example:demo-lib",
        "1.0",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|| panic!("not committed\n{}", a.log()));

    // B learns the commit from A; then A and the upstream are gone, and a stranger
    // announces both committed files and answers with junk of the right size.
    upstream.stop();
    let b = Node::start_follower(&work.path().join("b"), &a, &["--maven-upstream", &url]);
    wait_mesh(&[&a, &b]);
    b.wait_package_committed(
        "maven",
        "com.example:demo-lib",
        "1.0",
        Duration::from_secs(60),
    )
    .unwrap_or_else(|| panic!("B did not replicate the commit\n{}", b.log()));
    a.kill();
    let files: Vec<(Digest, u64)> = [&pom, &jar]
        .iter()
        .map(|f| {
            let digest = Digest::parse(&format!("sha256:{}", sha256_hex(f))).unwrap();
            (digest, std::fs::metadata(f).unwrap().len())
        })
        .collect();
    let liar = connected_liar(&b, files.clone());

    // The jar is refused as unavailable, never served as junk; the liar is struck.
    let refused = get(&format!("{}{jar_path}", b.url())).unwrap();
    assert_eq!(refused.status, 503, "{refused:?}\n{}", b.log());
    let log = b.log();
    assert!(
        log.contains(&format!("peer misbehaved peer={}", liar.peer_id())),
        "the liar, the files' only source, is struck\n{log}"
    );
    assert!(b.metric("verification_failures") >= 1, "{log}");
    assert_eq!(b.temp_files(), 0, "nothing of the junk is left");
    let stored = b.stored_blobs();
    for (digest, _) in &files {
        assert!(
            !stored.contains(&digest.hex().to_string()),
            "{digest} stored"
        );
    }
}

#[test]
fn a_peer_serving_junk_for_a_package_file_is_struck_and_costs_the_install_nothing() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let wheel = make_wheel(&packages, "demo-dep", "1.0", &[]);
    let upstream = PypiServer::start(&packages, work.path());
    let victim = Node::start(
        &work.path().join("victim"),
        &["--pypi-upstream", &upstream.simple_url()],
    );
    let digest = Digest::parse(&format!("sha256:{}", sha256_hex(&wheel))).unwrap();
    let size = std::fs::metadata(&wheel).unwrap().len();
    // A stranger announces the wheel and answers every piece with junk of the right size.
    let liar = connected_liar(&victim, vec![(digest, size)]);

    let target = work.path().join("t");
    assert_ok(
        &pip_install(
            &format!("{}/pypi/simple/", victim.url()),
            &target,
            &["demo-dep"],
        ),
        "pip install next to a liar",
        &|| victim.log(),
    );
    assert_eq!(
        std::fs::read_to_string(target.join("demo_dep/__init__.py")).unwrap(),
        "VERSION = '1.0'\n"
    );
    let log = victim.log();
    assert!(
        log.contains(&format!("peer misbehaved peer={}", liar.peer_id())),
        "the liar, the file's only source, is struck\n{log}"
    );
    assert!(
        log.contains("PyPI file fetched from upstream and verified"),
        "{log}"
    );
    assert!(victim.metric("verification_failures") >= 1, "{log}");
    assert_eq!(victim.temp_files(), 0, "nothing of the junk is left");
    assert!(victim.stored_blobs().contains(&sha256_hex(&wheel)));
}
