//! Issue 15, deliver 3 for Maven: releases in the transparency log. A release file served by
//! `/maven2/` requests the release's verification; the builder (`maven-fetch/v1`) fetches the
//! pom and the main artifact its packaging names from its own upstream, checks each against
//! the repository's checksum file and attests their sha256. `pyrsia verify maven --gav`
//! checks a release against the log; `pyrsia inspect-log maven --gav` lists it;
//! `--verified-only` serves only the files a commit lists (with checksum files made from
//! the verified bytes) and refuses classifiers, metadata and uncommitted releases.
//!
//! A sole member commits by itself; a network of four commits through consensus, and one
//! member whose repository serves another jar under the same coordinates (with a checksum
//! that matches it) does not change what is committed.

use std::time::Duration;

use pyrsia_tests::http::{get, post};
use pyrsia_tests::maven::{StaticRepo, deploy, mvn_get, write_sha1};
use pyrsia_tests::members::Members;
use pyrsia_tests::node::Node;
use pyrsia_tests::output::{assert_ok, text};
use pyrsia_tests::pypi::sha256_hex;
use pyrsia_tests::pyrsia;

const COMMIT_WAIT: Duration = Duration::from_secs(60);
const LIB_JAR: &[u8] = b"PK\x03\x04 demo-lib's classes";
const APP_JAR: &[u8] = b"PK\x03\x04 demo-app's classes";

/// The repository path of a file of `artifact` 1.0 in group `com.example`.
fn path(artifact: &str, file: &str) -> String {
    format!("com/example/{artifact}/1.0/{file}")
}

