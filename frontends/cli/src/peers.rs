//! `pyrsia peers`: the node's connected peers, their addresses, the bytes exchanged and their
//! gossip scores (below −80 a peer's gossip is ignored), and how many TCP connections TLS and
//! noise have secured.

use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_std::network::NetworkStatus;

use crate::client::{DEFAULT_NODE, NodeClient};

/// Show the node's P2P peers.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "peers")]
pub(crate) struct PeersCmd {
    /// the node's URL (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

pub(crate) fn run(cmd: &PeersCmd) -> ExitCode {
    let client = NodeClient::new(&cmd.node);
    let status: NetworkStatus = match client.get("/peers").and_then(|body| {
        serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
    }) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("pyrsia peers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cmd.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    print!("{}", render(&status));
    ExitCode::SUCCESS
}

fn render(status: &NetworkStatus) -> String {
    let mut out = format!(
        "this node: {} on {}\n",
        status.peer_id,
        status.listen_addresses.join(", ")
    );
    if status.peers.is_empty() {
        out.push_str("no peers connected\n");
    } else {
        out.push_str(&format!(
            "{:<54} {:>12} {:>12} {:>6}  {:<12}  ADDRESSES\n",
            "PEER", "SENT", "RECEIVED", "SCORE", "PATH"
        ));
        for p in &status.peers {
            let score = p.gossip_score.map_or("-".to_string(), |s| s.to_string());
            let via = p
                .relay
                .as_ref()
                .map_or(String::new(), |relay| format!(" (via relay {relay})"));
            out.push_str(&format!(
                "{:<54} {:>12} {:>12} {:>6}  {:<12}  {}{via}\n",
                p.peer_id,
                p.bytes_sent,
                p.bytes_received,
                score,
                p.path,
                p.addresses.join(" ")
            ));
        }
    }
    for blocked in &status.blocked {
        out.push_str(&format!("blocked:  {blocked}\n"));
    }
    out.push_str(&format!(
        "secured:  {} TCP connections by TLS, {} by noise (peers of earlier builds)\n",
        status.secured.tls, status.secured.noise
    ));
    let links = &status.piece_links;
    out.push_str(&match links.port {
        Some(port) => format!(
            "links:    port {port}, {} asking, {} served; pieces asked {}, served {}; refused {}\n",
            links.asking, links.served, links.pieces_asked, links.pieces_served, links.refused
        ),
        None => "links:    off (pieces over libp2p only)\n".to_string(),
    });
    let rate = |r: u64| match r {
        0 => "unlimited".to_string(),
        r => format!("{r} B/s"),
    };
    out.push_str(&format!(
        "limits:   upload {}, download {}, at most {} connections\n",
        rate(status.limits.max_upload_rate),
        rate(status.limits.max_download_rate),
        status.limits.max_peers
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyrsia_std::network::PeerInfo;

    #[test]
    fn lists_peers_and_blocked_ones() {
        let status = NetworkStatus {
            peer_id: "12D3KooWA".into(),
            listen_addresses: vec!["/ip4/127.0.0.1/tcp/44000".into()],
            mdns: false,
            peers: vec![PeerInfo {
                peer_id: "12D3KooWB".into(),
                addresses: vec!["/ip4/127.0.0.1/tcp/44001".into()],
                bytes_sent: 10,
                bytes_received: 2048,
                gossip_score: Some(-130),
                path: "direct".into(),
                relay: None,
            }],
            blocked: vec!["12D3KooWC".into()],
            limits: pyrsia_std::network::PeerLimits {
                max_upload_rate: 1 << 20,
                max_download_rate: 0,
                max_peers: 8,
            },
            reachability: Default::default(),
            secured: pyrsia_std::network::SecuredConnections { tls: 3, noise: 1 },
            piece_links: pyrsia_std::network::PieceLinkStatus {
                port: Some(40123),
                asking: 1,
                served: 2,
                pieces_asked: 30,
                pieces_served: 40,
                refused: 5,
            },
        };
        let text = render(&status);
        assert!(
            text.starts_with("this node: 12D3KooWA on /ip4/127.0.0.1/tcp/44000\n"),
            "{text}"
        );
        assert!(text.contains("12D3KooWB"), "{text}");
        assert!(
            text.contains("2048   -130  direct        /ip4/127.0.0.1/tcp/44001"),
            "{text}"
        );
        assert!(text.contains("blocked:  12D3KooWC\n"), "{text}");
        assert!(
            text.contains("secured:  3 TCP connections by TLS, 1 by noise"),
            "{text}"
        );
        assert!(
            text.contains(
                "links:    port 40123, 1 asking, 2 served; pieces asked 30, served 40; refused 5\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "limits:   upload 1048576 B/s, download unlimited, at most 8 connections\n"
            ),
            "{text}"
        );
    }
}
