//! `pyrsia-bench-rebuilds`: rebuilds pinned popular releases through one `--rebuild` node and
//! reports, per release, the verdict, the time from the first download to the committed
//! verdict (fetch verification included), and which entries differed or why the build
//! failed: a table comparable to OSS Rebuild's. The lists are `scripts/bench-rebuilds/pypi.txt`
//! (`name==version sdist sha256 wheel sha256`) and `npm.txt` (`name@version integrity`). The
//! node's PyPI upstream is a local devpi mirror of the public index (the rebuilds fetch their
//! build backends through the node, and devpi through the machine's CA bundle); its npm
//! upstream is the public registry. Every file the node serves is checked against the pinned
//! hash first.
//! Run it through `scripts/bench` (release build). Prints a Markdown table.

use std::path::Path;
use std::time::{Duration, Instant};

use pyrsia_tests::http::get;
use pyrsia_tests::node::Node;
use serde_json::Value;

const VERDICT_WAIT: Duration = Duration::from_secs(600);

/// One release to rebuild: its ecosystem, name, version, the file downloaded through the node
/// and the digest pinned for it (hex sha256, or an npm integrity string).
struct Release {
    ecosystem: &'static str,
    name: String,
    version: String,
    path: String,
    pinned: String,
}

fn pypi_releases(list: &Path) -> Vec<Release> {
    std::fs::read_to_string(list)
        .expect("the PyPI list")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, version) = fields[0].split_once("==").expect("name==version");
            let project = name.to_lowercase().replace(['_', '.'], "-");
            Release {
                ecosystem: "pypi",
                name: project.clone(),
                version: version.to_string(),
                path: format!("/pypi/files/{project}/{}", fields[3]),
                pinned: format!("sha256:{}", fields[4]),
            }
        })
        .collect()
}

fn npm_releases(list: &Path) -> Vec<Release> {
    std::fs::read_to_string(list)
        .expect("the npm list")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (name, version) = fields[0].rsplit_once('@').expect("name@version");
            Release {
                ecosystem: "npm",
                name: name.to_string(),
                version: version.to_string(),
                path: format!("/npm/{name}/-/{name}-{version}.tgz"),
                pinned: fields[1].to_string(),
            }
        })
        .collect()
}

/// Whether the bytes served are the pinned ones: the sha256 (`sha256:…`) or the npm
/// integrity (`sha512-…`).
fn pinned_matches(pinned: &str, digest: &pyrsia_core::digest::Digest, body: &[u8]) -> bool {
    match pyrsia_core::package::npm_registry::Integrity::parse(pinned) {
        Ok(integrity) if pinned.starts_with("sha512-") => {
            let mut checker = integrity.checker();
            checker.update(body);
            checker.matches()
        }
        _ => digest.to_string() == pinned,
    }
}

/// The committed verdict of `release`, waiting for it.
fn wait_verdict(node: &Node, release: &Release) -> Option<Value> {
    let deadline = Instant::now() + VERDICT_WAIT;
    loop {
        let answer: Value = get(&format!("{}/pyrsia/log/rebuilds?limit=1000", node.url()))
            .ok()
            .and_then(|r| serde_json::from_str(&r.small_body).ok())
            .unwrap_or_default();
        let found = answer["rebuilds"].as_array().and_then(|all| {
            all.iter()
                .find(|r| {
                    r["ecosystem"] == release.ecosystem
                        && r["name"] == release.name.as_str()
                        && r["version"] == release.version.as_str()
                })
                .cloned()
        });
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the table says about a verdict: the entries that differed, or the failure.
fn explanation(verdict: &Value) -> String {
    if let Some(failure) = verdict["failure"].as_str().filter(|f| !f.is_empty()) {
        return failure.to_string();
    }
    let entries: Vec<String> = verdict["diff"]["entries"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|e| {
                    let side = if e["rebuilt"].is_null() {
                        "only upstream"
                    } else if e["upstream"].is_null() {
                        "only rebuilt"
                    } else {
                        "differs"
                    };
                    format!("`{}` ({side})", e["name"].as_str().unwrap_or(""))
                })
                .collect()
        })
        .unwrap_or_default();
    let more = verdict["diff"]["more"].as_u64().unwrap_or(0);
    match (entries.is_empty(), more) {
        (true, _) => String::new(),
        (false, 0) => entries.join(", "),
        (false, more) => format!("{} and {more} more", entries.join(", ")),
    }
}

