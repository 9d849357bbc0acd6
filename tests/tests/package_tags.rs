//! Issue 15, deliver 3: tag-like observations of packages in the transparency log. An npm
//! packument's dist-tags and a Maven artifact's `maven-metadata.xml` `release` and `latest`
//! are mutable, like image tags: the log records what a tag named, and when, only once the
//! version it names is committed and f+1 members resolved the tag alike at their own
//! upstreams. `pyrsia inspect-log` lists each observation with the version it names; a
//! `--verified-only` node sets a packument's dist-tags from the log, not from the upstream.
//!
//! A sole member observes by itself; in a network of four, a member whose registry points
//! `latest` elsewhere cannot move the tag, and its own word alone is never ordered.

use std::time::Duration;

use pyrsia_tests::http::get;
use pyrsia_tests::maven::{StaticRepo, deploy};
use pyrsia_tests::members::Members;
use pyrsia_tests::node::Node;
use pyrsia_tests::npm::{Verdaccio, npm_install, write_package};
use pyrsia_tests::output::{assert_ok, text};
use pyrsia_tests::pyrsia;

const WAIT: Duration = Duration::from_secs(90);

/// The dist-tags of `name`'s packument as `node` serves it.
fn served_dist_tags(node: &Node, name: &str) -> serde_json::Value {
    let answer = get(&format!("{}/npm/{name}", node.url())).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.small_body);
    let packument: serde_json::Value = serde_json::from_str(&answer.small_body).unwrap();
    packument["dist-tags"].clone()
}

#[test]
fn a_sole_member_observes_npm_dist_tags_and_maven_releases_once_their_versions_are_committed() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let v1 = work.path().join("src/v1");
    write_package(&v1, "demo-tag", "1.0.0", &[]);
    upstream.publish(&v1);
    let repo_root = work.path().join("maven");
    deploy(
        &repo_root,
        "org.example",
        "lib",
        "1.0",
        &[],
        b"PK\x03\x04 lib 1.0",
    );
    let repo = StaticRepo::start(&repo_root, work.path());
    let node_dir = work.path().join("node");
    // Every packument and metadata document is asked of the upstream afresh.
    let args = [
        "--npm-upstream",
        &upstream.url(),
        "--maven-upstream",
        &repo.url(),
        "--index-ttl",
        "0",
    ];
    let node = Node::start(&node_dir, &args);
    let logs = || node.log();

    // npm installs 1.0.0 through the node: the version is committed, then `latest`, which
    // the registry points at it, is observed naming it.
    let project = work.path().join("p1");
    write_package(&project, "consumer", "0.0.0", &[("demo-tag", "^1.0.0")]);
    let out = npm_install(
        &format!("{}/npm/", node.url()),
        &project,
        &work.path().join("cache1"),
    );
    assert_ok(&out, "npm install", &logs);
    assert!(
        node.wait_package_tag("npm", "demo-tag", "latest", "1.0.0", WAIT),
        "latest never observed at 1.0.0\n{}",
        logs()
    );

    // The registry moves `latest` to 2.0.0 and sets `next` to a release candidate. Serving
    // the packument does not move the log's tag: neither version is committed.
    let v2 = work.path().join("src/v2");
    write_package(&v2, "demo-tag", "2.0.0", &[]);
    upstream.publish(&v2);
    let rc = work.path().join("src/rc");
    write_package(&rc, "demo-tag", "3.0.0-rc.1", &[]);
    upstream.publish_tagged(&rc, "next");
    assert_eq!(served_dist_tags(&node, "demo-tag")["latest"], "2.0.0");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        node.package_tag("npm", "demo-tag", "latest").as_deref(),
        Some("1.0.0"),
        "{}",
        logs()
    );
    assert_eq!(node.package_tag("npm", "demo-tag", "next"), None);

    // Once 2.0.0 is downloaded and committed, `latest` moves with it.
    let tarball = get(&format!("{}/npm/demo-tag/-/demo-tag-2.0.0.tgz", node.url())).unwrap();
    assert_eq!(tarball.status, 200, "{}", tarball.small_body);
    assert!(
        node.wait_package_tag("npm", "demo-tag", "latest", "2.0.0", WAIT),
        "latest never moved to 2.0.0\n{}",
        logs()
    );
    let out = pyrsia(&[
        "inspect-log",
        "npm",
        "--package",
        "demo-tag",
        "--format",
        "csv",
        "--fields",
        "kind,tag,version",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "inspect-log npm", &logs);
    let listed = text(&out);
    let tags: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with("tag-observation,"))
        .collect();
    assert_eq!(
        tags,
        [
            "tag-observation,latest,1.0.0",
            "tag-observation,latest,2.0.0"
        ],
        "{listed}"
    );

    // Maven: the metadata names release 1.0; once the release is committed the log says so.
    let base = format!("{}/maven2/org/example/lib", node.url());
    for file in ["maven-metadata.xml", "1.0/lib-1.0.pom", "1.0/lib-1.0.jar"] {
        let answer = get(&format!("{base}/{file}")).unwrap();
        assert_eq!(answer.status, 200, "{file}: {}", answer.small_body);
    }
    for tag in ["release", "latest"] {
        assert!(
            node.wait_package_tag("maven", "org.example:lib", tag, "1.0", WAIT),
            "{tag} never observed at 1.0\n{}",
            logs()
        );
    }

    // A `--verified-only` node sets dist-tags from the log: `latest` as observed, and no
    // `next`, whose version nobody committed, whatever the registry says now.
    let node = node.restart(&node_dir, &[&args[..], &["--verified-only"]].concat());
    let tags = served_dist_tags(&node, "demo-tag");
    assert_eq!(
        tags,
        serde_json::json!({ "latest": "2.0.0" }),
        "{}",
        node.log()
    );
    // npm installs `demo-tag@latest` through it: the version the log's tag names.
    let project = work.path().join("p2");
    write_package(&project, "consumer", "0.0.0", &[("demo-tag", "latest")]);
    let out = npm_install(
        &format!("{}/npm/", node.url()),
        &project,
        &work.path().join("cache2"),
    );
    assert_ok(&out, "npm install under --verified-only", &|| node.log());
    let installed = std::fs::read_to_string(project.join("node_modules/demo-tag/package.json"))
        .expect("demo-tag installed");
    assert!(installed.contains("\"version\": \"2.0.0\""), "{installed}");
}

