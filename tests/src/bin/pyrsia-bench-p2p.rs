//! `pyrsia-bench-p2p`: N node processes on this machine (2, 4, 8, 16 and 32) fetch one fresh
//! 200 MiB blob at the same moment (curl through each node), (a) through the swarm, each node
//! told of three others (not a full mesh), and (b) with P2P off, each node straight from the
//! upstream; both with the upstream on loopback and behind one shared 100 MB/s link (a WAN;
//! the fault proxy's throttle). Then staggered arrivals (one node every 0.5 s). One
//! node-to-node transfer over each transport is `pyrsia-bench-reach`'s. For each run it prints the wall time (max and p50 over the nodes),
//! the blob's GETs at the upstream, the largest single node's upload and the share of peer
//! bytes sent by nodes that did not hold the whole blob yet. Run it through `scripts/bench`
//! (release build); prints Markdown tables. `pyrsia-bench-p2p swarm N [wan] [tcp|quic]` runs
//! one swarm of N nodes alone, with the machine's busy CPU seconds during the pulls and the
//! transports its connections took (to profile it, or to read the logs of a failed pull;
//! with `PYRSIA_BENCH_PERF=<file>` it runs `perf record -a -g` on the whole machine during
//! the pulls; `tcp`: the nodes run without QUIC; `quic`: they dial each other over QUIC
//! first, `--quic-on-lan`, as every node did before LAN peers went TCP first; `nolinks`:
//! pieces over libp2p only, `--no-piece-links`, as before piece links; `direct N`:
//! the same nodes with P2P off); `pyrsia-bench-p2p wan` the WAN table and staggered rows
//! only; `pyrsia-bench-p2p page-cache` sixteen writers filling the page cache in writes of
//! 1 MiB, 512 KiB, 256 KiB and 64 KiB, then one writer writing the same sixteen files in turn
//! and one file alone; `pyrsia-bench-p2p idle N`: N
//! connected swarm nodes pulling nothing, the machine's busy CPU over 10 s (what a node costs
//! while it waits); `pyrsia-bench-p2p staller [ROUNDS]`: node A holds two 200 MiB blobs, a
//! fresh node B fetches one and then the other from it (curl through B), next to a stranger
//! that announces both, answers what it holds on its piece link and never sends a piece
//! (the tests' `StallingLinkHolder`), and without one: each fetch's wall time per round.

use std::process::Command;
use std::time::{Duration, Instant};

use pyrsia_tests::curl::fetch_discarding;
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::node::Node;
use pyrsia_tests::perf::{Profile, Sampled};
use pyrsia_tests::proxy::{Fault, FaultProxy};
use pyrsia_tests::registry::Registry;

const SIZE: u64 = 200 << 20;
const SIZES: [usize; 5] = [2, 4, 8, 16, 32];
/// Each swarm node is started with this many earlier nodes as its peers.
const DIALLED: usize = 3;
/// The WAN link in front of the registry, bytes per second.
const WAN: u64 = 100_000_000;

