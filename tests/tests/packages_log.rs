//! Issue 15, deliver 3: package versions in the transparency log. A file served by the PyPI
//! or npm mirror requests its version's verification; the builders (`pypi-fetch/v1`,
//! `npm-fetch/v1`) fetch every file of the version from their own upstream, check it against
//! the registry's own digest and attest its sha256. `pyrsia verify` checks a version against
//! the log trusting only the genesis; `pyrsia inspect-log` lists it; `--verified-only` lists
//! and serves only committed versions, and a file of an uncommitted one is refused (and
//! queued).
//!
//! A sole member commits by itself; a network of four commits through consensus, with the
//! selected members fetching from the registry independently, and one member's registry
//! lying about a version's contents does not change what is committed.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pyrsia_core::package::simple::SIMPLE_JSON;
use pyrsia_tests::http::{get, get_full};
use pyrsia_tests::members::Members;
use pyrsia_tests::node::Node;
use pyrsia_tests::npm::{Verdaccio, npm_install, write_package};
use pyrsia_tests::output::{assert_ok, text};
use pyrsia_tests::pypi::{PypiServer, make_wheel, pip_install, sha256_hex};
use pyrsia_tests::pyrsia;

const COMMIT_WAIT: Duration = Duration::from_secs(60);

/// The files a node's project page lists (JSON), by name.
fn listed_files(node: &Node, project: &str) -> Vec<String> {
    let page = get_full(
        &node.authority(),
        &format!("/pypi/simple/{project}/"),
        &[("Accept", SIMPLE_JSON)],
    );
    let json: serde_json::Value =
        serde_json::from_str(page.split_once("\r\n\r\n").map_or("", |(_, b)| b))
            .unwrap_or_default();
    json["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f["filename"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn verify(node: &Node, ecosystem: &str, package: &str, genesis: Option<&Path>) -> Output {
    let url = node.url();
    let mut args = vec!["verify", ecosystem, "--package", package, "--node", &url];
    if let Some(genesis) = genesis {
        args.extend(["--genesis", genesis.to_str().unwrap()]);
    }
    pyrsia(&args)
}

#[test]
fn a_sole_member_commits_pypi_releases_verifies_them_and_serves_only_them_when_verified_only() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    let dep = make_wheel(&packages, "demo-dep", "1.0", &[]);
    let pkg = make_wheel(&packages, "demo-pkg", "1.0", &["demo-dep>=1.0"]);
    let mut upstream = PypiServer::start(&packages, work.path());
    let node_dir = work.path().join("node");
    let node = Node::start(&node_dir, &["--pypi-upstream", &upstream.simple_url()]);
    let logs = || node.log();

    // pip installs through the node; each release it downloaded a file of is committed.
    let out = pip_install(
        &format!("{}/pypi/simple/", node.url()),
        &work.path().join("t1"),
        &["demo-pkg"],
    );
    assert_ok(&out, "pip install", &logs);
    for project in ["demo-pkg", "demo-dep"] {
        node.wait_package_committed("pypi", project, "1.0", COMMIT_WAIT)
            .unwrap_or_else(|| panic!("{project} 1.0 not committed\n{}", node.log()));
    }

    // The light-client check, trusting the node's genesis: the commit and every file.
    let out = verify(&node, "pypi", "Demo_Pkg==1.0", None);
    assert_ok(&out, "pyrsia verify pypi", &logs);
    let printed = text(&out);
    assert!(printed.contains("pypi-fetch/v1"), "{printed}");
    assert!(
        printed.contains(&format!(
            "demo_pkg-1.0-py3-none-any.whl ({} bytes) sha256:{}: committed: ok",
            std::fs::metadata(&pkg).unwrap().len(),
            sha256_hex(&pkg)
        )),
        "{printed}"
    );
    // A version nobody committed is not verified.
    let out = verify(&node, "pypi", "demo-pkg==9.9", None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not committed"), "{}", text(&out));

    // The log's record, as CSV.
    let out = pyrsia(&[
        "inspect-log",
        "pypi",
        "--package",
        "demo-dep",
        "--format",
        "csv",
        "--fields",
        "kind,ecosystem,name,version,build_type,outputs",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "inspect-log", &logs);
    let csv = text(&out);
    assert!(
        csv.contains(&format!(
            "commit,pypi,demo-dep,1.0,pypi-fetch/v1,sha256:{}",
            sha256_hex(&dep)
        )),
        "{csv}"
    );
    assert!(csv.contains("build-request,pypi,demo-dep,1.0"), "{csv}");

    // A new release appears upstream; the node restarts serving verified files only.
    upstream.stop();
    make_wheel(&packages, "demo-pkg", "2.0", &["demo-dep>=1.0"]);
    make_wheel(&packages, "demo-pkg", "3.0", &["demo-dep>=1.0"]);
    let upstream = PypiServer::start(&packages, &work.path().join("upstream2"));
    let node = node.restart(
        &node_dir,
        &["--pypi-upstream", &upstream.simple_url(), "--verified-only"],
    );
    let logs = || node.log();
    // The page lists the committed release only, and offers no metadata (no commit covers it).
    assert_eq!(
        listed_files(&node, "demo-pkg"),
        vec!["demo_pkg-1.0-py3-none-any.whl".to_string()],
        "{}",
        node.log()
    );
    let page = get_full(
        &node.authority(),
        "/pypi/simple/demo-pkg/",
        &[("Accept", SIMPLE_JSON)],
    );
    assert!(!page.contains("metadata"), "{page}");
    // pip resolves among verified releases: 1.0, though 2.0 is newer upstream.
    let target = work.path().join("t2");
    let out = pip_install(
        &format!("{}/pypi/simple/", node.url()),
        &target,
        &["demo-pkg"],
    );
    assert_ok(&out, "pip install (verified only)", &logs);
    assert_eq!(
        std::fs::read_to_string(target.join("demo_pkg/__init__.py")).unwrap(),
        "VERSION = '1.0'\n"
    );
    // The uncommitted release's file is refused, and its verification requested: once
    // committed it is listed and installs.
    let refused = get(&format!(
        "{}/pypi/files/demo-pkg/demo_pkg-2.0-py3-none-any.whl",
        node.url()
    ))
    .unwrap();
    assert_eq!(refused.status, 404, "{refused:?}");
    assert!(
        refused.small_body.contains("verification was requested"),
        "{refused:?}"
    );
    node.wait_package_committed("pypi", "demo-pkg", "2.0", COMMIT_WAIT)
        .unwrap_or_else(|| panic!("demo-pkg 2.0 not committed\n{}", node.log()));
    let out = pip_install(
        &format!("{}/pypi/simple/", node.url()),
        &work.path().join("t3"),
        &["demo-pkg==2.0"],
    );
    assert_ok(&out, "pip install 2.0 once committed", &logs);
    let metadata = get(&format!(
        "{}/pypi/files/demo-pkg/demo_pkg-2.0-py3-none-any.whl.metadata",
        node.url()
    ))
    .unwrap();
    assert_eq!(metadata.status, 404, "{metadata:?}");

    // `pyrsia build` asks for a release nobody downloaded, which the page does not list yet,
    // and follows it until committed.
    let out = pyrsia(&[
        "build",
        "pypi",
        "--package",
        "demo-pkg==3.0",
        "--node",
        &node.url(),
    ]);
    assert_ok(&out, "pyrsia build pypi", &logs);
    let printed = text(&out);
    assert!(
        printed.contains("requested    demo-pkg==3.0 (1 file(s) upstream)"),
        "{printed}"
    );
    assert!(
        printed.contains("committed    demo-pkg==3.0: entry #"),
        "{printed}"
    );
    assert!(listed_files(&node, "demo-pkg").contains(&"demo_pkg-3.0-py3-none-any.whl".to_string()));
    // A version the upstream does not have is not requested; nor are coordinates outside
    // their grammar.
    let size = node.log_status()["size"].as_u64();
    let out = pyrsia(&[
        "build",
        "pypi",
        "--package",
        "demo-pkg==9.9",
        "--node",
        &node.url(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("404"), "{}", text(&out));
    for query in [
        "ecosystem=pypi&name=Demo_Pkg&version=1.0",
        "ecosystem=maven&name=g&version=1",
        "ecosystem=npm&name=x",
    ] {
        let url = format!("{}/pyrsia/packages/request?{query}", node.url());
        let (status, body) = pyrsia_tests::http::post(&url).unwrap();
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("NAME_INVALID"), "{query}: {body}");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        node.log_status()["size"].as_u64(),
        size,
        "nothing was requested"
    );
}

#[test]
fn four_members_commit_npm_versions_through_consensus_and_a_light_client_verifies_them() {
    let work = tempfile::tempdir().unwrap();
    let upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let lib = work.path().join("src/lib");
    write_package(&lib, "@demo/lib", "1.0.0", &[]);
    upstream.publish(&lib);
    let app = work.path().join("src/app");
    write_package(&app, "demo-app", "1.0.0", &[("@demo/lib", "1.0.0")]);
    upstream.publish(&app);
    let registry = upstream.url();
    // Member 1's registry lies: the same name and version, other contents (and the integrity
    // that matches them, so its own checks pass).
    let liar = Verdaccio::start(&work.path().join("liar"));
    let forged = work.path().join("src/forged");
    write_package(&forged, "demo-app", "1.0.0", &[("@demo/lib", "1.0.0")]);
    std::fs::write(forged.join("index.js"), "require('child_process');\n").unwrap();
    liar.publish(&forged);
    let liar_registry = liar.url();
    // No image is pulled: the Docker upstream is never asked.
    let members = Members::start(work.path(), "http://127.0.0.1:9", 4, &|i| {
        let registry = if i == 1 { &liar_registry } else { &registry };
        vec!["--npm-upstream".into(), registry.clone()]
    });
    let logs = || {
        let verdaccio = std::fs::read_to_string(upstream.log_file()).unwrap_or_default();
        format!("{}\n----- verdaccio\n{verdaccio}", members.logs())
    };

    let project = work.path().join("p1");
    write_package(&project, "consumer", "0.0.0", &[("demo-app", "1.0.0")]);
    let out = npm_install(
        &format!("{}/npm/", members.nodes[0].url()),
        &project,
        &work.path().join("cache1"),
    );
    assert_ok(&out, "npm install", &logs);

    // Both versions are committed on every member, by f+1 = 2 attestations.
    for (i, node) in members.nodes.iter().enumerate() {
        for name in ["@demo/lib", "demo-app"] {
            node.wait_package_committed("npm", name, "1.0.0", Duration::from_secs(90))
                .unwrap_or_else(|| panic!("member {i}: {name}@1.0.0 not committed\n{}", logs()));
        }
    }
    // The selected builders fetched the tarball from the registry themselves: besides the
    // install's own download through member 0, at least one more member fetched it.
    let fetched_by = members
        .nodes
        .iter()
        .filter(|n| {
            n.log().lines().any(|l| {
                l.contains("npm tarball fetched from upstream and verified")
                    && l.contains("lib-1.0.0.tgz")
            })
        })
        .count();
    assert!(fetched_by >= 2, "{fetched_by}\n{}", logs());

    // What was committed is the honest registry's tarball, whatever member 1 attested.
    let honest = get(&format!("{registry}demo-app/-/demo-app-1.0.0.tgz")).unwrap();
    assert_eq!(honest.status, 200);
    let out = pyrsia(&[
        "inspect-log",
        "npm",
        "--package",
        "demo-app@1.0.0",
        "--format",
        "csv",
        "--fields",
        "kind,outputs",
        "--node",
        &members.nodes[1].url(),
    ]);
    assert_ok(&out, "inspect-log npm", &logs);
    assert!(
        text(&out).contains(&format!("commit,{}", honest.body_digest)),
        "{}\n{}",
        text(&out),
        logs()
    );

    // A light client trusting only the genesis verifies it through another member.
    let out = verify(
        &members.nodes[3],
        "npm",
        "@demo/lib@1.0.0",
        Some(&members.genesis),
    );
    assert_ok(&out, "pyrsia verify npm", &logs);
    let printed = text(&out);
    assert!(printed.contains("npm-fetch/v1 by "), "{printed}");
    assert!(printed.contains("lib-1.0.0.tgz"), "{printed}");

    // `pyrsia build` of a committed version says so at once.
    let out = pyrsia(&[
        "build",
        "npm",
        "--package",
        "demo-app@1.0.0",
        "--node",
        &members.nodes[2].url(),
    ]);
    assert_ok(&out, "pyrsia build npm", &logs);
    assert!(text(&out).contains("(already)"), "{}", text(&out));
}
