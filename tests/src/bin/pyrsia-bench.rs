//! `pyrsia-bench`: the registry-mirror benchmark, side by side with distribution on this
//! machine. Run it through `scripts/bench` (release build). Prints a Markdown table.
//!
//! - warm: one 200 MiB blob fetched with curl from distribution and from a node that holds
//!   it (both page-cached), sequentially and with 8 clients at once;
//! - cold: the same blob through a node with an empty store (pull-through, verified while it
//!   streams) against fetching it straight from distribution;
//! - memory: the node's peak RSS while 8 clients stream the blob; the lite binary's size and
//!   peak RSS under the same load;
//! - clients: `skopeo inspect` and `podman pull` of a 2 MiB image through the node (warm)
//!   and from distribution directly: both clients probe an insecure registry with a TLS
//!   ClientHello first, which the node must answer as fast as Go's server does.
//!
//! `pyrsia-bench cold [ROUNDS]` (10 by default) runs the cold row alone, a direct fetch and a
//! pull-through alternated round by round, with the CPU each used; with
//! `PYRSIA_BENCH_PERF=<file>` the last round's node is profiled.

use std::process::Command;
use std::time::Instant;

use pyrsia_tests::image::{Blob, Layout, OCI_MANIFEST, push_large_image};
use pyrsia_tests::node::Node;
use pyrsia_tests::perf::{Profile, Sampled};
use pyrsia_tests::process::free_port;
use pyrsia_tests::registry::Registry;

const SIZE: u64 = 200 << 20;
const ROUNDS: usize = 5;
const CLIENTS: usize = 8;