#[test]
fn four_members_observe_npm_dist_tags_and_a_registry_pointing_latest_elsewhere_cannot_move_it() {
    let work = tempfile::tempdir().unwrap();
    // The honest registry: 1.0.0 is `latest`, 1.1.0 is `next`.
    let upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let v1 = work.path().join("src/v1");
    write_package(&v1, "demo-tag", "1.0.0", &[]);
    let v11 = work.path().join("src/v11");
    write_package(&v11, "demo-tag", "1.1.0", &[]);
    upstream.publish(&v1);
    upstream.publish_tagged(&v11, "next");
    // Member 1's registry has the same tarballs but points `latest` at 1.1.0.
    let liar = Verdaccio::start(&work.path().join("liar"));
    liar.publish(&v1);
    liar.publish(&v11);
    let (registry, liar_registry) = (upstream.url(), liar.url());
    let members = Members::start(work.path(), "http://127.0.0.1:9", 4, &|i| {
        let registry = if i == 1 { &liar_registry } else { &registry };
        // Every packument served is fetched afresh, so serving it reports its tags.
        vec![
            "--npm-upstream".into(),
            registry.clone(),
            "--index-ttl".into(),
            "0".into(),
        ]
    });
    let logs = || members.logs();

    // Both versions are installed through member 0 and committed on every member.
    for (n, version) in ["1.0.0", "1.1.0"].into_iter().enumerate() {
        let project = work.path().join(format!("p{n}"));
        write_package(&project, "consumer", "0.0.0", &[("demo-tag", version)]);
        let out = npm_install(
            &format!("{}/npm/", members.nodes[0].url()),
            &project,
            &work.path().join(format!("cache{n}")),
        );
        assert_ok(&out, "npm install", &logs);
    }
    for (i, node) in members.nodes.iter().enumerate() {
        for version in ["1.0.0", "1.1.0"] {
            node.wait_package_committed("npm", "demo-tag", version, WAIT)
                .unwrap_or_else(|| panic!("member {i}: {version} not committed\n{}", logs()));
        }
    }
    // Member 0 saw `latest` and `next` in the packuments npm read, before either version
    // was committed: once they are, f+1 members resolve the tags alike, so every member's
    // log observes both.
    for (i, node) in members.nodes.iter().enumerate() {
        for (tag, version) in [("latest", "1.0.0"), ("next", "1.1.0")] {
            assert!(
                node.wait_package_tag("npm", "demo-tag", tag, version, WAIT),
                "member {i}: {tag} never observed at {version}\n{}",
                logs()
            );
        }
    }

    // Member 1 serves its registry's packument, whose `latest` names 1.1.0 (committed): it
    // asks the others, who resolve `latest` to 1.0.0 and do not vouch. The tag stays put.
    let served = get(&format!("{}/npm/demo-tag", members.nodes[1].url())).unwrap();
    assert!(
        served.small_body.contains("\"latest\":\"1.1.0\""),
        "{}",
        served.small_body
    );
    std::thread::sleep(Duration::from_secs(8));
    for (i, node) in members.nodes.iter().enumerate() {
        assert_eq!(
            node.package_tag("npm", "demo-tag", "latest").as_deref(),
            Some("1.0.0"),
            "member {i}\n{}",
            logs()
        );
    }
}