/// Starts `n` nodes behind `upstream` with the `extra` arguments: each told of up to
/// [`DIALLED`] earlier ones when `swarm`, of none otherwise.
fn nodes(
    work: &std::path::Path,
    upstream: &str,
    n: usize,
    swarm: bool,
    extra: &[&str],
) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..n {
        let mut args = vec!["--upstream".to_string(), upstream.to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        if swarm {
            for earlier in nodes.iter().rev().take(DIALLED) {
                args.extend(["--peer".to_string(), earlier.p2p_address()]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&work.join(format!("node{i}")), &args));
    }
    if swarm {
        for node in &nodes {
            let deadline = Instant::now() + Duration::from_secs(60);
            while node.connected_peers().is_empty() {
                assert!(Instant::now() < deadline, "a node found no peer");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    nodes
}

/// What one run measured.
struct Run {
    /// Seconds each client took, from the moment the first started.
    times: Vec<f64>,
    upstream_gets: usize,
    largest_upload: u64,
    /// The largest upload of a node that did not fetch from the upstream: beside
    /// `largest_upload`, whether the node fetching for everyone is the one that uploads most.
    largest_other_upload: u64,
    served: u64,
    partial: u64,
    /// Busy CPU seconds of the whole machine (every node, client and the registry) from the
    /// first client's start to the last one's end: how much work the pulls cost, beside
    /// how long they took.
    cpu_seconds: f64,
    /// The nodes' connections at the end, (over TCP, over QUIC), each counted at both ends.
    connections: (usize, usize),
}

/// The connections `nodes` hold, (over TCP, over QUIC), from their `/peers` addresses: each
/// connection counted by both its ends.
fn connections_by_transport(nodes: &[Node]) -> (usize, usize) {
    let addresses: Vec<String> = nodes
        .iter()
        .flat_map(|node| {
            let status = node.peers_status();
            let peers = status["peers"].as_array().cloned().unwrap_or_default();
            peers
                .into_iter()
                .flat_map(|p| p["addresses"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    let quic = addresses.iter().filter(|a| a.contains("/quic-v1")).count();
    (addresses.len() - quic, quic)
}

/// `n` nodes fetch a fresh blob, the i-th client starting `stagger × i` after the first.
fn run(n: usize, swarm: bool, wan: bool, stagger: Duration, node_args: &[&str]) -> Run {
    let work = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(&work.path().join("registry"));
    let image = push_large_image(work.path(), &registry.authority(), SIZE);
    let digest = image.layers[0].blob.digest;
    let proxy = wan.then(|| {
        let proxy = FaultProxy::start(&registry.url());
        proxy.set_fault(Fault::Throttle(WAN));
        proxy
    });
    let upstream = proxy
        .as_ref()
        .map_or_else(|| registry.url(), FaultProxy::url);
    let nodes = nodes(work.path(), &upstream, n, swarm, node_args);
    let profile = Profile::if_asked(Sampled::Machine, "");
    let busy_before = pyrsia_tests::process::machine_busy_seconds();
    let started = Instant::now();
    let clients: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let url = format!("{}/v2/library/large/blobs/{digest}", node.url());
            let delay = stagger * i as u32;
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                fetch_discarding(Command::new("curl"), &url)
                    .map(|_| started.elapsed().as_secs_f64())
            })
        })
        .collect();
    let results: Vec<Result<f64, String>> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    let cpu_seconds = pyrsia_tests::process::machine_busy_seconds() - busy_before;
    if let Some(profile) = profile {
        profile.stop();
    }
    let failed: Vec<String> = results
        .iter()
        .zip(&nodes)
        .filter_map(|(result, node)| {
            let why = result.as_ref().err()?;
            let log = node.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Some(format!("{why}\n{}", tail.join("\n")))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {n} pulls failed:\n{}",
        failed.len(),
        failed.join("\n---\n")
    );
    let times = results.into_iter().flatten().collect();
    let uploads: Vec<u64> = nodes
        .iter()
        .map(|n| n.metric("piece_bytes_served"))
        .collect();
    let largest_other_upload = nodes
        .iter()
        .zip(&uploads)
        .filter(|(n, _)| n.metric("upstream_bytes") == 0)
        .map(|(_, up)| *up)
        .max()
        .unwrap_or(0);
    Run {
        times,
        upstream_gets: registry.blob_gets(&digest.to_string()),
        largest_upload: uploads.iter().copied().max().unwrap_or(0),
        largest_other_upload,
        served: uploads.iter().sum(),
        partial: nodes
            .iter()
            .map(|n| n.metric("piece_bytes_served_partial"))
            .sum(),
        cpu_seconds,
        connections: connections_by_transport(&nodes),
    }
}

/// `rounds` rounds, each with a fresh node B next to holder A, with and without a staller
/// (alternated): B fetches two blobs A holds, one after the other. Prints each fetch's wall.
fn staller_rounds(rounds: usize) {
    use pyrsia_tests::image::push_large_image_named;
    use pyrsia_tests::link_attacker::stalling_stranger;
    let work = tempfile::tempdir().expect("temp dir");
    let registry = Registry::start(&work.path().join("registry"));
    let images: Vec<_> = ["first", "second"]
        .iter()
        .map(|name| push_large_image_named(work.path(), &registry.authority(), SIZE, name))
        .collect();
    let a = Node::start(&work.path().join("a"), &["--upstream", &registry.url()]);
    let blob_url = |node: &Node, image: &pyrsia_tests::image::PushedImage| {
        let name = image.reference.split(['/', ':']).nth(1).expect("a name");
        format!(
            "{}/v2/library/{name}/blobs/{}",
            node.url(),
            image.layers[0].blob.digest
        )
    };
    for image in &images {
        fetch_discarding(Command::new("curl"), &blob_url(&a, image)).expect("A fetches");
        assert!(a.wait_stored(&image.layers[0].blob.digest));
    }
    let blobs: Vec<_> = images
        .iter()
        .map(|i| (i.layers[0].blob.digest, i.layers[0].blob.size))
        .collect();
    println!("| round | staller | first fetch, s | second fetch, s |");
    println!("|---:|---|---:|---:|");
    for round in 0..rounds * 2 {
        let with_staller = round % 2 == 0;
        let b = Node::start(
            &work.path().join(format!("b{round}")),
            &["--peer", &a.p2p_address()],
        );
        pyrsia_tests::node::wait_mesh(&[&a, &b]);
        let staller = with_staller.then(|| {
            let stranger = stalling_stranger(&b, blobs.clone());
            // Let its provider records reach B.
            std::thread::sleep(Duration::from_secs(1));
            stranger
        });
        let walls: Vec<f64> = images
            .iter()
            .map(|image| {
                fetch_discarding(Command::new("curl"), &blob_url(&b, image))
                    .unwrap_or_else(|e| panic!("B fetches: {e}\n{}", b.log()))
                    .seconds
            })
            .collect();
        let asked = staller
            .as_ref()
            .map_or(0, |(holder, _)| holder.piece_requests());
        println!(
            "| {} | {} | {:.2} | {:.2} |",
            round / 2 + 1,
            if with_staller {
                format!("yes (asked for {asked} pieces)")
            } else {
                "no".to_string()
            },
            walls[0],
            walls[1]
        );
    }
}

/// Blob files written in each [`page_cache_writes`] run, as many as the nodes of a 16-node
/// swarm write (each node its own copy).
const FILES: usize = 16;

/// `files` fresh files of [`SIZE`] bytes each, filled from a 1 MiB buffer `slice` bytes per
/// `write` by `writers` threads at once (each writes its share of the files in turn, so 1
/// writer writes the same bytes one file after another): the machine's busy CPU seconds and
/// the wall time. How the nodes of a swarm write the
/// pieces they receive to their temp files (runtime-std's blob writer slices each piece),
/// measured alone; the one-writer rows tell the cost of many writers at once from the cost
/// of many fresh bytes.
fn page_cache_writes(files: usize, writers: usize, slice: usize) -> (f64, f64) {
    use std::io::Write;
    let work = tempfile::tempdir().expect("temp dir");
    let busy_before = pyrsia_tests::process::machine_busy_seconds();
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let dir = work.path().to_path_buf();
            std::thread::spawn(move || {
                for i in (w..files).step_by(writers) {
                    let piece: Vec<u8> =
                        (0..1u32 << 20).map(|b| (b * 31 + i as u32) as u8).collect();
                    let path = dir.join(format!("blob{i}"));
                    let mut file = std::fs::File::create(path).expect("a temp file");
                    for _ in 0..SIZE >> 20 {
                        for part in piece.chunks(slice) {
                            file.write_all(part).expect("write");
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    (
        pyrsia_tests::process::machine_busy_seconds() - busy_before,
        started.elapsed().as_secs_f64(),
    )
}

fn p50(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn max(times: &[f64]) -> f64 {
    times.iter().copied().fold(0.0, f64::max)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, n, rest @ ..] = args.as_slice()
        && (mode == "swarm" || mode == "direct")
    {
        let n: usize = n
            .parse()
            .expect("swarm|direct N [wan] [tcp|quic] [nolinks]: N nodes");
        let wan = rest.iter().any(|a| a == "wan");
        let mut node_args: Vec<&str> = Vec::new();
        if rest.iter().any(|a| a == "tcp") {
            node_args.push("--no-quic");
        } else if rest.iter().any(|a| a == "quic") {
            node_args.push("--quic-on-lan");
        }
        if rest.iter().any(|a| a == "nolinks") {
            node_args.push("--no-piece-links");
        }
        let swarm = run(n, mode == "swarm", wan, Duration::ZERO, &node_args);
        println!(
            "{n} nodes ({mode}): wall {:.2} s (p50 {:.2} s), machine CPU {:.1} s, upstream GETs {}, peer bytes {:.2}× the {} copies needed, largest node upload {:.2}× the blob ({:.2}× among nodes that fetched nothing from the upstream); connection ends over TCP {}, over QUIC {}",
            max(&swarm.times),
            p50(&swarm.times),
            swarm.cpu_seconds,
            swarm.upstream_gets,
            swarm.served as f64 / ((n - 1) as f64 * SIZE as f64),
            n - 1,
            swarm.largest_upload as f64 / SIZE as f64,
            swarm.largest_other_upload as f64 / SIZE as f64,
            swarm.connections.0,
            swarm.connections.1
        );
        return;
    }
    if let [mode, n] = args.as_slice()
        && mode == "idle"
    {
        let n: usize = n.parse().expect("idle N: N nodes");
        let work = tempfile::tempdir().expect("temp dir");
        let registry = Registry::start(&work.path().join("registry"));
        let nodes = nodes(work.path(), &registry.url(), n, true, &[]);
        std::thread::sleep(Duration::from_secs(5));
        let busy_before = pyrsia_tests::process::machine_busy_seconds();
        let window = Duration::from_secs(10);
        std::thread::sleep(window);
        let busy = pyrsia_tests::process::machine_busy_seconds() - busy_before;
        println!(
            "{n} connected nodes, no pulls: machine CPU {busy:.2} s in {} s ({:.1}% of one core per node)",
            window.as_secs(),
            busy / window.as_secs_f64() / n as f64 * 100.0
        );
        drop(nodes);
        return;
    }
    if args.first().is_some_and(|a| a == "staller") {
        let rounds: usize = args
            .get(1)
            .map_or(3, |r| r.parse().expect("staller [ROUNDS]"));
        staller_rounds(rounds);
        return;
    }
    if args.first().is_some_and(|a| a == "page-cache") {
        println!(
            "| files | writers at once | writes of | machine CPU (three runs) | wall (three runs) |"
        );
        println!("|---:|---:|---:|---:|---:|");
        // Alternated, each after a pause, so that no row always writes into the memory the
        // same other row just freed (a VM may hand memory freed for a few seconds back to
        // its host).
        let rows: [(usize, usize, usize); 6] = [
            (FILES, FILES, 1 << 20),
            (FILES, FILES, 512 << 10),
            (FILES, FILES, 256 << 10),
            (FILES, FILES, 64 << 10),
            (FILES, 1, 256 << 10),
            (1, 1, 256 << 10),
        ];
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new(); rows.len()];
        for _ in 0..3 {
            for (i, &(files, writers, slice)) in rows.iter().enumerate() {
                std::thread::sleep(Duration::from_secs(5));
                runs[i].push(page_cache_writes(files, writers, slice));
            }
        }
        for (&(files, writers, slice), runs) in rows.iter().zip(&runs) {
            let cpu: Vec<String> = runs.iter().map(|r| format!("{:.2} s", r.0)).collect();
            let wall: Vec<String> = runs.iter().map(|r| format!("{:.2} s", r.1)).collect();
            println!(
                "| {files} | {writers} | {} KiB | {} | {} |",
                slice >> 10,
                cpu.join(", "),
                wall.join(", ")
            );
        }
        return;
    }
    // `pyrsia-bench-p2p wan`: the WAN table and the staggered rows only.
    let links: &[bool] = if args.first().is_some_and(|a| a == "wan") {
        &[true]
    } else {
        &[false, true]
    };
    for &wan in links {
        println!();
        println!(
            "Upstream {}:",
            if wan {
                "behind one shared 100 MB/s link"
            } else {
                "on loopback"
            }
        );
        println!();
        println!(
            "| nodes | swarm wall (max / p50) | direct wall (max / p50) | swarm ÷ direct | upstream GETs (swarm / direct) | largest node upload (× blob) | peer bytes from partial holders | peer bytes ÷ (nodes − 1) blobs |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
        for n in SIZES {
            let swarm = run(n, true, wan, Duration::ZERO, &[]);
            let direct = run(n, false, wan, Duration::ZERO, &[]);
            let share = if swarm.served == 0 {
                0.0
            } else {
                100.0 * swarm.partial as f64 / swarm.served as f64
            };
            println!(
                "| {n} | {:.2} s / {:.2} s | {:.2} s / {:.2} s | {:.2}× | {} / {} | {:.2} | {share:.0}% | {:.2} |",
                max(&swarm.times),
                p50(&swarm.times),
                max(&direct.times),
                p50(&direct.times),
                max(&swarm.times) / max(&direct.times),
                swarm.upstream_gets,
                direct.upstream_gets,
                swarm.largest_upload as f64 / SIZE as f64,
                swarm.served as f64 / ((n - 1) as f64 * SIZE as f64),
            );
        }
    }
    println!();
    println!("Staggered arrivals (8 nodes, one every 0.5 s, upstream on loopback):");
    println!();
    println!("| | last client done | p50 | upstream GETs | largest node upload (× blob) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, swarm) in [("swarm", true), ("direct", false)] {
        let r = run(8, swarm, false, Duration::from_millis(500), &[]);
        println!(
            "| {name} | {:.2} s | {:.2} s | {} | {:.2} |",
            max(&r.times),
            p50(&r.times),
            r.upstream_gets,
            r.largest_upload as f64 / SIZE as f64
        );
    }
}
