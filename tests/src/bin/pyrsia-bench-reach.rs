//! `pyrsia-bench-reach` (issue 19): one node-to-node transfer of a fresh 200 MiB blob over
//! TCP + TLS 1.3 + yamux (noise with an older peer) and over QUIC, on loopback and across a
//! lab link that holds every packet 10 ms each way (20 ms round trip;
//! `netns::Lab::delayed_pair`), each with MB/s and
//! the CPU seconds both node processes spent per GB moved; beside them, the same blob fetched
//! with curl straight from the registry over the same path (on the delayed link, its ceiling:
//! the delay line is two threads of this process). Then, in the NAT lab, the time a node takes
//! from its start to connect through the bootstrap node's DNS name, and to reach a private
//! peer directly by hole punching (two endpoint-independent NATs) or only through the relay
//! (behind the symmetric NAT). Needs root (network namespaces). Run it through
//! `scripts/bench` (release build); prints Markdown tables. `pyrsia-bench-reach transfer
//! [--no-quic | --quic-on-lan]` runs one loopback transfer only, over TCP unless
//! `--quic-on-lan` (to profile the data path with `perf`);
//! `pyrsia-bench-reach transfers` the transfer table only (and the floor);
//! `pyrsia-bench-reach floor` the floor alone: the same pieces over TLS without libp2p
//! ([`pyrsia_tests::tls_floor`]). With `PYRSIA_BENCH_PERF=<file>`,
//! each transfer's peer fetch alone is recorded with `perf record -g` into `<file>`.

use std::process::Command;
use std::time::{Duration, Instant};

use pyrsia_tests::curl::{Fetched, fetch_discarding};
use pyrsia_tests::image::push_large_image;
use pyrsia_tests::netns::{Host, Lab, Nat};
use pyrsia_tests::node::Node;
use pyrsia_tests::perf::{Profile, Sampled};
use pyrsia_tests::process::cpu_seconds;
use pyrsia_tests::reach::{circuit_address, peer_entry, start_named_relay};
use pyrsia_tests::registry::Registry;

const SIZE: u64 = 200 << 20;
/// The delay the lab link adds each way.
const ONE_WAY: Duration = Duration::from_millis(10);
/// Each transport measured, with the node arguments that make the nodes use it. Every host
/// here is on loopback or a private lab address, which nodes dial over TCP first by
/// default; `--quic-on-lan` makes them dial over QUIC first.
const TRANSPORTS: [(&str, &[&str]); 2] = [
    ("TCP + TLS 1.3 + yamux", &["--no-quic"]),
    ("QUIC", &["--quic-on-lan"]),
];

/// Fetches `url` with curl (in `host`'s namespace when given), discarding the body
/// ([`fetch_discarding`]); panics when curl fails.
fn curl(host: Option<&Host>, url: &str) -> Fetched {
    let command = match host {
        Some(host) => host.command("curl"),
        None => Command::new("curl"),
    };
    fetch_discarding(command, url).unwrap_or_else(|e| panic!("{e}"))
}

/// A registry holding a fresh blob of [`SIZE`], on loopback or on the first lab host, with
/// the URL the nodes (or the other host) reach it at.
fn registry_with_blob(
    work: &std::path::Path,
    hosts: Option<(&Host, &Host)>,
) -> (Registry, pyrsia_tests::image::PushedImage, String) {
    let registry = match hosts {
        Some((a, _)) => Registry::start_in(&work.join("registry"), a),
        None => Registry::start(&work.join("registry")),
    };
    let image = push_large_image(work, &registry.authority(), SIZE);
    let url = match hosts {
        Some((a, _)) => registry.lab_url(a),
        None => registry.url(),
    };
    (registry, image, url)
}

/// One transfer's measurements.
struct Transfer {
    seconds: f64,
    mb_per_second: f64,
    cpu_per_gb: f64,
}

