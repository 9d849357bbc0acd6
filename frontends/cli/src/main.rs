//! The `pyrsia` command.

mod build;
mod client;
mod config;
mod inspect;
mod log;
mod members;
mod packages;
mod peers;
mod prefetch;
mod progress;
mod rebuilds;
mod status;
mod transfer;
mod verify;

use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::reference::ImageRef;
use pyrsia_http::NodeOptions;

/// Pyrsia: a decentralized, verifiable registry mirror.
#[derive(FromArgs, Debug)]
struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start; argh cannot parse a boxed subcommand"
)]
enum Command {
    Node(NodeOptions),
    Config(config::ConfigCmd),
    Status(status::StatusCmd),
    Prefetch(prefetch::PrefetchCmd),
    Peers(peers::PeersCmd),
    Reference(ReferenceCmd),
    Log(log::LogCmd),
    InspectLog(inspect::InspectCmd),
    Verify(verify::VerifyCmd),
    Rebuilds(rebuilds::RebuildsCmd),
    Build(build::BuildCmd),
    Key(members::KeyCmd),
    Genesis(members::GenesisCmd),
    Authorize(members::AuthorizeCmd),
}

/// Show how an image reference is normalised (host, repository path, tag, digest), the way
/// the node and docker read it.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "reference")]
struct ReferenceCmd {
    /// the image reference, e.g. `alpine:3.20` or `ghcr.io/o/app@sha256:…`
    #[argh(positional)]
    image: String,
}

fn main() -> ExitCode {
    let cli: Cli = pyrsia_http::options::from_env_with_spellings();
    match cli.command {
        Command::Node(flags) => {
            // The command line was checked; now layer it over the environment and the file.
            let options = match pyrsia_http::config::node_options(
                &flags,
                &pyrsia_http::config::node_args_from_env(),
            ) {
                Ok((options, _)) => options,
                Err(e) => {
                    eprintln!("pyrsia node: {e}");
                    return ExitCode::from(2);
                }
            };
            pyrsia_http::init_logging();
            match pyrsia_http::run_node_with(&options, |node| start_network(&options, node)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pyrsia node: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Config(cmd) => config::run(&cmd),
        Command::Status(cmd) => status::run(&cmd),
        Command::Prefetch(cmd) => prefetch::run(&cmd),
        Command::Peers(cmd) => peers::run(&cmd),
        Command::Reference(cmd) => reference(&cmd.image),
        Command::Log(cmd) => log::run(&cmd),
        Command::InspectLog(cmd) => inspect::run(&cmd),
        Command::Verify(cmd) => verify::run(&cmd),
        Command::Rebuilds(cmd) => rebuilds::run(&cmd),
        Command::Build(cmd) => build::run(&cmd),
        Command::Key(cmd) => members::key(&cmd),
        Command::Genesis(cmd) => members::genesis(&cmd),
        Command::Authorize(cmd) => members::authorize(&cmd),
    }
}

/// Starts the P2P network for `node` (log replication; the lite mirror has none).
fn start_network(
    options: &NodeOptions,
    node: &std::sync::Arc<pyrsia_http::Node>,
) -> Result<(), String> {
    let mut config =
        pyrsia_net::NetConfig::parse(&options.p2p_listen, &options.peer, !options.no_mdns)?;
    config.quic = !options.no_quic;
    config.quic_on_lan = options.quic_on_lan;
    config.piece_links = !options.no_piece_links;
    config.piece_link_port = options.piece_link_port;
    config.relay_server = options.relay_server;
    config.external_addresses = options
        .external_addr
        .iter()
        .map(|a| a.parse().map_err(|e| format!("--external-addr {a}: {e}")))
        .collect::<Result<_, String>>()?;
    let defaults = pyrsia_net::NetLimits::default();
    config.limits = pyrsia_net::NetLimits {
        max_upload_rate: options.max_upload_rate.unwrap_or(defaults.max_upload_rate),
        max_download_rate: options
            .max_download_rate
            .unwrap_or(defaults.max_download_rate),
        max_peers: options.max_peers.unwrap_or(defaults.max_peers).max(1),
    };
    let key = pyrsia_std::log::key::load_or_create(&node.data_dir)
        .map_err(|e| format!("cannot load the node key: {e}"))?;
    let network = std::sync::Arc::new(pyrsia_net::start(
        config,
        key.to_seed(),
        node.log.clone(),
        node.mirror.store().clone(),
        node.mirror.clone(),
        node.member.clone(),
    )?);
    if let Some(member) = &node.member {
        member.attach_link(network.clone());
    }
    node.mirror.set_peer_network(network.clone());
    node.attach_network(network);
    Ok(())
}

fn reference(image: &str) -> ExitCode {
    match ImageRef::parse(image) {
        Ok(r) => {
            println!("reference:  {r}");
            println!("registry:   {}", r.host);
            println!("repository: {}", r.repository_path());
            println!("tag:        {}", r.tag.map_or("-", |t| t.as_str()));
            match r.digest {
                Some(d) => println!("digest:     {d}"),
                None => println!("digest:     -"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia: invalid image reference {image:?}: {e}");
            ExitCode::from(2)
        }
    }
}