fn curl_seconds(url: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", "-w", "%{time_total}", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url} failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("time")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Median GB/s over `ROUNDS` sequential downloads.
fn sequential(url: &str, bytes: u64) -> f64 {
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| bytes as f64 / curl_seconds(url) / 1e9)
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

/// Aggregate GB/s of `CLIENTS` simultaneous downloads.
fn parallel(url: &str, bytes: u64) -> f64 {
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.to_string();
            std::thread::spawn(move || curl_seconds(&url))
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    (bytes * CLIENTS as u64) as f64 / started.elapsed().as_secs_f64() / 1e9
}

/// Seconds `command` took (it must succeed).
fn command_seconds(command: &mut Command) -> f64 {
    let started = Instant::now();
    let out = command.output().expect("client");
    assert!(out.status.success(), "{command:?}: {out:?}");
    started.elapsed().as_secs_f64()
}

/// Median seconds of `skopeo inspect` and of a fresh `podman pull` (vfs storage) of
/// `reference` from the registry at `authority`.
fn client_seconds(authority: &str, reference: &str, work: &std::path::Path) -> (f64, f64) {
    let image = format!("docker://{authority}/{reference}");
    let inspect = median(
        (0..ROUNDS)
            .map(|_| {
                command_seconds(Command::new("skopeo").args([
                    "inspect",
                    "--tls-verify=false",
                    &image,
                ]))
            })
            .collect(),
    );
    let pull = median(
        (0..ROUNDS)
            .map(|round| {
                let root = work.join(format!("podman-{round}"));
                let seconds = command_seconds(
                    Command::new("podman")
                        .arg("--root")
                        .arg(root.join("root"))
                        .arg("--runroot")
                        .arg(root.join("run"))
                        .args([
                            "--storage-driver",
                            "vfs",
                            "pull",
                            "-q",
                            "--tls-verify=false",
                        ])
                        .arg(&image),
                );
                let _ = std::fs::remove_dir_all(&root);
                seconds
            })
            .collect(),
    );
    (inspect, pull)
}

/// The client rows: a 2 MiB image through a warm node and from distribution directly.
fn client_rows(work: &std::path::Path, registry: &Registry, node: &Node) {
    let mut layout = Layout::new(&work.join("layout-probe"));
    let layer = layout.large_layer(2 << 20, 0x9e0b);
    let manifest = layout.manifest(std::slice::from_ref(&layer), "amd64");
    layout.tag(&manifest, OCI_MANIFEST, "probe");
    layout.push("probe", &registry.authority(), "library/probe", None);
    let reference = "library/probe:probe";
    let _ = client_seconds(&node.authority(), reference, work);
    let (direct_inspect, direct_pull) = client_seconds(&registry.authority(), reference, work);
    let (node_inspect, node_pull) = client_seconds(&node.authority(), reference, work);
    println!();
    println!(
        "| client, 2 MiB image (s, median of {ROUNDS}) | distribution 2.8 | pyrsia node (warm) | ratio |"
    );
    println!("|---|---|---|---|");
    println!(
        "| `skopeo inspect` | {direct_inspect:.2} | {node_inspect:.2} | {:.2}x |",
        node_inspect / direct_inspect
    );
    println!(
        "| `podman pull` | {direct_pull:.2} | {node_pull:.2} | {:.2}x |",
        node_pull / direct_pull
    );
}

/// `pyrsia-bench cold [ROUNDS]`: the cold row alone, a direct fetch and a pull-through by a
/// fresh node alternated round by round (so both see the machine in the same state), with the
/// CPU each used: the node's own (`/proc/PID/stat`) and the whole machine's (`/proc/stat`,
/// distribution and curl included). Prints one line per round and the medians.
fn cold_pairs(rounds: usize) {
    let work = tempfile::tempdir().expect("tempdir");
    let (registry, _, path) = registry_with_large_blob(work.path());
    let direct = format!("{}{path}", registry.url());
    let _ = curl_seconds(&direct);
    println!(
        "| round | direct s | direct machine CPU s | cold s | cold machine CPU s | node CPU s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut directs, mut colds) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let busy = pyrsia_tests::process::machine_busy_seconds();
        let direct_seconds = curl_seconds(&direct);
        let direct_cpu = pyrsia_tests::process::machine_busy_seconds() - busy;
        let node = Node::start(
            &work.path().join(format!("cold-{round}")),
            &["--upstream", &registry.url()],
        );
        // With `PYRSIA_BENCH_PERF=<file>`, the last round's node is profiled.
        let profile = (round + 1 == rounds)
            .then(|| Profile::if_asked(Sampled::Processes(&[node.pid()]), ""))
            .flatten();
        let node_before = pyrsia_tests::process::cpu_seconds(node.pid());
        let busy = pyrsia_tests::process::machine_busy_seconds();
        let cold_seconds = curl_seconds(&format!("{}{path}", node.url()));
        let cold_cpu = pyrsia_tests::process::machine_busy_seconds() - busy;
        let node_cpu = pyrsia_tests::process::cpu_seconds(node.pid()) - node_before;
        if let Some(profile) = profile {
            profile.stop();
        }
        println!(
            "| {round} | {direct_seconds:.3} | {direct_cpu:.2} | {cold_seconds:.3} | {cold_cpu:.2} | {node_cpu:.2} | {:.2}x |",
            cold_seconds / direct_seconds
        );
        directs.push(direct_seconds);
        colds.push(cold_seconds);
    }
    let (direct, cold) = (median(directs), median(colds));
    println!(
        "medians: direct {direct:.3} s, cold {cold:.3} s, {:.2}x",
        cold / direct
    );
}

/// Distribution (`docker-registry`) on 127.0.0.1 holding one fresh [`SIZE`] layer: the registry, the layer and
/// its blob path (`/v2/...`).
fn registry_with_large_blob(work: &std::path::Path) -> (Registry, Blob, String) {
    let registry = Registry::start(&work.join("registry"));
    let image = push_large_image(work, &registry.authority(), SIZE);
    let layer = image.layers[0].blob.clone();
    let path = format!("/v2/library/large/blobs/{}", layer.digest);
    (registry, layer, path)
}

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("cold") {
        let rounds = std::env::args()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(10);
        return cold_pairs(rounds);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let (registry, layer, path) = registry_with_large_blob(work.path());
    let direct = format!("{}{path}", registry.url());

    // Cold: a node with an empty store each round, against the (page-cached) registry
    // directly; medians of `ROUNDS`.
    let _ = curl_seconds(&direct);
    let direct_seconds = median((0..ROUNDS).map(|_| curl_seconds(&direct)).collect());
    let cold_seconds = median(
        (0..ROUNDS)
            .map(|round| {
                let cold = Node::start(
                    &work.path().join(format!("cold-{round}")),
                    &["--upstream", &registry.url()],
                );
                curl_seconds(&format!("{}{path}", cold.url()))
            })
            .collect(),
    );
    let node = Node::start(&work.path().join("node"), &["--upstream", &registry.url()]);

    // Warm: both serve from page cache.
    let via_node = format!("{}{path}", node.url());
    let _ = curl_seconds(&via_node);
    let warm_registry = sequential(&direct, layer.size);
    let warm_node = sequential(&via_node, layer.size);
    let par_registry = parallel(&direct, layer.size);
    let par_node = parallel(&via_node, layer.size);
    let node_rss = peak_rss_mib(node.pid());

    // The lite mirror chained behind the node, warmed, then loaded the same way.
    let lite = Node::start_binary(
        "pyrsia-lite",
        &work.path().join("lite"),
        free_port(),
        &["--upstream", &node.url()],
    );
    let via_lite = format!("{}{path}", lite.url());
    let _ = curl_seconds(&via_lite);
    let par_lite = parallel(&via_lite, layer.size);
    let lite_rss = peak_rss_mib(lite.pid());
    let lite_size = std::fs::metadata(pyrsia_tests::binary("pyrsia-lite")).map_or(0, |m| m.len());
    let node_size = std::fs::metadata(pyrsia_tests::binary("pyrsia")).map_or(0, |m| m.len());

    println!("| measurement | distribution 2.8 | pyrsia node | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| warm GET, 1 client (GB/s, median of {ROUNDS}) | {warm_registry:.2} | {warm_node:.2} | {:.2}x |",
        warm_node / warm_registry
    );
    println!(
        "| warm GET, {CLIENTS} clients (GB/s, aggregate) | {par_registry:.2} | {par_node:.2} | {:.2}x |",
        par_node / par_registry
    );
    println!(
        "| cold pull-through vs direct (s, median of {ROUNDS}) | {direct_seconds:.2} | {cold_seconds:.2} | {:.2}x |",
        cold_seconds / direct_seconds
    );
    println!();
    println!(
        "| binary | size (MiB) | peak RSS under {CLIENTS}-client load (MiB) | warm {CLIENTS}-client GB/s |"
    );
    println!("|---|---|---|---|");
    println!(
        "| pyrsia (node) | {:.1} | {node_rss:.1} | {par_node:.2} |",
        node_size as f64 / 1048576.0
    );
    println!(
        "| pyrsia-lite | {:.1} | {lite_rss:.1} | {par_lite:.2} |",
        lite_size as f64 / 1048576.0
    );
    client_rows(work.path(), &registry, &node);
}
