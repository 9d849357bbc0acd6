//! `pyrsia-sim`: the deterministic simulations.
//!
//! `pyrsia-sim pieces [--seed S]` prints how long `n` nodes take to get one blob when they all
//! want it at once, for 4 to 3,000 nodes, with today's strategy (everyone fetches from the
//! rendezvous winner) and with a swarm (every holder serves), in ticks of one piece per link.

use pyrsia_sim::pieces::{Params, Strategy, run};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    match args.first().map(String::as_str) {
        Some("pieces") => pieces(seed),
        _ => {
            eprintln!("usage: pyrsia-sim pieces [--seed S]");
            std::process::exit(2);
        }
    }
}

fn pieces(seed: u64) {
    println!(
        "blob of 200 pieces; each node sends and receives 4 pieces per tick; upstream 4 pieces per tick; seed {seed}"
    );
    println!();
    println!("| nodes | from the fetcher: ticks | swarm: ticks | upstream pieces | peer pieces |");
    println!("|---:|---:|---:|---:|---:|");
    for nodes in [4, 31, 100, 1000, 3000] {
        let params = Params {
            nodes,
            pieces: 200,
            link: 4,
            upstream: 4,
            seed,
        };
        let star = run(Strategy::FromFetcher, params);
        let swarm = run(Strategy::Swarm, params);
        println!(
            "| {nodes} | {} | {} | {} | {} |",
            star.ticks, swarm.ticks, swarm.upstream_pieces, swarm.peer_pieces
        );
    }
}
