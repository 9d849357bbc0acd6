//! `pyrsia-sim`: the deterministic simulations.
//!
//! `pyrsia-sim --seeds N --nodes M --byzantine F` runs, for seeds 1..=N with M members of
//! which F are byzantine, the member node the daemon runs (`core::consensus::node`, with
//! byzantine members running it with a misbehaviour), and the verified-build rounds and the
//! Tendermint ordering of `core::consensus` on their own, under a seeded network with drops, delays, duplication, reordering,
//! partitions, crashes and clock skew that then heals, and light clients following the final
//! checkpoints against forged, older and frozen ones; the invariants are checked after every
//! step. `pyrsia-sim --seed S --nodes M --byzantine F`
//! replays one seed and prints its `trace` (a hash of the whole run: the same seed gives the
//! same line). Any violation exits 1 with `reproduce with --seed S`.
//!
//! `pyrsia-sim pieces [--seed S] [--nodes M]` prints how long `n` nodes (4 to 10,000, or M)
//! take to get one blob when they all want it at once, each running core's piece schedule:
//! in a full mesh (up to 100 nodes), with 16-peer views, with 16-peer views under 5% churn,
//! and under 5% churn, 5% slow nodes and 5% liars, beside the lower bound no schedule can
//! beat and the queued requests of the node before its busy answer.
//!
//! `pyrsia-sim claims [--seeds N | --seed S] [--nodes M]` prints how many times the blob
//! crosses the upstream when 16 to 10,000 nodes (or M) want it, each finding its source with
//! core's `SourceSearch` and each node asked answering with core's `honour`: without faults,
//! with spread arrivals, with lookups that miss the nearest node, with nodes at their
//! connection limit, with the fetcher killed, and all at once (the worst of seeds 1..=N).
//! Two more columns hold every node to at most 5 and 40 connections (`--max-peers`), the
//! DHT reaching only what those connections allow. With `--trace SCENARIO` (`calm`, `spread`,
//! `miss`, `limit`, `kill`, `all`, every fault at once, or `capped`, every node held to
//! `--max-peers M` connections, default 5), it prints what happened in that run for one seed
//! (`--seed S`, default 1) and size (`--nodes M`, default 100): each node's connections (when
//! capped), each ask to fetch for the network, each download whose peers stopped delivering,
//! each upstream fetch.

use pyrsia_core::digest::Hasher;
use pyrsia_sim::pieces::{Faults, Params, lower_bound, run};
use pyrsia_sim::{builds, clients, ordering};

const USAGE: &str = "usage: pyrsia-sim [--seeds N | --seed S] [--nodes M] [--byzantine F]\n       pyrsia-sim members [--seeds N | --seed S] [--nodes M] [--byzantine F] [--calm] [--adversary silent|split-votes|flood|wrong-digest|forger]\n       pyrsia-sim pieces [--seed S] [--nodes M]\n       pyrsia-sim claims [--seeds N | --seed S] [--nodes M] [--trace calm|spread|miss|limit|kill|all|capped [--max-peers M]]\n       pyrsia-sim bench [--nodes M]\n       pyrsia-sim bench-members";

