//! `pyrsia-bench-p2p`: 2, 4, 8 and 16 node processes on this machine, in a full mesh, fetch
//! one 200 MiB blob at the same moment (curl through each node). For each size it prints the
//! wall time against one node fetching it alone, the bytes that crossed the upstream link (from
//! the registry's access log) and the bytes nodes received from each other (their metrics).
//! Run it through `scripts/bench` (release build). Prints a Markdown table.

use std::process::Command;
use std::time::Instant;

use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::registry::Registry;

const SIZE: u64 = 200 << 20;
const SIZES: [usize; 4] = [2, 4, 8, 16];

fn curl(url: &str) {
    let out = Command::new("curl")
        .args(["-sf", "-o", "/dev/null", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url} failed");
}

/// Starts `n` nodes in a full mesh behind `registry` and waits until every one sees the rest.
fn mesh(work: &std::path::Path, registry: &Registry, n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut args = vec!["--upstream".to_string(), registry.url()];
        for node in &nodes {
            args.extend(["--peer".to_string(), node.p2p_address()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&work.join(format!("node{i}")), &args));
    }
    wait_mesh(&nodes.iter().collect::<Vec<_>>());
    nodes
}

/// Seconds until every node has served the blob to its client.
fn fetch_all(nodes: &[Node], path: &str) -> f64 {
    let started = Instant::now();
    let clients: Vec<_> = nodes
        .iter()
        .map(|node| {
            let url = format!("{}{path}", node.url());
            std::thread::spawn(move || curl(&url))
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    println!(
        "| nodes | wall time | vs one node alone | upstream bytes (× blob) | peer bytes (× blob) |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let mut alone = None;
    for n in std::iter::once(1).chain(SIZES) {
        let work = tempfile::tempdir().expect("temp dir");
        let registry = Registry::start(&work.path().join("registry"));
        let image = push_large_image(work.path(), &registry.authority(), SIZE);
        let digest = image.layers[0].blob.digest;
        let nodes = mesh(work.path(), &registry, n);
        let seconds = fetch_all(&nodes, &format!("/v2/library/large/blobs/{digest}"));
        let upstream = registry.blob_gets(&digest.to_string()) as f64;
        let peer: u64 = nodes.iter().map(|node| node.metric("peer_bytes")).sum();
        let baseline = *alone.get_or_insert(seconds);
        println!(
            "| {n} | {seconds:.2} s | {:.2}× | {upstream:.2} | {:.2} |",
            seconds / baseline,
            peer as f64 / SIZE as f64
        );
    }
}
