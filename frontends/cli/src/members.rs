//! Setting up and growing a multi-member network:
//! - `pyrsia key --data-dir DIR` prints the node's public key (creating the key on first use),
//!   which its operator gives to whoever writes the genesis;
//! - `pyrsia genesis --origin NAME --member KEY ... --out FILE` writes the genesis entry every
//!   member and client pins (`--genesis FILE`);
//! - `pyrsia authorize --key KEY` endorses adding a member on this operator's node; once
//!   a quorum of members' operators did, the `AddMember` entry is ordered into the log.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use pyrsia_core::identity::PublicKey;
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};

use crate::client::{DEFAULT_NODE, NodeClient};

/// Print this node's public key (hex), creating the node key if there is none yet.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "key")]
pub(crate) struct KeyCmd {
    /// the node's data dir
    #[argh(option)]
    data_dir: PathBuf,
}

/// Write the genesis entry of a new multi-member network.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "genesis")]
pub(crate) struct GenesisCmd {
    /// the log's name, e.g. `example.org/pyrsia`
    #[argh(option)]
    origin: String,
    /// a member's public key as `pyrsia key` prints it (repeatable; the network tolerates
    /// f = (n-1)/3 byzantine members and needs q = ceil((n+f+1)/2) cosignatures)
    #[argh(option)]
    member: Vec<String>,
    /// where to write the genesis file
    #[argh(option)]
    out: PathBuf,
}

/// Endorse adding (or removing) a member; a quorum of members' endorsements change the member set.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "authorize")]
pub(crate) struct AuthorizeCmd {
    /// the member's public key (hex, as `pyrsia key` prints it)
    #[argh(option)]
    key: String,
    /// endorse removing the key instead of adding it
    #[argh(switch)]
    remove: bool,
    /// this operator's node (default http://127.0.0.1:7888)
    #[argh(option, default = "String::from(DEFAULT_NODE)")]
    node: String,
    /// the node's data dir, where its operator token is (default: the node's default)
    #[argh(option)]
    data_dir: Option<PathBuf>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_key(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    let valid = text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit());
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate().filter(|_| valid) {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    if !valid {
        return Err(format!("{text:?} is not a 64-digit hex public key"));
    }
    PublicKey::from_bytes(&bytes).map_err(|e| format!("{text}: {e}"))
}

pub(crate) fn key(cmd: &KeyCmd) -> ExitCode {
    match pyrsia_std::log::key::load_or_create(&cmd.data_dir) {
        Ok(key) => {
            println!("{}", hex(&key.public().to_bytes()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia key: {}: {e}", cmd.data_dir.display());
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn genesis(cmd: &GenesisCmd) -> ExitCode {
    match write_genesis(cmd) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia genesis: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_genesis(cmd: &GenesisCmd) -> Result<String, String> {
    let keys = cmd
        .member
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err("name the members with --member KEY".into());
    }
    let n = keys.len();
    // f is derived from n (never chosen): the genesis records it for readers.
    let faults = pyrsia_core::members::faults_for(n) as u32;
    let quorum = pyrsia_core::members::quorum_for(n);
    let list: Vec<u8> = keys.iter().flat_map(PublicKey::to_bytes).collect();
    let created = pyrsia_std::clock::unix_seconds();
    let entry = Entry::Genesis(Genesis {
        origin: &cmd.origin,
        faults,
        members: KeyList(&list),
        created,
    })
    .encode();
    // The same checks every node makes when it opens the log.
    let Ok(Entry::Genesis(decoded)) = Entry::decode(&entry) else {
        return Err("the genesis does not decode".into());
    };
    pyrsia_core::members::MemberSet::from_genesis(&decoded).map_err(|e| e.to_string())?;
    std::fs::write(&cmd.out, &entry).map_err(|e| format!("{}: {e}", cmd.out.display()))?;
    Ok(format!(
        "wrote {}: log {}, {n} members, f = {faults}, quorum {quorum}",
        cmd.out.display(),
        cmd.origin
    ))
}

pub(crate) fn authorize(cmd: &AuthorizeCmd) -> ExitCode {
    let key = match parse_key(&cmd.key) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("pyrsia authorize: {e}");
            return ExitCode::from(2);
        }
    };
    let op = if cmd.remove { "remove" } else { "add" };
    let path = format!(
        "/pyrsia/members/endorse?op={op}&key={}",
        hex(&key.to_bytes())
    );
    let data_dir = match cmd
        .data_dir
        .clone()
        .map_or_else(pyrsia_http::options::default_data_dir, Ok)
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("pyrsia authorize: {e}");
            return ExitCode::from(2);
        }
    };
    let token_path = data_dir.join(pyrsia_std::operator::TOKEN_FILE);
    let token = match std::fs::read_to_string(&token_path) {
        Ok(token) => token.trim().to_string(),
        Err(e) => {
            eprintln!(
                "pyrsia authorize: cannot read the operator token {}: {e} (run it as the node's user, with --data-dir of the node)",
                token_path.display()
            );
            return ExitCode::from(2);
        }
    };
    match NodeClient::new(&cmd.node).post_json(&path, Some(&token)) {
        Ok(answer) => {
            println!(
                "endorsed     {op} {} for epoch {} (the change is ordered once a quorum of members endorse it)",
                answer["key_id"].as_str().unwrap_or("?"),
                answer["epoch"]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pyrsia authorize: {e}");
            ExitCode::FAILURE
        }
    }
}
