//! Issue 15, Maven: `mvn dependency:get` through the node's `/maven2/` with only a `<mirror>`
//! in `settings.xml`. The upstream is a static repository directory served by Python's
//! `http.server`; the artifacts are written by the test with their `.sha1` files, one
//! depending on the other. Phases: online; upstream down; node restarted `--offline`. An
//! upstream whose jar does not match its checksum file, or that publishes none, gets nothing
//! stored.

use pyrsia_core::digest::Digest;
use pyrsia_tests::http::get;
use pyrsia_tests::maven::{StaticRepo, deploy, mvn_get};
use pyrsia_tests::node::Node;

const LIB_JAR: &[u8] = b"PK\x03\x04 demo-lib's classes";
const APP_JAR: &[u8] = b"PK\x03\x04 demo-app's classes";

fn assert_resolved(out: &std::process::Output, what: &str, logs: &dyn Fn() -> String) {
    assert!(
        out.status.success(),
        "{what}: mvn failed\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
}

/// The jars `mvn` put in the local repository are the upstream's bytes.
fn assert_jars(local: &std::path::Path) {
    for (artifact, bytes) in [("demo-lib", LIB_JAR), ("demo-app", APP_JAR)] {
        let jar = local.join(format!("com/example/{artifact}/1.0/{artifact}-1.0.jar"));
        assert_eq!(
            std::fs::read(&jar).unwrap_or_default(),
            bytes,
            "{}",
            jar.display()
        );
    }
}

#[test]
fn mvn_resolves_through_the_node_online_upstream_down_and_offline() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    deploy(&root, "com.example", "demo-lib", "1.0", &[], LIB_JAR);
    deploy(
        &root,
        "com.example",
        "demo-app",
        "1.0",
        &["com.example:demo-lib:1.0"],
        APP_JAR,
    );
    let mut upstream = StaticRepo::start(&root, work.path());
    let node_dir = work.path().join("node");
    let upstream_url = upstream.url();
    let args = ["--maven-upstream", upstream_url.as_str()];
    let node = Node::start(&node_dir, &args);
    let mirror = format!("{}/maven2/", node.url());
    let logs = || node.log();

    // Online: the artifact and its dependency, from the upstream through the node.
    let first = work.path().join("m1");
    let (out, local) = mvn_get(&mirror, &first, "com.example:demo-app:1.0");
    assert_resolved(&out, "online", &logs);
    assert_jars(&local);
    assert_eq!(upstream.fetches("demo-lib-1.0.jar"), 1);
    // Checksums and metadata are passed through as the upstream wrote them.
    let sha1 = get(&format!(
        "{mirror}com/example/demo-lib/1.0/demo-lib-1.0.jar.sha1"
    ))
    .unwrap();
    assert_eq!(sha1.status, 200, "{sha1:?}");
    assert_eq!(
        sha1.small_body,
        std::fs::read_to_string(root.join("com/example/demo-lib/1.0/demo-lib-1.0.jar.sha1"))
            .unwrap()
    );
    let metadata = get(&format!("{mirror}com/example/demo-lib/maven-metadata.xml")).unwrap();
    assert_eq!(metadata.status, 200, "{metadata:?}");
    assert!(
        metadata.small_body.contains("<release>1.0</release>"),
        "{metadata:?}"
    );
    // Paths outside the layout are refused before the upstream is asked.
    for path in [
        "../etc/passwd",
        "com/example/demo-lib/1.0/other-1.0.jar",
        "x",
    ] {
        let refused = get(&format!("{mirror}{path}")).unwrap();
        assert_eq!(refused.status, 404, "{path}: {refused:?}");
    }

    // The upstream goes down: the stored artifacts and the documents last seen.
    upstream.stop();
    let (out, local) = mvn_get(&mirror, &work.path().join("m2"), "com.example:demo-app:1.0");
    assert_resolved(&out, "upstream down", &logs);
    assert_jars(&local);
    let stale = get(&format!("{mirror}com/example/demo-lib/maven-metadata.xml")).unwrap();
    assert_eq!(stale.status, 200, "{stale:?}");
    let missing = get(&format!(
        "{mirror}com/example/never-seen/1.0/never-seen-1.0.jar"
    ))
    .unwrap();
    assert_eq!(
        missing.status, 503,
        "nothing cached, upstream down: {missing:?}"
    );

    // Restarted --offline: the same, without ever asking the upstream.
    let mut offline_args = args.to_vec();
    offline_args.push("--offline");
    let node = node.restart(&node_dir, &offline_args);
    let (out, local) = mvn_get(
        &format!("{}/maven2/", node.url()),
        &work.path().join("m3"),
        "com.example:demo-app:1.0",
    );
    assert_resolved(&out, "offline", &|| node.log());
    assert_jars(&local);
}

#[test]
fn artifacts_that_fail_or_lack_their_checksum_are_refused_and_never_stored() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    let jar = deploy(&root, "com.evil", "tampered", "1.0", &[], b"honest bytes");
    // The jar is replaced after its checksum was written.
    std::fs::write(&jar, b"tampered bytes").unwrap();
    let unsummed = deploy(&root, "com.evil", "unsummed", "1.0", &[], b"no checksum");
    std::fs::remove_file(format!("{}.sha1", unsummed.display())).unwrap();
    // A timestamped snapshot file never changes either: it is checked like a release.
    let snapshot_dir = root.join("com/evil/snap/1.1-SNAPSHOT");
    std::fs::create_dir_all(&snapshot_dir).unwrap();
    let snapshot = snapshot_dir.join("snap-1.1-20261130.120000-1.jar");
    std::fs::write(&snapshot, b"honest snapshot").unwrap();
    pyrsia_tests::maven::write_sha1(&snapshot);
    std::fs::write(&snapshot, b"tampered snapshot").unwrap();
    let upstream = StaticRepo::start(&root, work.path());
    let node = Node::start(
        &work.path().join("node"),
        &["--maven-upstream", &upstream.url()],
    );
    let mirror = format!("{}/maven2/", node.url());
    let refused = get(&format!(
        "{mirror}com/evil/snap/1.1-SNAPSHOT/snap-1.1-20261130.120000-1.jar"
    ))
    .unwrap();
    assert_eq!(refused.status, 502, "{refused:?}");

    let (out, local) = mvn_get(&mirror, &work.path().join("m"), "com.evil:tampered:1.0");
    assert!(!out.status.success(), "mvn must not take tampered bytes");
    assert!(
        !local
            .join("com/evil/tampered/1.0/tampered-1.0.jar")
            .exists()
    );
    let tampered = get(&format!("{mirror}com/evil/tampered/1.0/tampered-1.0.jar")).unwrap();
    assert_eq!(tampered.status, 502, "{tampered:?}");
    assert!(
        tampered.small_body.contains("does not match its .sha1"),
        "{tampered:?}"
    );
    let unchecked = get(&format!("{mirror}com/evil/unsummed/1.0/unsummed-1.0.jar")).unwrap();
    assert_eq!(unchecked.status, 502, "{unchecked:?}");
    assert!(unchecked.small_body.contains("no sha512, sha256 or sha1"));
    let stored = node.stored_blobs();
    for bytes in [&b"tampered bytes"[..], b"no checksum", b"tampered snapshot"] {
        let hex = Digest::sha256(bytes).hex().as_str().to_string();
        assert!(!stored.contains(&hex), "nothing unverified is stored");
    }
    assert_eq!(node.temp_files(), 0);
    assert!(node.metric("verification_failures") >= 1);
}
