//! `pyrsia status`: is the node up, what it holds, how it is doing.

use std::process::ExitCode;
use std::time::Duration;

use argh::FromArgs;
use pyrsia_http::node::LogStatus;
use pyrsia_std::mirror::MirrorStatus;
use pyrsia_std::network::NetworkStatus;

/// Show a node's state: up or not, cache size, hits and misses, upstream health.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub(crate) struct StatusCmd {
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(\"http://127.0.0.1:7888\")")]
    node: String,
}

pub(crate) fn run(cmd: &StatusCmd) -> ExitCode {
    match fetch(&cmd.node) {
        Ok(status) => {
            print!("{}", render(&cmd.node, &status));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia status: node at {} is not answering: {e}", cmd.node);
            ExitCode::FAILURE
        }
    }
}

/// What `/status` answers.
#[derive(serde::Deserialize)]
struct NodeStatus {
    mirror: MirrorStatus,
    log: LogStatus,
    network: Option<NetworkStatus>,
}

fn fetch(node: &str) -> Result<NodeStatus, String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .new_agent();
    let url = format!("{}/status", node.trim_end_matches('/'));
    let mut response = agent.get(&url).call().map_err(|e| e.to_string())?;
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
}

fn render(node: &str, status: &NodeStatus) -> String {
    let s = &status.mirror;
    let log = &status.log;
    let budget = s.max_bytes.map_or("unlimited".to_string(), human);
    let upstream = match (s.offline, s.upstream_up) {
        (true, _) => "offline mode (no upstream contacted)",
        (false, None) => "not contacted yet",
        (false, Some(true)) => "up",
        (false, Some(false)) => "DOWN (serving from cache)",
    };
    let mut out = format!(
        "node:      {node} (up)\ncache:     {} in {} blobs (budget {budget})\nrequests:  {} hits, {} misses\nupstream:  {upstream}\n",
        human(s.bytes),
        s.blobs,
        s.hits,
        s.misses,
    );
    for (host, url) in &s.upstreams {
        out.push_str(&format!("           {host} -> {url}\n"));
    }
    out.push_str(&format!(
        "log:       {} ({} entries; {}; node key {})\nverify:    {} image(s) pending{}\n",
        log.origin,
        log.size,
        if log.sole_member {
            "standalone, this node is the only member"
        } else {
            "member of a larger network"
        },
        log.key_id,
        log.pending_verifications,
        if log.verified_only {
            "; serving verified content only"
        } else {
            ""
        },
    ));
    match &status.network {
        Some(n) => {
            out.push_str(&format!(
                "network:   peer {} on {}; {} peer(s) connected{}\n",
                n.peer_id,
                n.listen_addresses.join(", "),
                n.peers.len(),
                if n.mdns { ", mDNS on" } else { "" },
            ));
            out.push_str(&reachability(&n.reachability));
        }
        None => out.push_str("network:   none (lite mirror)\n"),
    }
    out
}

/// The `reachable:` line: whether peers can dial this node, and at which addresses.
fn reachability(r: &pyrsia_std::network::Reachability) -> String {
    use pyrsia_std::network::ReachabilityState;
    let detail = match r.state {
        ReachabilityState::Public => format!("public at {}", r.confirmed.join(", ")),
        ReachabilityState::Private if r.relays.is_empty() => format!(
            "private (peers could not dial back {}; this node dials out)",
            r.unreachable.join(", ")
        ),
        ReachabilityState::Private => format!(
            "private (peers could not dial back {}; reached through relay {})",
            r.unreachable.join(", "),
            r.relays.join(", ")
        ),
        ReachabilityState::Unknown => "unknown (no peer has tested it yet)".to_string(),
    };
    format!("reachable: {detail}\n")
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
