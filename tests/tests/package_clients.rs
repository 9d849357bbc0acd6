//! Issue 15, deliver 4: package managers other than npm and pip work through the node with
//! their usual registry setting, unchanged: pnpm and yarn (classic) with `--registry`, uv with
//! `--index-url`. Each installs online (its lockfile's integrity is the upstream's), then
//! again from a fresh cache with the upstream down.

use std::path::{Path, PathBuf};

use pyrsia_tests::node::Node;
use pyrsia_tests::npm::{Verdaccio, pnpm_install, write_package, yarn_install};
use pyrsia_tests::output::assert_ok;
use pyrsia_tests::pypi::{PypiServer, make_wheel, uv_pip_install};

/// A project in `dir` depending on `demo-app`, which depends on the scoped `@demo/lib`.
fn project(dir: PathBuf) -> PathBuf {
    write_package(&dir, "consumer", "0.0.0", &[("demo-app", "1.0.0")]);
    dir
}

/// Node resolves both packages from the project as the client laid them out (hoisted, or
/// pnpm's symlinked store), each with its own code.
fn assert_installed(project: &Path) {
    let script = "const app = require('demo-app'); \
        const lib = require(require.resolve('@demo/lib', { paths: [require.resolve('demo-app')] })); \
        console.log(app.name + ' ' + lib.name);";
    let out = std::process::Command::new("node")
        .args(["-e", script])
        .current_dir(project)
        .output()
        .expect("node");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "demo-app @demo/lib",
        "{}: {}",
        project.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pnpm_and_yarn_install_through_the_node_online_and_with_the_upstream_down() {
    let work = tempfile::tempdir().unwrap();
    let mut upstream = Verdaccio::start(&work.path().join("verdaccio"));
    let lib = work.path().join("src/lib");
    write_package(&lib, "@demo/lib", "1.0.0", &[]);
    upstream.publish(&lib);
    let app = work.path().join("src/app");
    write_package(&app, "demo-app", "1.0.0", &[("@demo/lib", "1.0.0")]);
    upstream.publish(&app);
    let upstream_packument: serde_json::Value = serde_json::from_str(
        &pyrsia_tests::http::get(&format!("{}demo-app", upstream.url()))
            .unwrap()
            .small_body,
    )
    .unwrap();
    let integrity = upstream_packument["versions"]["1.0.0"]["dist"]["integrity"]
        .as_str()
        .expect("the upstream's integrity")
        .to_string();
    let node = Node::start(
        &work.path().join("node"),
        &["--npm-upstream", &upstream.url()],
    );
    let registry = format!("{}/npm/", node.url());
    let logs = || node.log();

    // Online: each lockfile records the upstream's integrity and the node's tarball URLs.
    let p1 = project(work.path().join("pnpm1"));
    assert_ok(
        &pnpm_install(&registry, &p1, &work.path().join("pnpm-cache1")),
        "pnpm install",
        &logs,
    );
    assert_installed(&p1);
    let lock = std::fs::read_to_string(p1.join("pnpm-lock.yaml")).unwrap();
    assert!(lock.contains(&integrity), "{lock}");
    let y1 = project(work.path().join("yarn1"));
    assert_ok(
        &yarn_install(&registry, &y1, &work.path().join("yarn-cache1")),
        "yarn install",
        &logs,
    );
    assert_installed(&y1);
    let lock = std::fs::read_to_string(y1.join("yarn.lock")).unwrap();
    assert!(lock.contains(&integrity), "{lock}");
    assert!(
        lock.contains(&format!("{registry}demo-app/-/demo-app-1.0.0.tgz")),
        "{lock}"
    );

    // The upstream goes down: fresh caches install from the node alone.
    upstream.stop();
    let p2 = project(work.path().join("pnpm2"));
    assert_ok(
        &pnpm_install(&registry, &p2, &work.path().join("pnpm-cache2")),
        "pnpm install, upstream down",
        &logs,
    );
    assert_installed(&p2);
    let y2 = project(work.path().join("yarn2"));
    assert_ok(
        &yarn_install(&registry, &y2, &work.path().join("yarn-cache2")),
        "yarn install, upstream down",
        &logs,
    );
    assert_installed(&y2);
}

#[test]
fn uv_installs_through_the_node_online_and_with_the_upstream_down() {
    let work = tempfile::tempdir().unwrap();
    let packages = work.path().join("packages");
    make_wheel(&packages, "demo-dep", "1.0", &[]);
    make_wheel(&packages, "demo-pkg", "1.0", &["demo-dep>=1.0"]);
    let mut upstream = PypiServer::start(&packages, work.path());
    let node = Node::start(
        &work.path().join("node"),
        &["--pypi-upstream", &upstream.simple_url()],
    );
    let index = format!("{}/pypi/simple/", node.url());
    let logs = || node.log();
    let installed = |target: &Path| {
        for (module, version) in [("demo_pkg", "1.0"), ("demo_dep", "1.0")] {
            let code = std::fs::read_to_string(target.join(module).join("__init__.py"))
                .unwrap_or_else(|_| panic!("{module} not installed\n{}", logs()));
            assert_eq!(code, format!("VERSION = '{version}'\n"));
        }
    };

    let t1 = work.path().join("t1");
    assert_ok(
        &uv_pip_install(&index, &t1, &["demo-pkg"]),
        "uv pip install",
        &logs,
    );
    installed(&t1);

    upstream.stop();
    let t2 = work.path().join("t2");
    assert_ok(
        &uv_pip_install(&index, &t2, &["demo-pkg"]),
        "uv pip install, upstream down",
        &logs,
    );
    installed(&t2);
}
