//! `pyrsia-lite`: the registry mirror alone (HTTP + store + upstream client, no libp2p), for
//! small Linux devices. Point `--upstream` at a full node or a registry.

use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_http::options::DEFAULT_P2P_LISTEN;
use pyrsia_http::{NodeOptions, init_logging, run_node};

/// A Pyrsia registry mirror without the P2P network, for constrained Linux devices.
#[derive(FromArgs)]
struct Lite {
    #[argh(subcommand)]
    command: LiteCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum LiteCommand {
    Node(NodeOptions),
}

fn main() -> ExitCode {
    let Lite {
        command: LiteCommand::Node(flags),
    } = pyrsia_http::options::from_env_with_spellings();
    // The command line was checked; now layer it over the environment and the config file.
    let options =
        match pyrsia_http::config::node_options(&flags, &pyrsia_http::config::node_args_from_env())
        {
            Ok((options, _)) => options,
            Err(e) => {
                eprintln!("pyrsia-lite: {e}");
                return ExitCode::from(2);
            }
        };
    let p2p_limits = options.max_upload_rate.is_some()
        || options.max_download_rate.is_some()
        || options.max_peers.is_some();
    if !options.peer.is_empty() || options.p2p_listen != DEFAULT_P2P_LISTEN || p2p_limits {
        eprintln!(
            "pyrsia-lite: --peer, --p2p-listen and the peer limits need the P2P network of the full node (`pyrsia node`)"
        );
        return ExitCode::from(2);
    }
    init_logging();
    match run_node(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyrsia-lite: {e}");
            ExitCode::FAILURE
        }
    }
}