fn flag(args: &[String], name: &str) -> Option<u64> {
    let value = args.iter().position(|a| a == name).map(|i| args.get(i + 1));
    match value {
        None => None,
        Some(Some(v)) => Some(v.parse().unwrap_or_else(|_| usage())),
        Some(None) => usage(),
    }
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("pieces") {
        return pieces(
            flag(&args, "--seed").unwrap_or(1),
            flag(&args, "--nodes").map(|n| n as usize),
        );
    }
    if args.first().map(String::as_str) == Some("claims") {
        let seeds: Vec<u64> = match (flag(&args, "--seed"), flag(&args, "--seeds")) {
            (Some(seed), _) => vec![seed],
            (None, count) => (1..=count.unwrap_or(20)).collect(),
        };
        let nodes = flag(&args, "--nodes").map(|n| n as usize);
        if let Some(at) = args.iter().position(|a| a == "--trace") {
            let scenario = args.get(at + 1).map_or("all", String::as_str);
            let max_peers = flag(&args, "--max-peers").map_or(5, |m| m as usize);
            return claims_trace(scenario, seeds[0], nodes.unwrap_or(100), max_peers);
        }
        return claims(&seeds, nodes);
    }
    if args.first().map(String::as_str) == Some("members") {
        return members(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("bench-members") {
        return bench_members();
    }
    if args.first().map(String::as_str) == Some("bench") {
        let sizes: Vec<usize> = match flag(&args, "--nodes") {
            Some(n) => vec![n as usize],
            None => vec![4, 31, 100, 1000],
        };
        bench(&sizes);
        bench_flood();
        return bench_members();
    }
    if args.iter().any(|a| {
        a.starts_with("--")
            && !matches!(a.as_str(), "--seeds" | "--seed" | "--nodes" | "--byzantine")
    }) {
        usage();
    }
    let nodes = flag(&args, "--nodes").unwrap_or(4) as usize;
    let f = nodes.saturating_sub(1) / 3;
    let byzantine = flag(&args, "--byzantine").unwrap_or(f as u64) as usize;
    if nodes < 1 || byzantine > f {
        eprintln!("--byzantine must be at most f = {f} for {nodes} members");
        std::process::exit(2);
    }
    let seeds: Vec<u64> = match (flag(&args, "--seed"), flag(&args, "--seeds")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (1..=count).collect(),
        (None, None) => (1..=100).collect(),
    };
    let single = seeds.len() == 1;
    let (mut committed, mut unverifiable, mut steps) = (0, 0, 0);
    for seed in seeds.iter().copied() {
        let outcome = builds::run(builds::Params {
            nodes,
            byzantine,
            seed,
            adversary: None,
        });
        let ordered = ordering::run(ordering::Params {
            nodes,
            byzantine,
            seed,
            adversary: None,
        });
        let followed = clients::run(clients::Params {
            nodes,
            byzantine,
            seed,
        });
        let nodes_run = pyrsia_sim::members::run(pyrsia_sim::members::Params {
            nodes,
            byzantine,
            seed,
            adversary: None,
            faults: true,
        });
        steps += outcome.steps + ordered.steps + followed.offers + nodes_run.steps;
        committed += outcome.committed;
        unverifiable += outcome.unverifiable;
        let mut trace = Hasher::new();
        trace.update(&outcome.trace);
        trace.update(&ordered.trace);
        trace.update(&followed.trace);
        trace.update(&nodes_run.trace);
        if single {
            println!(
                "seed {seed} nodes {nodes} byzantine {byzantine}: builds {} steps, {} committed, {} unverifiable; ordering {} steps, {} heights decided at {} ms, {} crashes; light clients {} offers, {} accepted, {} refused without quorum, {} rollbacks, {} too old; member nodes {} deliveries, {} final checkpoints; trace {}",
                outcome.steps,
                outcome.committed,
                outcome.unverifiable,
                ordered.steps,
                ordering::HEIGHTS,
                ordered.finished_at.map_or(0, |t| t.as_micros() / 1000),
                ordered.crashes,
                followed.offers,
                followed.accepted,
                followed.no_quorum,
                followed.rollbacks,
                followed.too_old,
                nodes_run.steps,
                nodes_run.checkpoints,
                hex(trace.finish().as_bytes())
            );
        }
        let violations: Vec<&String> = outcome
            .violations
            .iter()
            .chain(&ordered.violations)
            .chain(&followed.violations)
            .chain(&nodes_run.violations)
            .collect();
        if !violations.is_empty() {
            for violation in violations {
                eprintln!("seed {seed}: {violation}");
            }
            eprintln!("reproduce with --seed {seed} --nodes {nodes} --byzantine {byzantine}");
            std::process::exit(1);
        }
    }
    if !single {
        println!(
            "{} seeds, {nodes} members, {byzantine} byzantine: every invariant held; {steps} steps; honest build rounds {committed} committed, {unverifiable} unverifiable; every honest member decided {} heights; member nodes committed every request",
            seeds.len(),
            ordering::HEIGHTS
        );
    }
}

/// `pyrsia-sim members`: the member node itself (`core::consensus::node`) under seeded faults
/// and byzantine members running the same node with a misbehaviour.
fn members(args: &[String]) {
    let nodes = flag(args, "--nodes").unwrap_or(4) as usize;
    let f = pyrsia_core::members::faults_for(nodes);
    let byzantine = flag(args, "--byzantine").unwrap_or(f as u64) as usize;
    if nodes < 1 || byzantine > f {
        eprintln!("--byzantine must be at most f = {f} for {nodes} members");
        std::process::exit(2);
    }
    let seeds: Vec<u64> = match (flag(args, "--seed"), flag(args, "--seeds")) {
        (Some(seed), _) => vec![seed],
        (None, Some(count)) => (1..=count).collect(),
        (None, None) => (1..=20).collect(),
    };
    let calm = args.iter().any(|a| a == "--calm");
    let adversary = args.iter().position(|a| a == "--adversary").map(|i| {
        match args.get(i + 1).map(String::as_str) {
            Some("silent") => pyrsia_sim::members::Adversary::Silent,
            Some("split-votes") => pyrsia_sim::members::Adversary::SplitVotes,
            Some("flood") => pyrsia_sim::members::Adversary::Flood,
            Some("wrong-digest") => pyrsia_sim::members::Adversary::WrongDigest,
            Some("forger") => pyrsia_sim::members::Adversary::Forger,
            _ => usage(),
        }
    });
    let mut steps = 0;
    for &seed in &seeds {
        let started = cpu_seconds();
        let outcome = pyrsia_sim::members::run(pyrsia_sim::members::Params {
            nodes,
            byzantine,
            seed,
            adversary,
            faults: !calm,
        });
        steps += outcome.steps;
        if seeds.len() == 1 {
            println!(
                "seed {seed} nodes {nodes} byzantine {byzantine}: {} deliveries, {} final checkpoints, done at {} ms, {:.1} CPU s; trace {}",
                outcome.steps,
                outcome.checkpoints,
                outcome.finished_at.map_or(0, |t| t.as_micros() / 1000),
                cpu_seconds() - started,
                hex(&outcome.trace)
            );
        }
        if !outcome.violations.is_empty() {
            for violation in &outcome.violations {
                eprintln!("seed {seed}: {violation}");
            }
            eprintln!(
                "reproduce with pyrsia-sim members --seed {seed} --nodes {nodes} --byzantine {byzantine}"
            );
            std::process::exit(1);
        }
    }
    if seeds.len() > 1 {
        println!(
            "member nodes: {} seeds, {nodes} members, {byzantine} byzantine: every invariant held; {steps} deliveries",
            seeds.len()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ordering cost as members grow, on a calm network (every message once, after one delay):
/// simulated node-steps per CPU second, commit latency in message delays, and messages and
/// bytes per committed batch.
fn bench(sizes: &[usize]) {
    use pyrsia_core::time::Duration;
    let delay = Duration::from_millis(10);
    let value_len = 1024;
    println!(
        "Tendermint ordering, calm network (one delivery per message after {} ms), batches of {value_len} B, no byzantine member",
        delay.as_millis()
    );
    println!();
    println!(
        "| members | heights | node-steps | CPU s | node-steps per CPU s | latency (message delays) | messages per commit | bytes per commit |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &nodes in sizes {
        let heights = match nodes {
            0..=10 => 2000,
            11..=40 => 100,
            41..=200 => 10,
            _ => 2,
        };
        let scenario = ordering::Scenario::calm(delay, heights, value_len);
        let mut rng = pyrsia_core::rng::Rng::seed_from_u64(1);
        let started = cpu_seconds();
        let outcome = ordering::run_scenario(
            ordering::Params {
                nodes,
                byzantine: 0,
                seed: 1,
                adversary: None,
            },
            &scenario,
            &mut rng,
        );
        let cpu = cpu_seconds() - started;
        if !outcome.violations.is_empty() {
            eprintln!("{nodes} members: {:?}", outcome.violations);
            std::process::exit(1);
        }
        let mut previous = 0;
        let latencies: Vec<u64> = outcome
            .decided_at
            .iter()
            .map(|at| {
                let took = at.as_micros() - previous;
                previous = at.as_micros();
                took
            })
            .collect();
        let mean = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64;
        println!(
            "| {nodes} | {heights} | {} | {cpu:.3} | {:.0} | {:.1} | {} | {} |",
            outcome.steps,
            outcome.steps as f64 / cpu.max(1e-9),
            mean / delay.as_micros() as f64,
            outcome.messages / heights,
            outcome.bytes / heights,
        );
    }
}

/// Commits per simulated minute on a calm network with no byzantine member, with f silent
/// ones, and with f flooders (each answers every message it hears with junk votes and
/// proposals): the flood should cost no more than silence (a member that does not take part
/// already costs a propose timeout whenever it is the proposer).
fn bench_flood() {
    use pyrsia_core::time::Duration;
    let delay = Duration::from_millis(10);
    let heights = 300;
    println!();
    println!(
        "Commits per simulated minute, calm network ({} ms per message), {heights} heights",
        delay.as_millis()
    );
    println!();
    println!("| members | byzantine | commits per minute | messages | rate against f silent |");
    println!("|---:|---|---:|---:|---:|");
    for nodes in [4, 7] {
        let f = (nodes - 1) / 3;
        let mut silent = 0.0;
        for (label, byzantine, adversary) in [
            ("none", 0, None),
            ("f silent", f, Some(ordering::Adversary::Silent)),
            ("f flooders", f, Some(ordering::Adversary::Flood)),
        ] {
            let scenario = ordering::Scenario::calm(delay, heights, 64);
            let mut rng = pyrsia_core::rng::Rng::seed_from_u64(1);
            let params = ordering::Params {
                nodes,
                byzantine,
                seed: 1,
                adversary,
            };
            let outcome = ordering::run_scenario(params, &scenario, &mut rng);
            if !outcome.violations.is_empty() {
                eprintln!("{nodes} members, {label}: {:?}", outcome.violations);
                std::process::exit(1);
            }
            let minutes = outcome
                .finished_at
                .map_or(f64::INFINITY, |t| t.as_micros() as f64 / 60e6);
            let rate = heights as f64 / minutes;
            if adversary == Some(ordering::Adversary::Silent) {
                silent = rate;
            }
            let share = if silent > 0.0 {
                format!("{:.0}%", 100.0 * rate / silent)
            } else {
                "-".to_string()
            };
            println!(
                "| {nodes} | {label} | {rate:.0} | {} | {share} |",
                outcome.messages
            );
        }
    }
}

/// The member node itself (`core::consensus::node`, real signatures and batches) on a calm
/// network (up to `MAX_MEMBERS`, 64, the largest member set): per size, commit latency (pull to every honest member holding the commit),
/// member messages and bytes per final checkpoint; and, at 4 and 7 members, honest requests
/// committed per simulated minute with f silent members against f flooders.
fn bench_members() {
    use pyrsia_core::time::Duration;
    use pyrsia_sim::members::{Adversary, Params, Workload, run_workload};
    println!();
    println!(
        "Member nodes (core::consensus::node), calm network (10 ms per message), one request every 2 s"
    );
    println!();
    println!(
        "| members | byzantine | requests | mean latency ms | final checkpoints | messages per checkpoint | bytes per checkpoint | CPU s |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let cases: [(usize, usize, Option<Adversary>, usize); 9] = [
        (4, 0, None, 20),
        (31, 0, None, 6),
        (pyrsia_core::members::MAX_MEMBERS, 0, None, 2),
        (4, 1, Some(Adversary::Silent), 20),
        (4, 1, Some(Adversary::Flood), 20),
        (7, 0, None, 20),
        (7, 2, Some(Adversary::Silent), 20),
        (7, 2, Some(Adversary::Flood), 20),
        (7, 2, Some(Adversary::SplitVotes), 20),
    ];
    for (nodes, byzantine, adversary, count) in cases {
        let started = cpu_seconds();
        let outcome = run_workload(
            Params {
                nodes,
                byzantine,
                seed: 1,
                adversary,
                faults: false,
            },
            Workload::Steady {
                count,
                every: Duration::from_secs(2),
            },
        );
        let cpu = cpu_seconds() - started;
        if !outcome.violations.is_empty() {
            eprintln!("{nodes} members, {adversary:?}: {:?}", outcome.violations);
            std::process::exit(1);
        }
        let latencies = &outcome.latencies;
        let mean = latencies.iter().map(|d| d.as_micros()).sum::<u64>() as f64
            / latencies.len().max(1) as f64
            / 1000.0;
        let checkpoints = outcome.checkpoints.max(1) as u64;
        let label = match adversary {
            None => "none".to_string(),
            Some(a) => format!("{byzantine} {a:?}"),
        };
        println!(
            "| {nodes} | {label} | {} | {mean:.0} | {} | {} | {} | {cpu:.1} |",
            latencies.len(),
            outcome.checkpoints,
            outcome.messages / checkpoints,
            outcome.bytes / checkpoints,
        );
    }
}

/// CPU time the main thread used, in seconds (Linux `schedstat`, nanoseconds).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 / 1e9)
}

fn pieces(seed: u64, only: Option<usize>) {
    println!(
        "blob of 200 pieces; core's PieceSchedule on every node; each node sends 4 pieces per tick and queues the requests beyond, or takes {} at once and answers busy beyond; upstream 4 pieces per tick; seed {seed}",
        pyrsia_core::piece_schedule::ANSWERS_AT_ONCE
    );
    println!();
    println!(
        "| nodes | lower bound: ticks | 16-peer views, requests queued (before the busy rule): ticks | busy answers, full mesh: ticks | busy answers, 16-peer views: ticks | busy answers, 16-peer views, 5% churn: ticks | busy answers, 16-peer views, 5% churn, 5% slow, 5% liars: ticks | upstream pieces | busy answers | redirects | node 0's upload ÷ blob | largest upload ÷ blob | honest nodes blamed | seconds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: Vec<usize> = match only {
        Some(n) => vec![n],
        None => vec![4, 31, 100, 1000, 10_000],
    };
    for nodes in sizes {
        let started = std::time::Instant::now();
        let params = |view, faults| Params {
            nodes,
            pieces: 200,
            link: 4,
            upstream: 4,
            view,
            seed,
            faults,
            busy: true,
        };
        let bound = lower_bound(nodes, 200, 4, 4);
        // Queued requests make every node wait on the fetcher: thousands of ticks at 1,000
        // nodes, too long to run at 10,000.
        let queued = (nodes <= 1000).then(|| {
            run(Params {
                busy: false,
                ..params(16, Faults::default())
            })
        });
        // A full mesh costs n² per tick here: run up to 100 nodes (the bound holds for it).
        let mesh = (nodes <= 100).then(|| run(params(nodes - 1, Faults::default())));
        let views = run(params(16, Faults::default()));
        let churn = run(params(
            16,
            Faults {
                churn: 5,
                ..Faults::default()
            },
        ));
        let faults = Faults {
            churn: 5,
            slow: 5,
            liars: 5,
        };
        let rough = run(params(16, faults));
        let ticks = |o: &pyrsia_sim::pieces::Outcome| {
            if o.complete {
                o.ticks.to_string()
            } else {
                format!("incomplete at {}", o.ticks)
            }
        };
        println!(
            "| {nodes} | {bound} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} | {:.0} |",
            queued.as_ref().map_or("—".to_string(), ticks),
            mesh.as_ref().map_or("—".to_string(), ticks),
            ticks(&views),
            ticks(&churn),
            ticks(&rough),
            rough.upstream_pieces,
            rough.busy,
            rough.redirects,
            rough.fetcher_upload as f64 / 200.0,
            rough.largest_upload as f64 / 200.0,
            rough.honest_blamed,
            started.elapsed().as_secs_f64()
        );
    }
}

fn claims(seeds: &[u64], only: Option<usize>) {
    use pyrsia_sim::claims::{Outcome, Params, UPSTREAM_TICKS, run};
    println!(
        "one fresh blob wanted by every node; core's SourceSearch on every node and core's honour on every node asked; each node dials 16 others (in the last two columns: 3 earlier ones, then more while both ends have room); the upstream takes {UPSTREAM_TICKS} ticks of 50 ms; the worst of seeds {seeds:?}"
    );
    println!();
    println!(
        "| nodes | all at once: upstream fetches / upstream bytes ÷ blob (ticks) | arrivals over 2 s | 10% of lookups miss the nearest | 10% of nodes at their connection limit | the first fetcher dies mid-fetch | all four | seeds with more than 2 fetches (all four) | every node at most 5 connections | every node at most 40 connections | seconds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let sizes: Vec<usize> = match only {
        Some(n) => vec![n],
        None => vec![16, 100, 1000, 10_000],
    };
    // The worst over the seeds: most fetches, most bytes, most ticks; incomplete runs said.
    let worst = |runs: &[Outcome]| {
        let fetches = runs.iter().map(|o| o.upstream_fetches).max().unwrap_or(0);
        let pieces = runs.iter().map(|o| o.upstream_pieces).max().unwrap_or(0);
        let ticks = runs.iter().map(|o| o.ticks).max().unwrap_or(0);
        let incomplete = runs.iter().filter(|o| !o.complete).count();
        let mut cell = format!("{fetches} / {:.2}× ({ticks})", pieces as f64 / 200.0);
        if incomplete > 0 {
            cell.push_str(&format!(", {incomplete} incomplete"));
        }
        cell
    };
    for nodes in sizes {
        let started = std::time::Instant::now();
        let scenarios = |seed| {
            let base = Params::calm(nodes, seed);
            [
                base,
                Params { spread: 40, ..base },
                Params { miss: 10, ..base },
                Params {
                    at_limit: 10,
                    ..base
                },
                Params { kill: true, ..base },
                Params {
                    spread: 40,
                    miss: 10,
                    at_limit: 10,
                    kill: true,
                    ..base
                },
                Params::capped(nodes, seed, 5),
                Params::capped(nodes, seed, 40),
            ]
        };
        let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); 8];
        for &seed in seeds {
            for (i, params) in scenarios(seed).into_iter().enumerate() {
                runs[i].push(run(params));
            }
        }
        let many = runs[5].iter().filter(|o| o.upstream_fetches > 2).count();
        let cells: Vec<String> = runs.iter().map(|r| worst(r)).collect();
        println!(
            "| {nodes} | {} | {} | {} | {} | {} | {} | {many} of {} | {} | {} | {:.0} |",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            seeds.len(),
            cells[6],
            cells[7],
            started.elapsed().as_secs_f64()
        );
    }
}

fn claims_trace(scenario: &str, seed: u64, nodes: usize, max_peers: usize) {
    use pyrsia_sim::claims::{Params, run_traced};
    let calm = Params::calm(nodes, seed);
    let params = match scenario {
        "calm" => calm,
        "spread" => Params { spread: 40, ..calm },
        "miss" => Params { miss: 10, ..calm },
        "limit" => Params {
            at_limit: 10,
            ..calm
        },
        "kill" => Params { kill: true, ..calm },
        "capped" => Params::capped(nodes, seed, max_peers),
        "all" => Params {
            spread: 40,
            miss: 10,
            at_limit: 10,
            kill: true,
            ..calm
        },
        _ => usage(),
    };
    let (outcome, trace) = run_traced(params, true);
    for line in trace {
        println!("{line}");
    }
    println!("{outcome:?}");
}