/// One node-to-node transfer of a fresh blob between two nodes started with `extra`, on
/// loopback (`hosts` `None`) or on the two lab hosts: the node the network asks to fetch the
/// blob from the upstream fetches it first, then the other asks it of that node. Checks the
/// body, that it came from the peer, and over which transport.
fn transfer(hosts: Option<(&Host, &Host)>, extra: &[&str]) -> Transfer {
    let work = tempfile::tempdir().expect("temp dir");
    let (registry, image, upstream) = registry_with_blob(work.path(), hosts);
    let digest = image.layers[0].blob.digest;
    let start = |i: usize, peer: Option<&Node>| {
        let dir = work.path().join(format!("node{i}"));
        let mut args = vec!["--upstream", upstream.as_str()];
        args.extend_from_slice(extra);
        let address = peer.map(Node::p2p_address);
        if let Some(address) = &address {
            args.extend(["--peer", address]);
        }
        match hosts {
            Some((a, b)) => Node::start_on(if i == 0 { a } else { b }, &dir, &args),
            None => Node::start(&dir, &args),
        }
    };
    let first = start(0, None);
    let second = start(1, Some(&first));
    let pair = [first, second];
    let ids: Vec<String> = pair.iter().map(Node::peer_id).collect();
    let order = pyrsia_tests::raw_peer::claimant_order(&digest, &ids);
    let (holder, asker) = (&pair[order[0]], &pair[order[1]]);
    asker.wait_connected(&holder.peer_id());
    let path = format!("/v2/library/large/blobs/{digest}");
    curl(None, &format!("{}{path}", holder.url()));
    assert!(holder.wait_stored(&digest));
    let profile = Profile::if_asked(Sampled::Processes(&[holder.pid(), asker.pid()]), "");
    let cpu_before = cpu_seconds(holder.pid()) + cpu_seconds(asker.pid());
    let fetched = curl(None, &format!("{}{path}", asker.url()));
    let cpu = cpu_seconds(holder.pid()) + cpu_seconds(asker.pid()) - cpu_before;
    if let Some(profile) = profile {
        profile.stop();
    }
    let size = image.layers[0].blob.size;
    assert_eq!(fetched.bytes, size);
    let from_peer = asker.metric("peer_bytes");
    assert!(from_peer >= size, "it came from the peer\n{}", asker.log());
    assert_eq!(registry.blob_gets(&digest.to_string()), 1);
    let quic = extra.contains(&"--quic-on-lan") && !extra.contains(&"--no-quic");
    let addresses = asker.peer_addresses(&holder.peer_id());
    assert!(
        addresses.iter().all(|a| a.contains("/quic-v1") == quic),
        "connected over the wrong transport: {addresses:?}"
    );
    Transfer {
        seconds: fetched.seconds,
        mb_per_second: size as f64 / fetched.seconds / 1e6,
        cpu_per_gb: cpu / (size as f64 / 1e9),
    }
}

/// The blob fetched with curl straight from a registry: on loopback, or from one lab host's
/// registry by the other host across the delay line. Returns MB/s.
fn direct_fetch(hosts: Option<(&Host, &Host)>) -> f64 {
    let work = tempfile::tempdir().expect("temp dir");
    let (_registry, image, url) = registry_with_blob(work.path(), hosts);
    let digest = image.layers[0].blob.digest;
    let client = hosts.map(|(_, b)| b);
    let fetched = curl(client, &format!("{url}/v2/library/large/blobs/{digest}"));
    assert_eq!(fetched.bytes, image.layers[0].blob.size);
    fetched.bytes as f64 / fetched.seconds / 1e6
}

fn transfers() {
    println!();
    println!(
        "One node-to-node transfer of a fresh 200 MiB blob (three runs each; CPU: both node processes, user + system, per GB moved):"
    );
    println!();
    println!("| path | transport | run 1 | run 2 | run 3 | CPU s/GB (median) |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut lab = Lab::new();
    let (a, b, _line) = lab.delayed_pair(["far1", "far2"], ONE_WAY);
    let places: [(&str, Option<(&Host, &Host)>); 2] = [
        ("loopback", None),
        ("lab link, +20 ms round trip", Some((&a, &b))),
    ];
    for (place, hosts) in places {
        for (name, extra) in TRANSPORTS {
            let runs: Vec<Transfer> = (0..3).map(|_| transfer(hosts, extra)).collect();
            let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_per_gb).collect();
            cpu.sort_by(f64::total_cmp);
            let cells: Vec<String> = runs
                .iter()
                .map(|r| format!("{:.0} MB/s ({:.2} s)", r.mb_per_second, r.seconds))
                .collect();
            println!(
                "| {place} | {name} | {} | {:.1} |",
                cells.join(" | "),
                cpu[1]
            );
        }
        println!(
            "| {place} | curl straight from the registry (HTTP/1.1 over TCP) | {:.0} MB/s | | | |",
            direct_fetch(hosts)
        );
    }
    floor();
}

