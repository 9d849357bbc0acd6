//! `pyrsia-bench-packages`: `npm install` of a generated 200-package tree and `pip install` of
//! a 50-package set, each cold and warm, straight from the upstream (verdaccio, pypiserver)
//! and through a node in front of that same upstream, in one run. Every install starts with an
//! empty client cache and target, so "warm" means the upstream (direct) or the node (through
//! it) has served the same set before. Run it through `scripts/bench` (release build). Prints
//! a Markdown table.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use pyrsia_tests::node::Node;
use pyrsia_tests::npm::{Verdaccio, npm_install, write_package};
use pyrsia_tests::pypi::{PypiServer, make_wheel, pip_install};

const NPM_PACKAGES: usize = 200;
const PYPI_PACKAGES: usize = 50;

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seconds `run` took.
fn timed(run: impl FnOnce()) -> f64 {
    let started = Instant::now();
    run();
    started.elapsed().as_secs_f64()
}

/// Publishes `bench-leaf-{i}` for every leaf and `bench-root`, which depends on all of them.
fn publish_npm_tree(work: &Path, registry: &Verdaccio) {
    let leaves: Vec<String> = (1..NPM_PACKAGES)
        .map(|i| format!("bench-leaf-{i}"))
        .collect();
    std::thread::scope(|scope| {
        for chunk in leaves.chunks(leaves.len().div_ceil(4)) {
            scope.spawn(move || {
                for name in chunk {
                    let dir = work.join("npm-src").join(name);
                    write_package(&dir, name, "1.0.0", &[]);
                    registry.publish(&dir);
                }
            });
        }
    });
    let dependencies: Vec<(&str, &str)> = leaves.iter().map(|n| (n.as_str(), "1.0.0")).collect();
    let root = work.join("npm-src/bench-root");
    write_package(&root, "bench-root", "1.0.0", &dependencies);
    registry.publish(&root);
}

/// An `npm install` of `bench-root` from `registry` in a fresh project and cache.
fn npm_round(work: &Path, registry: &str, label: &str) -> f64 {
    let project = work.join(format!("npm-{label}"));
    write_package(&project, "consumer", "0.0.0", &[("bench-root", "1.0.0")]);
    let cache = work.join(format!("npm-cache-{label}"));
    timed(|| check(&npm_install(registry, &project, &cache), label))
}

/// A `pip install` of `bench-root` from `index` into a fresh target.
fn pip_round(work: &Path, index: &str, label: &str) -> f64 {
    let target = work.join(format!("pip-{label}"));
    timed(|| check(&pip_install(index, &target, &["bench-root"]), label))
}

fn row(ecosystem: &str, what: &str, direct: [f64; 2], node: [f64; 2]) {
    println!(
        "| {ecosystem} | {what} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2}× | {:.2}× |",
        direct[0],
        direct[1],
        node[0],
        node[1],
        node[0] / direct[0],
        node[1] / direct[1]
    );
}

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let work = work.path();

    let verdaccio = Verdaccio::start(&work.join("verdaccio"));
    publish_npm_tree(work, &verdaccio);
    let packages = work.join("wheels");
    let leaves: Vec<String> = (1..PYPI_PACKAGES)
        .map(|i| format!("bench-leaf-{i}>=1.0"))
        .collect();
    for i in 1..PYPI_PACKAGES {
        make_wheel(&packages, &format!("bench-leaf-{i}"), "1.0", &[]);
    }
    let requires: Vec<&str> = leaves.iter().map(String::as_str).collect();
    make_wheel(&packages, "bench-root", "1.0", &requires);
    let pypiserver = PypiServer::start(&packages, work);

    let node = Node::start(
        &work.join("node"),
        &[
            "--npm-upstream",
            &verdaccio.url(),
            "--pypi-upstream",
            &pypiserver.simple_url(),
        ],
    );
    let npm_node = format!("{}/npm/", node.url());
    let pip_node = format!("{}/pypi/simple/", node.url());

    println!(
        "| ecosystem | install | direct, cold | direct, warm | node, cold | node, warm | node ÷ direct, cold | node ÷ direct, warm |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let npm_direct = [
        npm_round(work, &verdaccio.url(), "direct-cold"),
        npm_round(work, &verdaccio.url(), "direct-warm"),
    ];
    let npm_through = [
        npm_round(work, &npm_node, "node-cold"),
        npm_round(work, &npm_node, "node-warm"),
    ];
    row(
        "npm",
        &format!("{NPM_PACKAGES} packages"),
        npm_direct,
        npm_through,
    );
    let pip_direct = [
        pip_round(work, &pypiserver.simple_url(), "direct-cold"),
        pip_round(work, &pypiserver.simple_url(), "direct-warm"),
    ];
    let pip_through = [
        pip_round(work, &pip_node, "node-cold"),
        pip_round(work, &pip_node, "node-warm"),
    ];
    row(
        "pip",
        &format!("{PYPI_PACKAGES} packages"),
        pip_direct,
        pip_through,
    );
}