#[test]
fn a_sole_member_commits_maven_releases_verifies_them_and_serves_only_them_when_verified_only() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    let lib_jar = deploy(&root, "com.example", "demo-lib", "1.0", &[], LIB_JAR);
    deploy(
        &root,
        "com.example",
        "demo-app",
        "1.0",
        &["com.example:demo-lib:1.0"],
        APP_JAR,
    );
    deploy(&root, "com.example", "demo-new", "1.0", &[], b"PK new");
    // demo-lib 2.0 exists upstream too, and the metadata lists both; nobody asks for 2.0.
    deploy(
        &root,
        "com.example",
        "demo-lib",
        "2.0",
        &[],
        b"PK demo-lib 2.0",
    );
    let metadata = root.join("com/example/demo-lib/maven-metadata.xml");
    std::fs::write(
        &metadata,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata>\n  <groupId>com.example</groupId>\n  \
         <artifactId>demo-lib</artifactId>\n  <versioning>\n    <latest>2.0</latest>\n    \
         <release>2.0</release>\n    <versions>\n      <version>1.0</version>\n      \
         <version>2.0</version>\n    </versions>\n  </versioning>\n</metadata>\n",
    )
    .unwrap();
    write_sha1(&metadata);
    deploy(&root, "com.example", "demo-built", "1.0", &[], b"PK built");
    let sources = root.join(path("demo-lib", "demo-lib-1.0-sources.jar"));
    std::fs::write(&sources, b"PK sources").unwrap();
    write_sha1(&sources);
    let upstream = StaticRepo::start(&root, work.path());
    let upstream_url = upstream.url();
    let node_dir = work.path().join("node");
    let node = Node::start(&node_dir, &["--maven-upstream", &upstream_url]);
    let logs = || node.log();

    // mvn resolves through the node; each release it downloaded a file of is committed.
    let mirror = format!("{}/maven2/", node.url());
    let (out, _) = mvn_get(&mirror, &work.path().join("m1"), "com.example:demo-app:1.0");
    assert_ok(&out, "mvn dependency:get", &logs);
    for artifact in ["com.example:demo-app", "com.example:demo-lib"] {
        node.wait_package_committed("maven", artifact, "1.0", COMMIT_WAIT)
            .unwrap_or_else(|| panic!("{artifact}:1.0 not committed\n{}", node.log()));
    }

    // The light-client check: the commit, the pom and the jar the pom's packaging names.
    let out = pyrsia(&[
        "verify",
        "maven",
        "--gav",
        "com.example:demo-lib:1.0",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "pyrsia verify maven", &logs);
    let printed = text(&out);
    assert!(printed.contains("maven-fetch/v1"), "{printed}");
    assert!(
        printed.contains(&format!(
            "demo-lib-1.0.jar ({} bytes) sha256:{}: committed: ok",
            LIB_JAR.len(),
            sha256_hex(&lib_jar)
        )),
        "{printed}"
    );
    assert!(printed.contains("demo-lib-1.0.pom ("), "{printed}");
    assert!(printed.contains("2 file(s)"), "{printed}");
    // A release nobody committed is not verified; a snapshot is refused before asking.
    let out = pyrsia(&[
        "verify",
        "maven",
        "--gav",
        "com.example:demo-new:1.0",
        "--node",
        &node.url(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not committed"), "{}", text(&out));
    let out = pyrsia(&["verify", "maven", "--gav", "com.example:x:1.0-SNAPSHOT"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // The log's record, as CSV: both files' sha256 in the commit.
    let out = pyrsia(&[
        "inspect-log",
        "maven",
        "--gav",
        "com.example:demo-lib",
        "--format",
        "csv",
        "--fields",
        "kind,ecosystem,name,version,build_type,outputs",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "inspect-log maven", &logs);
    let csv = text(&out);
    assert!(
        csv.contains("commit,maven,com.example:demo-lib,1.0,maven-fetch/v1,sha256:"),
        "{csv}"
    );
    let pom = root.join(path("demo-lib", "demo-lib-1.0.pom"));
    for file in [&lib_jar, &pom] {
        assert!(csv.contains(&sha256_hex(file)), "{csv}");
    }
    assert!(
        csv.contains("build-request,maven,com.example:demo-lib,1.0"),
        "{csv}"
    );

    // Restarted serving verified files only.
    let node = node.restart(
        &node_dir,
        &["--maven-upstream", &upstream_url, "--verified-only"],
    );
    let logs = || node.log();
    let mirror = format!("{}/maven2/", node.url());
    let (out, local) = mvn_get(&mirror, &work.path().join("m2"), "com.example:demo-app:1.0");
    assert_ok(&out, "mvn dependency:get (verified only)", &logs);
    assert_eq!(
        std::fs::read(local.join(path("demo-lib", "demo-lib-1.0.jar"))).unwrap(),
        LIB_JAR
    );
    // The checksum files are made from the verified bytes, and agree with the upstream's.
    let sha1 = get(&format!(
        "{mirror}{}",
        path("demo-lib", "demo-lib-1.0.jar.sha1")
    ))
    .unwrap();
    assert_eq!(sha1.status, 200, "{sha1:?}");
    assert_eq!(
        sha1.small_body,
        std::fs::read_to_string(format!("{}.sha1", lib_jar.display())).unwrap()
    );
    let sha256 = get(&format!(
        "{mirror}{}",
        path("demo-lib", "demo-lib-1.0.jar.sha256")
    ))
    .unwrap();
    assert_eq!(
        (sha256.status, sha256.small_body.as_str()),
        (200, sha256_hex(&lib_jar).as_str())
    );
    // The metadata lists the committed version only (2.0 is newer upstream, never committed),
    // and its checksum is the filtered document's.
    let listed = get(&format!("{mirror}com/example/demo-lib/maven-metadata.xml")).unwrap();
    assert_eq!(listed.status, 200, "{listed:?}");
    assert!(
        listed.small_body.contains("<version>1.0</version>"),
        "{listed:?}"
    );
    assert!(!listed.small_body.contains("2.0"), "{listed:?}");
    let listed_file = work.path().join("listed-metadata.xml");
    std::fs::write(&listed_file, &listed.small_body).unwrap();
    write_sha1(&listed_file);
    let listed_sha1 = get(&format!(
        "{mirror}com/example/demo-lib/maven-metadata.xml.sha1"
    ))
    .unwrap();
    assert_eq!(
        (listed_sha1.status, listed_sha1.small_body),
        (
            200,
            std::fs::read_to_string(format!("{}.sha1", listed_file.display())).unwrap()
        )
    );
    // mvn resolves a version range among the committed versions: 1.0, not 2.0.
    let (out, local) = mvn_get(
        &mirror,
        &work.path().join("m3"),
        "com.example:demo-lib:[1.0,)",
    );
    assert_ok(&out, "mvn dependency:get of a range (verified only)", &logs);
    assert!(local.join(path("demo-lib", "demo-lib-1.0.jar")).exists());
    assert!(!local.join("com/example/demo-lib/2.0").exists());
    // What no commit covers is refused: md5, a classifier, a signature, a snapshot's metadata.
    for file in [
        path("demo-lib", "demo-lib-1.0.jar.md5"),
        path("demo-lib", "demo-lib-1.0-sources.jar"),
        path("demo-lib", "demo-lib-1.0.jar.asc"),
        "com/example/demo-lib/1.1-SNAPSHOT/maven-metadata.xml".to_string(),
    ] {
        let refused = get(&format!("{mirror}{file}")).unwrap();
        assert_eq!(refused.status, 404, "{file}: {refused:?}");
        if file.contains("SNAPSHOT") || file.ends_with(".asc") {
            assert!(
                refused.small_body.contains("never committed")
                    || refused.small_body.contains("not committed"),
                "{file}: {refused:?}"
            );
        }
    }
    // An uncommitted release's file is refused and its verification requested: once
    // committed, it is served.
    let new_jar = format!("{mirror}{}", path("demo-new", "demo-new-1.0.jar"));
    let refused = get(&new_jar).unwrap();
    assert_eq!(refused.status, 404, "{refused:?}");
    assert!(
        refused
            .small_body
            .contains("verification of the release was requested"),
        "{refused:?}"
    );
    node.wait_package_committed("maven", "com.example:demo-new", "1.0", COMMIT_WAIT)
        .unwrap_or_else(|| panic!("demo-new:1.0 not committed\n{}", node.log()));
    let served = get(&new_jar).unwrap();
    assert_eq!((served.status, served.small_body.as_str()), (200, "PK new"));

    // `pyrsia build` asks for a release nobody downloaded and follows it until committed.
    let out = pyrsia(&[
        "build",
        "maven",
        "--gav",
        "com.example:demo-built:1.0",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "pyrsia build maven", &logs);
    assert!(
        text(&out).contains("committed    com.example:demo-built:1.0: entry #"),
        "{}",
        text(&out)
    );
    // A release the upstream does not have is not requested; nor is a snapshot.
    let size = node.log_status()["size"].as_u64();
    for (query, status) in [
        (
            "ecosystem=maven&name=com.example%3Amissing&version=1.0",
            404,
        ),
        (
            "ecosystem=maven&name=com.example%3Ademo-lib&version=1.0-SNAPSHOT",
            400,
        ),
        ("ecosystem=maven&name=com.example&version=1.0", 400),
    ] {
        let url = format!("{}/pyrsia/packages/request?{query}", node.url());
        let (got, body) = post(&url).unwrap();
        assert_eq!(got, status, "{query}: {body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        node.log_status()["size"].as_u64(),
        size,
        "nothing was requested"
    );
}

#[test]
fn a_release_the_repository_changed_after_the_node_stored_it_is_not_committed() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    deploy(&root, "com.example", "demo-lib", "1.0", &[], LIB_JAR);
    // The pom is missing at first, so the release cannot be verified yet.
    let pom = root.join(path("demo-lib", "demo-lib-1.0.pom"));
    std::fs::remove_file(&pom).unwrap();
    std::fs::remove_file(format!("{}.sha1", pom.display())).unwrap();
    let upstream = StaticRepo::start(&root, work.path());
    let node = Node::start(
        &work.path().join("node"),
        &["--maven-upstream", &upstream.url()],
    );
    let jar_url = format!(
        "{}/maven2/{}",
        node.url(),
        path("demo-lib", "demo-lib-1.0.jar")
    );
    let first = get(&jar_url).unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    pyrsia_tests::process::wait_until(
        "the first verification fails on the missing pom",
        COMMIT_WAIT,
        &|| node.log(),
        || node.log().contains("package verification failed"),
    );

    // The repository now publishes the pom and another jar under the same release.
    deploy(
        &root,
        "com.example",
        "demo-lib",
        "1.0",
        &[],
        b"PK\x03\x04 swapped classes",
    );
    // Each download asks for the release's verification again (the node remembers the
    // failed pom download for a moment, so the first ones may still see that).
    pyrsia_tests::process::wait_until(
        "a later verification sees the change",
        COMMIT_WAIT,
        &|| node.log(),
        || {
            let again = get(&jar_url).unwrap();
            assert_eq!(again.status, 200, "{again:?}");
            std::thread::sleep(std::time::Duration::from_millis(500));
            node.log().contains("the repository changed a release")
        },
    );
    // Neither the stored bytes nor the new ones are committed for the release.
    assert_eq!(
        node.wait_package_committed(
            "maven",
            "com.example:demo-lib",
            "1.0",
            std::time::Duration::from_secs(2)
        ),
        None,
        "{}",
        node.log()
    );
}

#[test]
fn four_members_commit_a_maven_release_through_consensus_despite_a_lying_repository() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("upstream");
    let jar = deploy(&root, "com.example", "demo-lib", "1.0", &[], LIB_JAR);
    let pom = root.join(path("demo-lib", "demo-lib-1.0.pom"));
    let upstream = StaticRepo::start(&root, work.path());
    // Member 1's repository serves another jar under the same coordinates, with the sha1
    // that matches it, so that its own checks pass.
    let liar_root = work.path().join("liar");
    deploy(
        &liar_root,
        "com.example",
        "demo-lib",
        "1.0",
        &[],
        b"PK\x03\x04 a backdoor",
    );
    let liar_logs = work.path().join("liar-logs");
    std::fs::create_dir_all(&liar_logs).unwrap();
    let liar = StaticRepo::start(&liar_root, &liar_logs);
    let (honest_url, liar_url) = (upstream.url(), liar.url());
    let members = Members::start(work.path(), "http://127.0.0.1:9", 4, &|i| {
        let url = if i == 1 { &liar_url } else { &honest_url };
        vec!["--maven-upstream".into(), url.clone()]
    });
    let logs = || members.logs();

    // Requested through member 2, with nothing downloaded.
    let out = pyrsia(&[
        "build",
        "maven",
        "--gav",
        "com.example:demo-lib:1.0",
        "--node",
        &members.nodes[2].url(),
        "--timeout",
        "90",
    ]);
    assert_ok(&out, "pyrsia build maven", &logs);
    for (i, node) in members.nodes.iter().enumerate() {
        node.wait_package_committed(
            "maven",
            "com.example:demo-lib",
            "1.0",
            Duration::from_secs(90),
        )
        .unwrap_or_else(|| panic!("member {i}: demo-lib:1.0 not committed\n{}", logs()));
    }
    // What was committed is the honest repository's pom and jar.
    let out = pyrsia(&[
        "inspect-log",
        "maven",
        "--gav",
        "com.example:demo-lib:1.0",
        "--format",
        "csv",
        "--fields",
        "kind,outputs",
        "--node",
        &members.nodes[1].url(),
    ]);
    assert_ok(&out, "inspect-log maven", &logs);
    let mut expected = [sha256_hex(&jar), sha256_hex(&pom)].map(|h| format!("sha256:{h}"));
    expected.sort();
    assert!(
        text(&out).contains(&format!("commit,{} {}", expected[0], expected[1])),
        "{}\n{}",
        text(&out),
        logs()
    );
    // A light client trusting only the genesis verifies it through a member whose
    // repository is honest.
    let out = pyrsia(&[
        "verify",
        "maven",
        "--gav",
        "com.example:demo-lib:1.0",
        "--genesis",
        members.genesis.to_str().unwrap(),
        "--node",
        &members.nodes[3].url(),
    ]);
    assert_ok(&out, "pyrsia verify maven", &logs);
    assert!(text(&out).contains("maven-fetch/v1 by "), "{}", text(&out));
    // Through the member whose repository lies, the light client sees the jar it serves is
    // not the committed one.
    let out = pyrsia(&[
        "verify",
        "maven",
        "--gav",
        "com.example:demo-lib:1.0",
        "--genesis",
        members.genesis.to_str().unwrap(),
        "--node",
        &members.nodes[1].url(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("demo-lib-1.0.jar"), "{}", text(&out));
}