/// Prints three runs of the transfer floor ([`pyrsia_tests::tls_floor`]): 1 GiB in 1 MiB
/// pieces over TLS on loopback without libp2p, both ends in this process.
fn floor() {
    println!();
    println!(
        "The floor: 1 GiB in 1 MiB pieces, three in flight, over one TLS connection on loopback with the node's TLS configuration and no libp2p (both ends in one process, blocking IO):"
    );
    println!();
    for run in 1..=3 {
        let floor = pyrsia_tests::tls_floor::transfer(1024);
        println!(
            "- run {run}: {:.0} MB/s, {:.2} CPU s/GB ({})",
            floor.mb_per_second, floor.cpu_per_gb, floor.cipher
        );
    }
}

/// Polls `done` every 50 ms until it holds (at most two minutes); returns the seconds since
/// `since`.
fn seconds_until(
    since: Instant,
    what: &str,
    logs: &dyn Fn() -> String,
    done: impl Fn() -> bool,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} never happened\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    since.elapsed().as_secs_f64()
}

/// The NAT lab's connection times over one transport: (join by name, hole-punched direct
/// connection, relayed connection behind the symmetric NAT, until DCUtR gave up there).
fn connect_times(transport_args: &[&str]) -> (f64, f64, f64, f64) {
    let work = tempfile::tempdir().expect("temp dir");
    let mut lab = Lab::new();
    let relay_host = lab.public_host("relay", 10);
    let first_host = lab.private_host("cone", Nat::EndpointIndependent);
    let second_host = lab.private_host("cone2", Nat::EndpointIndependent);
    let symmetric_host = lab.private_host("sym", Nat::Symmetric);
    let (relay, bootstrap) = start_named_relay(
        &mut lab,
        &relay_host,
        &work.path().join("relay"),
        transport_args,
        &["--offline"],
        "boot.pyrsia.test",
    );
    let start = |host: &Host, name: &str, extra: &[&str]| {
        let mut args = vec!["--peer", bootstrap.as_str()];
        args.extend_from_slice(transport_args);
        args.extend_from_slice(extra);
        Node::start_on(host, &work.path().join(name), &args)
    };
    let relay_id = relay.peer_id();
    let started = Instant::now();
    let first = start(&first_host, "cone", &[]);
    let logs = || first.log();
    let joined = seconds_until(started, "joining by name", &logs, || {
        first.connected_peers().contains(&relay_id)
    });
    let logs = || format!("{}\n{}", relay.log(), first.log());
    let circuit = circuit_address(&first, &relay, &logs);
    let first_id = first.peer_id();

    let started = Instant::now();
    let second = start(&second_host, "cone2", &["--peer", &circuit]);
    let logs = || format!("{}\n{}", first.log(), second.log());
    let punched = seconds_until(started, "a hole-punched connection", &logs, || {
        peer_entry(&second, &first_id)["path"] == "hole-punched"
    });

    let started = Instant::now();
    let symmetric = start(&symmetric_host, "sym", &["--peer", &circuit]);
    let logs = || format!("{}\n{}", first.log(), symmetric.log());
    let relayed = seconds_until(started, "a relayed connection", &logs, || {
        peer_entry(&symmetric, &first_id)["path"] == "relayed"
    });
    let gave_up = seconds_until(started, "the hole punch failing", &logs, || {
        symmetric.log().contains("hole punching failed")
            || first.log().contains("hole punching failed")
    });
    (joined, punched, relayed, gave_up)
}

fn connections() {
    println!();
    println!(
        "Time from a node's start (process spawned) to a connection, in the NAT lab (three runs each, median):"
    );
    println!();
    println!(
        "| transport | joined through `/dns4/boot.pyrsia.test/…` | hole-punched to a peer behind a cone NAT | relayed to it from behind the symmetric NAT | DCUtR gave up there |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, extra) in TRANSPORTS {
        let runs: Vec<(f64, f64, f64, f64)> = (0..3).map(|_| connect_times(extra)).collect();
        let median = |pick: fn(&(f64, f64, f64, f64)) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values[1]
        };
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            median(|r| r.0),
            median(|r| r.1),
            median(|r| r.2),
            median(|r| r.3)
        );
    }
}

fn main() {
    // `pyrsia-bench-reach transfer [--no-quic | --quic-on-lan]`: one loopback transfer only
    // (for profiling).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor") {
        floor();
        return;
    }
    if args.first().map(String::as_str) == Some("transfer") {
        let extra: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let run = transfer(None, &extra);
        println!(
            "{:.0} MB/s ({:.2} s), {:.1} CPU s/GB",
            run.mb_per_second, run.seconds, run.cpu_per_gb
        );
        return;
    }
    transfers();
    if args.first().map(String::as_str) == Some("transfers") {
        return;
    }
    connections();
}