fn main() {
    let root = pyrsia_tests::target_dir().join("..");
    let lists = root.join("scripts/bench-rebuilds");
    let mut releases = pypi_releases(&lists.join("pypi.txt"));
    releases.extend(npm_releases(&lists.join("npm.txt")));
    let work = tempfile::tempdir().expect("work dir");
    // PyPI through a local devpi mirror of the public index (it trusts the system's CA
    // bundle; the node's upstream is local); npm from the public registry directly.
    let devpi = pyrsia_tests::devpi::Devpi::start_public_mirror(&work.path().join("devpi"));
    let pypi = devpi.mirror_simple_url();
    let node = Node::start(
        &work.path().join("node"),
        &[
            "--rebuild",
            "--pypi-upstream",
            &pypi,
            "--npm-upstream",
            "https://registry.npmjs.org/",
            "--rebuild-timeout",
            "300",
        ],
    );
    // The mirror syncs the public index's project list when it first starts: wait for it.
    let warm = Instant::now();
    while get(&format!("{pypi}requests/")).map_or(true, |r| r.status != 200)
        && warm.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_secs(2));
    }
    // Whether the node reaches the public npm registry at all (it trusts the WebPKI roots
    // only: behind a TLS-inspecting proxy it does not).
    let npm_reachable = get(&format!("{}/npm/ms", node.url())).is_ok_and(|r| r.status == 200);
    println!(
        "| ecosystem | release | verdict | download → verdict (s) | what differed, or why it failed |"
    );
    println!("|---|---|---|---|---|");
    let mut times: Vec<f64> = Vec::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut unexplained = 0;
    for release in &releases {
        let started = Instant::now();
        let label = format!("{}=={}", release.name, release.version);
        if release.ecosystem == "npm" && !npm_reachable {
            println!("| npm | {label} | not run | | the node could not reach registry.npmjs.org |");
            *counts.entry("not run".into()).or_default() += 1;
            continue;
        }
        // The mirror's first fetch of a project page from the public index can outlast the
        // node's upstream read timeout: ask again a few times.
        let mut served = get(&format!("{}{}", node.url(), release.path));
        for _ in 0..4 {
            if served.as_ref().is_ok_and(|r| r.status == 200) {
                break;
            }
            std::thread::sleep(Duration::from_secs(3));
            served = get(&format!("{}{}", node.url(), release.path));
        }
        let checked = match &served {
            Ok(r) if r.status == 200 => {
                let bytes =
                    pyrsia_tests::http::get_bytes(&format!("{}{}", node.url(), release.path))
                        .map(|(_, b)| b)
                        .unwrap_or_default();
                pinned_matches(&release.pinned, &r.body_digest, &bytes)
            }
            _ => false,
        };
        if !checked {
            println!(
                "| {} | {label} | not served as pinned | | {:?} |",
                release.ecosystem,
                served.map(|r| r.status)
            );
            *counts.entry("not served as pinned".into()).or_default() += 1;
            continue;
        }
        let Some(verdict) = wait_verdict(&node, release) else {
            println!(
                "| {} | {label} | no verdict in {VERDICT_WAIT:?} | | |",
                release.ecosystem
            );
            *counts.entry("no verdict".into()).or_default() += 1;
            continue;
        };
        let secs = started.elapsed().as_secs_f64();
        times.push(secs);
        let name = verdict["verdict"].as_str().unwrap_or("?").to_string();
        let why = explanation(&verdict);
        if name == "not-reproduced" && why.is_empty() {
            unexplained += 1;
        }
        println!(
            "| {} | {label} | {name} | {secs:.1} | {why} |",
            release.ecosystem
        );
        *counts.entry(name).or_default() += 1;
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    println!();
    println!(
        "verdicts: {counts:?}; unexplained not-reproduced: {unexplained}; median download → verdict: {median:.1} s over {} releases",
        times.len()
    );
    drop(node);
}
